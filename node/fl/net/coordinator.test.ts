import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { linkFrom } from '../../testing/coordinated-link.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import { seededRoundRandomness } from '../../testing/prng.ts';
import { survivorKeys } from '../../testing/survivor-keys.ts';
import { featurisedCorpus, splitIndices, subset } from '../dataset.ts';
import { clipL2 } from '../dp.ts';
import type { Examples } from '../features.ts';
import { applyDelta, deltaOf, fedAvg } from '../fedavg.ts';
import { trainLocal, zeroParams } from '../logistic.ts';
import { RdpAccountant } from '../rdp-accountant.ts';
import { coordinateRound, type ParticipantLink, RoundFailed, thresholdFor } from './coordinator.ts';
import { FlParticipant, type Misbehaviour } from './participant.ts';
import { decodeAnnouncement, encodeAnnouncement } from './wire.ts';

const ex = featurisedCorpus();
const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 5, mode: 'iid' });
const slices = split.slices.map((s) => subset(ex, s));
const train = { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 };
// The cap is above every slice size, so FedAvg weights stay proportional to example counts.
const dp = { clipNorm: 4, noiseMultiplier: 0, weightCap: 1000 };
const roundId = new Uint8Array(32).fill(7);
const keys = await survivorKeys();
const ids = flIdentities();
const sign = { sign: keys.sign, verifyAdverts: ids.verify };

interface Who {
  readonly data?: Examples;
  readonly decline?: boolean;
  readonly misbehave?: Misbehaviour;
  /** The link fails at this step, as a peer that vanished would. */
  readonly vanishAt?: 'train' | 'keys';
  /** Signs its advert with a key that is not its own (its peer id's). */
  readonly wrongKey?: boolean;
  /** Answers the confirm step with bytes that are no signature of its. */
  readonly badConfirm?: boolean;
}

function links(
  who: readonly Who[],
  extra: { readonly collusionTolerance?: number } = {},
): { links: ParticipantLink[]; parts: FlParticipant[] } {
  const parts: FlParticipant[] = [];
  const out = who.map((w, k) => {
    const self = `p${k + 1}`;
    const p = new FlParticipant({
      self,
      data: () => w.data,
      ...(w.decline ? { decline: true } : {}),
      ...(w.misbehave ? { misbehave: w.misbehave } : {}),
      resolveModel: async (_h, count) => zeroParams(count - 1),
      storeModel: async () => 'stored',
      randomness: seededRoundRandomness(10 + k),
      verifySurvivors: keys.verify,
      sign: ids.signer(w.wrongKey ? `not-${self}` : self),
      verifyAdverts: ids.verify,
      ...extra,
    });
    parts.push(p);
    const link = linkFrom('boss', self, p);
    if (w.vanishAt === 'train') return { ...link, train: () => Promise.reject(new Error('timeout: gone')) };
    if (w.vanishAt === 'keys') return { ...link, keys: () => Promise.reject(new Error('dial-failed')) };
    if (w.badConfirm) return { ...link, confirm: async () => new Uint8Array(64).fill(3) };
    return link;
  });
  return { links: out, parts };
}

/** Plaintext FedAvg of the given roster positions' clipped deltas from the zero model. */
function plaintext(ids: readonly number[], data: readonly Examples[]) {
  const global = zeroParams(ex.dim);
  return applyDelta(
    global,
    fedAvg(
      ids.map((id) => {
        const local = trainLocal(global, data[id - 1]!, {
          ...train,
          seed: train.seed ^ (7919 + id * 104729),
        });
        return { delta: clipL2(deltaOf(local, global), 4).clipped, weight: data[id - 1]!.rows.length };
      }),
    ),
  );
}

