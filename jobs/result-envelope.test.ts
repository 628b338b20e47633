import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { fromHex, toHex } from '../node/chain/bytes.ts';
import { DecodeError } from '../node/chain/codec/errors.ts';
import { identityFromSeed } from '../node/identity/identity.ts';
import { testKey } from '../node/testing/forge.ts';
import { signCommand } from './command-codec.ts';
import { decodeResult, MAX_RESULT_BODY_BYTES, RESULT_TAG, signResult } from './result-codec.ts';
import { answerCommand, checkAnswer, ResultRefused } from './result-envelope.ts';
import { newReplyKey, seal } from './result-seal.ts';

// Real identities: the peer id is what the gateway checks the signature against.
const node = await identityFromSeed(new Uint8Array(32).fill(1));
const other = await identityFromSeed(new Uint8Array(32).fill(2));
const NODE = node.peerId.toString();
const gateway = testKey(800);
const invite = {
  invitation: 'cairn-invite:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA',
  expiresAt: '2026-12-01T00:00:00.000Z',
  memberUntil: '2027-12-01T00:00:00.000Z',
};
const command = (target = NODE, nonce?: Uint8Array) =>
  signCommand(
    {
      command: 'admin.inviteDevice',
      target,
      args: { name: 'phone', role: 'submind', capabilities: [], expiresInMs: 86_400_000 },
      ttlMs: 30_000,
      nonce,
    },
    gateway,
  );

/** Where the outcome byte sits: right before the body's length and the body. */
const outcomeAt = (bytes: Uint8Array) => {
  const body = decodeResult(bytes).body.length;
  return bytes.length - 64 - body - (body < 0x80 ? 1 : body < 0x4000 ? 2 : 3) - 1;
};

const refusal = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ResultRefused, `${err}`);
    return err.code;
  }
  return 'believed';
};

test('the node’s signed, sealed answer is believed; it carries no plaintext', () => {
  const cmd = command();
  const answer = answerCommand(cmd, { completed: invite }, node.signingKey);
  assert.deepEqual(checkAnswer(answer, cmd, cmd.reply), { completed: invite });
  const raw = JSON.stringify(answer);
  assert.ok(!raw.includes('cairn-invite') && !raw.includes(toHex(Buffer.from(invite.invitation))));
  const decoded = decodeResult(fromHex(answer.result));
  assert.equal(decoded.target, NODE);
  assert.equal(decoded.outcome, 'completed');
  assert.equal(toHex(decoded.nonce), cmd.nonceHex);
});

test('a signed failure is a failure, never a success', () => {
  const cmd = command();
  const answer = answerCommand(cmd, { failed: 'no connected peer' }, node.signingKey);
  assert.deepEqual(checkAnswer(answer, cmd, cmd.reply), { failed: 'no connected peer' });
  // Flipping the outcome breaks the signature.
  const bytes = fromHex(answer.result);
  const at = outcomeAt(bytes);
  const flipped = bytes.slice();
  assert.equal(flipped[at], 1, 'outcome byte located');
  flipped[at] = 0;
  assert.equal(
    refusal(() => checkAnswer({ result: toHex(flipped) }, cmd, cmd.reply)),
    'bad-signature',
  );
});

test('tampered body, wrong signer, another nonce, another node, another encoding: all refused', () => {
  const cmd = command();
  const good = fromHex(answerCommand(cmd, { completed: invite }, node.signingKey).result);
  // Tampered sealed body (a byte of the ciphertext): the signature no longer holds.
  const tampered = good.slice();
  tampered[tampered.length - 64 - 10]! ^= 1;
  assert.equal(
    refusal(() => checkAnswer({ result: toHex(tampered) }, cmd, cmd.reply)),
    'bad-signature',
  );
  // Signed by another node's key (a Redis writer with a key of its own), all else the same.
  const forged = answerCommand(cmd, { completed: invite }, other.signingKey);
  assert.equal(
    refusal(() => checkAnswer(forged, cmd, cmd.reply)),
    'bad-signature',
  );
  // A genuine answer replayed for the next command.
  const next = command();
  assert.equal(
    refusal(() => checkAnswer({ result: toHex(good) }, next, next.reply)),
    'wrong-nonce',
  );
  // The same nonce in another command encoding (a re-signed command): the digest differs.
  const resigned = command(NODE, cmd.nonce);
  assert.equal(
    refusal(() => checkAnswer({ result: toHex(good) }, resigned, resigned.reply)),
    'wrong-digest',
  );
  // Another node's genuine answer, moved to this command's stream.
  const elsewhere = command(other.peerId.toString(), cmd.nonce);
  const theirs = answerCommand(elsewhere, { completed: invite }, other.signingKey);
  assert.equal(
    refusal(() => checkAnswer(theirs, cmd, cmd.reply)),
    'wrong-target',
  );
  // Signed by the node but sealed to a key that is not ours: does not open.
  const stranger = newReplyKey();
  const resealed = signResult(
    cmd,
    'completed',
    seal(new Uint8Array(4), stranger.publicKey, cmd.digest),
    node.signingKey,
  );
  assert.equal(
    refusal(() => checkAnswer({ result: toHex(resealed) }, cmd, cmd.reply)),
    'unsealable',
  );
});

