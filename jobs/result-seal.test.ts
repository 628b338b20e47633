import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newReplyKey, open, SEAL_OVERHEAD, SealError, seal } from './result-seal.ts';

const context = new Uint8Array(32).fill(7);
const secret = new TextEncoder().encode('{"invitation":"cairn-invite:AAECAwQFBgcICQ"}');

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof SealError, `${err}`);
    return err.code;
  }
  return 'opened';
};

test('a sealed result opens with its reply key and command, and shows no plaintext', () => {
  const reply = newReplyKey();
  const box = seal(secret, reply.publicKey, context);
  assert.equal(box.length, secret.length + SEAL_OVERHEAD);
  assert.equal(Buffer.from(box).indexOf(Buffer.from('cairn-invite')), -1);
  assert.deepEqual(open(box, reply, context), secret);
  // A fresh ephemeral key and nonce each time: two seals of one result differ.
  assert.notDeepEqual(seal(secret, reply.publicKey, context), box);
});

test('another reply key, another command, a flipped byte or a short box do not open', () => {
  const reply = newReplyKey();
  const box = seal(secret, reply.publicKey, context);
  assert.equal(
    code(() => open(box, newReplyKey(), context)),
    'unsealable',
  );
  assert.equal(
    code(() => open(box, reply, new Uint8Array(32).fill(8))),
    'unsealable',
  );
  for (const i of [0, 31, 32, 55, 56, box.length - 1]) {
    const bad = box.slice();
    bad[i]! ^= 1;
    assert.notEqual(
      code(() => open(bad, reply, context)),
      'opened',
      `flip at ${i}`,
    );
  }
  assert.equal(
    code(() => open(box.subarray(0, SEAL_OVERHEAD - 1), reply, context)),
    'malformed',
  );
});

test('a low-order or short reply key is refused when sealing', () => {
  // All-zero is a low-order point: its shared secret would be all zeros.
  assert.equal(
    code(() => seal(secret, new Uint8Array(32), context)),
    'bad-key',
  );
  assert.equal(
    code(() => seal(secret, new Uint8Array(31), context)),
    'bad-key',
  );
});