describe('a round over participant links', () => {
  test('threshold: a majority, tolerating the requested dropouts where n allows', () => {
    assert.equal(thresholdFor(2, 1), 2);
    assert.equal(thresholdFor(5, 1), 4);
    assert.equal(thresholdFor(7, 1), 6);
    assert.equal(thresholdFor(7, 5), 4);
  });

  test('a decliner, an oversized and a malformed update, a vanished node: the sum is exactly the survivors’', async () => {
    const who: Who[] = [
      { data: slices[0] },
      { data: slices[1], decline: true },
      { data: slices[2] },
      { data: slices[3], misbehave: 'oversized' },
      { data: slices[4] },
      { data: slices[0], misbehave: 'malformed' },
      { data: slices[1], vanishAt: 'train' },
      {}, // no data: declines
      { data: slices[1] },
    ];
    // Three of seven drop out: more than a collusion tolerance of 1 leaves room for (it needs 5
    // confirmations of 7: survivor-set.ts confirmationQuorum); this round assumes none.
    const { links: ls, parts } = links(who, { collusionTolerance: 0 });
    const rejected: string[] = [];
    const res = await coordinateRound(
      { hash: null, params: zeroParams(ex.dim) },
      ls,
      { roundId, round: 1, dp, train, deadlineMs: 5_000, dropoutTolerance: 3 },
      { ...sign, collusionTolerance: 0, onRejected: (peer, code) => rejected.push(`${peer}:${code}`) },
    );
    // Roster (acceptors, by peer id): p1 p3 p4 p5 p6 p7 p9 → ids 1..7; threshold max(4, 7 − 3) = 4.
    assert.equal(res.threshold, 4);
    assert.deepEqual(res.included, ['p1', 'p3', 'p5', 'p9']);
    assert.deepEqual(rejected.sort(), ['p4:oversized', 'p6:malformed']);
    const byPeer = new Map(res.leftOut.map((l) => [l.peerId, l]));
    assert.equal(byPeer.get('p2')?.stage, 'announce');
    assert.match(byPeer.get('p2')!.reason, /declined: policy/);
    assert.match(byPeer.get('p8')!.reason, /no training data/);
    assert.equal(byPeer.get('p4')?.code, 'oversized');
    assert.equal(byPeer.get('p6')?.code, 'malformed');
    assert.equal(byPeer.get('p7')?.stage, 'train');
    // p1, p3, p5, p9 hold roster ids 1, 2, 4, 7.
    const rosterData = [slices[0]!, slices[2]!, slices[3]!, slices[4]!, slices[0]!, slices[1]!, slices[1]!];
    const expected = plaintext([1, 2, 4, 7], rosterData);
    let maxErr = 0;
    for (let i = 0; i < expected.length; i++)
      maxErr = Math.max(maxErr, Math.abs(res.params[i]! - expected[i]!));
    assert.ok(maxErr < 1e-6, `max error ${maxErr}`);
    // Participants keep round state until the commit (or expiry).
    assert.ok(parts[0]!.active === 1);
  });

  test('below the threshold the round fails and says who was left out', async () => {
    const { links: ls } = links([
      { data: slices[0] },
      { data: slices[1], vanishAt: 'train' },
      { data: slices[2], vanishAt: 'train' },
    ]);
    await assert.rejects(
      coordinateRound(
        { hash: null, params: zeroParams(ex.dim) },
        ls,
        { roundId, round: 1, dp, train, deadlineMs: 1_000 },
        sign,
      ),
      (e: unknown) => e instanceof RoundFailed && /threshold/.test(e.message) && e.leftOut.length === 2,
    );
    const lonely = links([{ data: slices[0] }, { decline: true, data: slices[1] }]);
    await assert.rejects(
      coordinateRound(
        { hash: null, params: zeroParams(ex.dim) },
        lonely.links,
        { roundId, round: 1, dp, train, deadlineMs: 1_000 },
        sign,
      ),
      (e: unknown) => e instanceof RoundFailed && /too few participants/.test(e.message),
    );
  });

  test('an out-of-range masked update makes the round fail with its reason; honest noise does not', async () => {
    const noisy = { ...dp, noiseMultiplier: 0.3 };
    const honest = links([{ data: slices[0] }, { data: slices[1] }, { data: slices[2] }]);
    const ok = await coordinateRound(
      { hash: null, params: zeroParams(ex.dim) },
      honest.links,
      { roundId, round: 1, dp: noisy, train, deadlineMs: 5_000 },
      sign,
    );
    assert.equal(ok.included.length, 3);
    const accountant = new RdpAccountant(1e-5);
    const poisoned = links([
      { data: slices[0] },
      { data: slices[1], misbehave: 'out-of-range' },
      { data: slices[2] },
    ]);
    await assert.rejects(
      coordinateRound(
        { hash: null, params: zeroParams(ex.dim) },
        poisoned.links,
        { roundId, round: 1, dp: noisy, train, deadlineMs: 5_000 },
        { ...sign, accountant },
      ),
      (e: unknown) =>
        e instanceof RoundFailed &&
        e.reason === 'aggregate-out-of-range' &&
        /update norm .* > /.test(e.message),
    );
    // The coordinator saw the noised sum: that release is accounted for though nothing is applied.
    assert.equal(accountant.rounds, 1);
  });

  test('an advert its participant did not sign is left out at the keys step, not relayed', async () => {
    const { links: ls } = links([
      { data: slices[0] },
      { data: slices[1], wrongKey: true },
      { data: slices[2] },
      { data: slices[3] },
    ]);
    const rejected: string[] = [];
    const res = await coordinateRound(
      { hash: null, params: zeroParams(ex.dim) },
      ls,
      { roundId, round: 1, dp, train, deadlineMs: 5_000 },
      { ...sign, onRejected: (peer, code) => rejected.push(`${peer}:${code}`) },
    );
    assert.deepEqual(rejected, ['p2:bad-signature']);
    assert.deepEqual(res.included, ['p1', 'p3', 'p4']);
    assert.equal(res.leftOut.find((l) => l.peerId === 'p2')?.stage, 'keys');
  });

  test('a confirmation that does not verify is not relayed; too few valid ones fail the round before any reveal', async () => {
    const five = [0, 1, 2, 3, 4].map((k) => ({ data: slices[k]!, ...(k === 2 ? { badConfirm: true } : {}) }));
    const { links: ls } = links(five);
    const rejected: string[] = [];
    const res = await coordinateRound(
      { hash: null, params: zeroParams(ex.dim) },
      ls,
      { roundId, round: 1, dp, train, deadlineMs: 5_000 },
      { ...sign, onRejected: (peer, code) => rejected.push(`${peer}:${code}`) },
    );
    assert.deepEqual(rejected, ['p3:bad-signature']);
    // p3's masked update is in U3 and in the sum; only its reveal was not asked for.
    assert.deepEqual(res.included, ['p1', 'p2', 'p3', 'p4', 'p5']);
    // Two bad confirmations of five: 3 valid < t = 4. The round stops before anyone reveals.
    const worse = links(
      [0, 1, 2, 3, 4].map((k) => ({ data: slices[k]!, ...(k > 2 ? { badConfirm: true } : {}) })),
    );
    let unmasked = 0;
    const counted = worse.links.map((l) => ({
      ...l,
      unmask: (u: Parameters<typeof l.unmask>[0]) => {
        unmasked++;
        return l.unmask(u);
      },
    }));
    await assert.rejects(
      coordinateRound(
        { hash: null, params: zeroParams(ex.dim) },
        counted,
        { roundId, round: 1, dp, train, deadlineMs: 5_000 },
        sign,
      ),
      (e: unknown) => e instanceof RoundFailed && e.reason === 'too-few-confirmations',
    );
    assert.equal(unmasked, 0);
  });

  test('a participant only follows the coordinator that announced the round', async () => {
    const { parts } = links([{ data: slices[0] }]);
    const p = parts[0]!;
    const a = decodeAnnouncement(
      encodeAnnouncement({
        roundId,
        round: 1,
        modelHash: null,
        paramCount: ex.dim + 1,
        dp,
        train,
        deadlineMs: 1_000,
        privacy: { mode: 'update' },
      }),
    );
    assert.equal((await p.announce('boss', a)).accept, true);
    await assert.rejects(
      p.keys('intruder', { roundId, threshold: 2, participants: ['p1', 'p2', 'p3'] }),
      /coordinator/,
    );
    assert.equal((await p.announce('boss', a)).reason, 'round already announced');
  });
});