test('bare values, bad shapes, undecodable bytes and keyless node ids are refused', () => {
  const cmd = command();
  assert.equal(
    refusal(() => checkAnswer(invite, cmd, cmd.reply)),
    'unsigned',
  );
  assert.equal(
    refusal(() => checkAnswer(null, cmd, cmd.reply)),
    'unsigned',
  );
  assert.equal(
    refusal(() => checkAnswer({ result: 'zz' }, cmd, cmd.reply)),
    'unsigned',
  );
  assert.equal(
    refusal(() => checkAnswer({ result: '21', extra: 1 }, cmd, cmd.reply)),
    'unsigned',
  );
  assert.equal(
    refusal(() => checkAnswer({ result: '2101' }, cmd, cmd.reply)),
    'malformed',
  );
  const keyless = command('12D3KooWnotAPeerId');
  const answer = answerCommand(keyless, { completed: invite }, node.signingKey);
  assert.equal(
    refusal(() => checkAnswer(answer, keyless, keyless.reply)),
    'unverifiable',
  );
});

test('fuzz: any flipped byte of a signed answer is refused', () => {
  const cmd = command();
  const good = fromHex(answerCommand(cmd, { completed: invite }, node.signingKey).result);
  fc.assert(
    fc.property(fc.nat(), (flip) => {
      const bad = good.slice();
      const i = flip % bad.length;
      bad[i] = (bad[i]! ^ (1 << (flip % 8))) & 0xff;
      assert.notEqual(
        refusal(() => checkAnswer({ result: toHex(bad) }, cmd, cmd.reply)),
        'believed',
        `flip at ${i}`,
      );
    }),
    { numRuns: 300 },
  );
});

test('the result codec refuses trailing bytes, other tags and versions, unknown outcomes', () => {
  const cmd = command();
  const good = fromHex(answerCommand(cmd, { completed: 1 }, node.signingKey).result);
  const code = (bytes: Uint8Array) => {
    try {
      decodeResult(bytes);
      return 'decoded';
    } catch (err) {
      assert.ok(err instanceof DecodeError, `${err}`);
      return err.code;
    }
  };
  assert.equal(code(good), 'decoded');
  assert.equal(code(new Uint8Array([...good, 0])), 'trailing-bytes');
  assert.equal(code(good.subarray(0, good.length - 1)), 'truncated');
  const tag = good.slice();
  tag[0] = 0x20; // a command's tag
  assert.equal(code(tag), 'unknown-tag');
  assert.equal(good[0], RESULT_TAG);
  const version = good.slice();
  version[1] = 2;
  assert.equal(code(version), 'unsupported-version');
  const outcome = good.slice();
  assert.equal(outcome[outcomeAt(good)], 0);
  outcome[outcomeAt(good)] = 7;
  assert.equal(code(outcome), 'invalid-value');
});

test('a result too large to carry becomes a signed failure', () => {
  const cmd = command();
  const answer = answerCommand(cmd, { completed: 'x'.repeat(MAX_RESULT_BODY_BYTES) }, node.signingKey);
  const out = checkAnswer(answer, cmd, cmd.reply);
  assert.ok('failed' in out && /exceeds/.test(out.failed), JSON.stringify(out).slice(0, 200));
});
