/**
 * Issue 16: a participant holds a failed round's state only until it expires, and a burst of
 * rounds that never reach their commit (a coordinator failing them, or vanishing) costs it at
 * most MAX_HELD_ROUNDS rounds of memory: later announcements are declined as `busy` until the
 * held ones expire. A real FlParticipant on a small in-memory slice and a test clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flIdentities } from '../../testing/fl-identities.ts';
import type { Examples } from '../features.ts';
import { zeroParams } from '../logistic.ts';
import { encodeModel } from './model-codec.ts';
import {
  type AnnounceDecline,
  CommitRefused,
  FlParticipant,
  MAX_HELD_ROUNDS,
  ROUND_STATE_GRACE_MS,
} from './participant.ts';
import type { Announcement } from './wire.ts';

const DIM = 8;
const data: Examples = {
  dim: DIM,
  rows: [
    { indices: Uint32Array.of(1, 3), values: Float32Array.of(0.6, 0.8) },
    { indices: Uint32Array.of(2), values: Float32Array.of(1) },
  ],
  labels: Uint8Array.of(1, 0),
};
const DEADLINE_MS = 5_000;
const COORDINATOR = 'coordinator';
/** One coordinator holds at most half the slots (coordinatorShare): two fill them. */
const OTHER = 'another-coordinator';
const by = (k: number) => (k % 2 === 1 ? COORDINATOR : OTHER);
const announcement = (k: number): Announcement => ({
  roundId: new Uint8Array(32).fill(k),
  round: 1,
  modelHash: null,
  paramCount: DIM + 1,
  dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
  train: { epochs: 1, batchSize: 2, learningRate: 1, l2: 0, seed: 5 },
  deadlineMs: DEADLINE_MS,
  privacy: { mode: 'update' },
});

function participant() {
  let now = 1_000_000;
  const declines: AnnounceDecline[] = [];
  const p = new FlParticipant({
    self: 'me',
    data: () => data,
    resolveModel: async (_hash, count) => zeroParams(count - 1),
    storeModel: async () => 'stored',
    sign: flIdentities().signer('me'),
    now: () => now,
    onDecline: (reason) => declines.push(reason),
  });
  return { p, declines, advance: (ms: number) => (now += ms) };
}

test('a burst of failed rounds holds at most MAX_HELD_ROUNDS, then declines as busy until they expire', async () => {
  const { p, declines, advance } = participant();
  for (let k = 1; k <= MAX_HELD_ROUNDS; k++) {
    const r = await p.announce(by(k), announcement(k));
    assert.equal(r.accept, true, `round ${k}: ${r.reason}`);
    // Each goes as far as the keys step, then its coordinator fails it: no commit ever comes.
    await p.keys(by(k), {
      roundId: announcement(k).roundId,
      threshold: 2,
      participants: ['me', 'a', 'b'],
    });
  }
  assert.equal(p.active, MAX_HELD_ROUNDS);
  // The burst goes on: every later round is declined, and memory stays bounded.
  for (let k = MAX_HELD_ROUNDS + 1; k <= 100; k++) {
    const r = await p.announce(`coordinator-${k}`, announcement(k));
    assert.deepEqual(r, { accept: false, examples: 0, reason: 'busy', epsilon: 0 });
  }
  assert.equal(p.active, MAX_HELD_ROUNDS);
  // Each is counted by its reason (the service's cairn_fl_announce_declined_total{reason}).
  assert.deepEqual(declines, Array(100 - MAX_HELD_ROUNDS).fill('busy'));
  assert.equal((await p.announce('a-third', announcement(3))).reason, 'round already announced');
  assert.equal(declines.at(-1), 'duplicate');

  // Just before the state expires it is still held (a slow round may still finish)...
  advance(DEADLINE_MS + ROUND_STATE_GRACE_MS);
  assert.equal(p.active, MAX_HELD_ROUNDS);
  assert.equal((await p.announce('a-third', announcement(101))).reason, 'busy');
  // ...and once past it, it is gone for every step, not only for the next announcement.
  advance(1);
  await assert.rejects(
    p.shares(COORDINATOR, { roundId: announcement(1).roundId, adverts: [] }),
    /no such round here/,
  );
  assert.equal(p.active, 0);
  assert.equal((await p.announce(COORDINATOR, announcement(102))).accept, true);
  assert.equal(p.active, 1);
});

test('a round that reaches its commit frees its place at once', async () => {
  const { p } = participant();
  for (let k = 1; k <= MAX_HELD_ROUNDS; k++) await p.announce(by(k), announcement(k));
  assert.equal((await p.announce('a-third', announcement(50))).reason, 'busy');
  // Refused (the round never trained: CommitRefused), and the round ends all the same.
  await assert.rejects(
    p.commit(OTHER, { roundId: announcement(2).roundId, model: encodeModel(zeroParams(DIM)) }),
    CommitRefused,
  );
  assert.equal(p.active, MAX_HELD_ROUNDS - 1);
  assert.equal((await p.announce(OTHER, announcement(51))).accept, true);
});

test('a round its coordinator ends (fl-end) frees its place at once; only that coordinator may end it', async () => {
  const { p } = participant();
  for (let k = 1; k <= MAX_HELD_ROUNDS; k++) await p.announce(by(k), announcement(k));
  assert.equal((await p.announce('a-third', announcement(60))).reason, 'busy');
  assert.throws(
    () => p.end('someone-else', { roundId: announcement(1).roundId }),
    /not the round’s coordinator/,
  );
  assert.equal(p.active, MAX_HELD_ROUNDS);
  assert.equal(p.end(COORDINATOR, { roundId: announcement(1).roundId }), true);
  assert.equal(p.active, MAX_HELD_ROUNDS - 1);
  // Told again, or of a round it never held (it declined): nothing to do, and no error.
  assert.equal(p.end(COORDINATOR, { roundId: announcement(1).roundId }), false);
  assert.equal(p.end(COORDINATOR, { roundId: announcement(60).roundId }), false);
  assert.equal((await p.announce('a-third', announcement(61))).accept, true);
});
