import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../node/chain/codec/errors.ts';
import { testKey } from '../node/testing/forge.ts';
import {
  canonicalJson,
  commandSignatureValid,
  decodeCommand,
  MAX_COMMAND_ARGS_BYTES,
  MAX_COMMAND_BYTES,
  MAX_COMMAND_TTL_MS,
  signCommand,
} from './command-codec.ts';
import { ADMIN_COMMANDS } from './queues.ts';

const key = testKey(700);
const other = testKey(701);
const NOW = 1_750_000_000_000;
const base = {
  command: 'admin.submitEntry' as const,
  target: '12D3KooWtarget',
  args: { content: 'water boils at 100 C', metadata: [{ key: 'lang', value: 'en' }] },
  ttlMs: 30_000,
  nowMs: NOW,
};

const decodeCode = (bytes: Uint8Array): string => {
  try {
    decodeCommand(bytes);
  } catch (err) {
    assert.ok(err instanceof DecodeError, `${err}`);
    return err.code;
  }
  return 'decoded';
};

test('a signed command round-trips, and its signature is the signer’s', () => {
  const c = signCommand(base, key);
  const d = decodeCommand(c.encoded);
  assert.deepEqual(d.args, base.args);
  assert.equal(d.command, 'admin.submitEntry');
  assert.equal(d.target, base.target);
  assert.equal(d.issuedAtMs, NOW);
  assert.equal(d.expiresAtMs, NOW + 30_000);
  assert.equal(d.nonceHex, c.nonceHex);
  assert.deepEqual(d.encoded, c.encoded);
  assert.ok(commandSignatureValid(d));
  // Two signings of the same command differ by their nonce.
  assert.notEqual(signCommand(base, key).nonceHex, c.nonceHex);
});

test('fuzz: every command, any args, round-trips exactly; every flipped byte is refused or unsigned', () => {
  const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(canonicalJson(v)));
  fc.assert(
    fc.property(
      fc.constantFrom(...ADMIN_COMMANDS),
      fc.string({ minLength: 1, maxLength: 64 }),
      json,
      fc.integer({ min: 1, max: MAX_COMMAND_TTL_MS }),
      fc.nat(),
      (command, target, args, ttlMs, flip) => {
        const c = signCommand({ command, target, args, ttlMs, nowMs: NOW }, key);
        const d = decodeCommand(c.encoded);
        assert.deepEqual(d.encoded, c.encoded);
        assert.equal(canonicalJson(d.args), canonicalJson(args));
        const bad = c.encoded.slice();
        const i = flip % bad.length;
        bad[i] = (bad[i]! ^ (1 << (flip % 8))) & 0xff;
        let decoded: ReturnType<typeof decodeCommand> | undefined;
        try {
          decoded = decodeCommand(bad);
        } catch (err) {
          assert.ok(err instanceof DecodeError, `${err}`);
        }
        if (decoded) assert.equal(commandSignatureValid(decoded), false, `flip at ${i} still verifies`);
      },
    ),
    { numRuns: 300 },
  );
});

test('canonical JSON sorts keys at every depth and refuses what JSON cannot carry', () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 'x' }], e: undefined }), '{"a":[{"c":"x","d":2}],"b":1}');
  assert.throws(() => canonicalJson({ x: Number.NaN }), RangeError);
  assert.throws(() => canonicalJson({ x: 1n }), RangeError);
});

test('non-canonical args, unknown commands, trailing bytes, bad tags and oversized inputs are DecodeErrors', () => {
  const c = signCommand({ ...base, args: { a: 1, b: 2 } }, key);
  const text = '{"a":1,"b":2}';
  const at = Buffer.from(c.encoded).indexOf(text);
  assert.ok(at > 0);
  const swapped = c.encoded.slice();
  swapped.set(Buffer.from('{"b":2,"a":1}'), at);
  assert.equal(decodeCode(swapped), 'non-canonical');
  const spaced = c.encoded.slice();
  spaced.set(Buffer.from('{"a":1,"b":2 '), at);
  assert.equal(decodeCode(spaced), 'invalid-value', 'a trailing space turns valid JSON into none here');
  assert.equal(decodeCode(new Uint8Array([...c.encoded, 0])), 'trailing-bytes');
  assert.equal(decodeCode(c.encoded.subarray(0, c.encoded.length - 1)), 'truncated');
  const tag = c.encoded.slice();
  tag[0] = 0x10; // a certificate's tag
  assert.equal(decodeCode(tag), 'unknown-tag');
  // Version 1 had no reply key: a v1 command (an older gateway's) is refused, not misread.
  for (const v of [1, 3]) {
    const version = c.encoded.slice();
    version[1] = v;
    assert.equal(decodeCode(version), 'unsupported-version');
  }
  assert.equal(decodeCode(new Uint8Array(MAX_COMMAND_BYTES + 1)), 'oversized');
  const name = c.encoded.slice();
  name.set(Buffer.from('admin.submitEntrx'), 3);
  assert.equal(decodeCode(name), 'invalid-value');
});

test('the encoder refuses what the decoder would: long validity, oversized args, unknown commands', () => {
  assert.throws(() => signCommand({ ...base, ttlMs: MAX_COMMAND_TTL_MS + 1 }, key), /at most/);
  assert.throws(() => signCommand({ ...base, ttlMs: 0 }, key), /expire after/);
  assert.throws(
    () => signCommand({ ...base, args: { content: 'x'.repeat(MAX_COMMAND_ARGS_BYTES) } }, key),
    /exceed/,
  );
  assert.throws(() => signCommand({ ...base, command: 'admin.rm' as never }, key), /unknown command/);
  assert.throws(() => signCommand({ ...base, target: '' }, key), /target/);
});

test('the reply key travels signed: decoded as sent, and swapping it breaks the signature', () => {
  const c = signCommand(base, key);
  assert.equal(c.reply.publicKey.length, 32);
  const d = decodeCommand(c.encoded);
  assert.deepEqual(d.replyKey, c.reply.publicKey);
  const mine = signCommand(base, key).reply.publicKey;
  const swapped = c.encoded.slice();
  // The reply key sits right before the signer key and the signature.
  swapped.set(mine, c.encoded.length - 64 - 32 - 32);
  const s = decodeCommand(swapped);
  assert.deepEqual(s.replyKey, mine);
  assert.equal(commandSignatureValid(s), false);
  // A reply key the caller chose is the one carried.
  const reply = signCommand(base, key).reply;
  assert.deepEqual(decodeCommand(signCommand({ ...base, reply }, key).encoded).replyKey, reply.publicKey);
});

test('a command re-signed by another key, or with its signer swapped, does not verify', () => {
  const c = signCommand(base, key);
  const swapped = c.encoded.slice();
  swapped.set(other.publicKey, c.encoded.length - 64 - 32);
  assert.equal(commandSignatureValid(decodeCommand(swapped)), false);
  assert.ok(commandSignatureValid(decodeCommand(signCommand(base, other).encoded)));
});
