/**
 * Finding (MEDIUM; the fake-commit fix of fl-trust2 bypassed): a coordinator whose rounds fail
 * (a saboteur's out-of-range update, as in node/fl/net/fake-commit.test.ts) commits each failed
 * round with the bytes of a version some other coordinator is about to get on the chain; when that
 * entry connects, FlParticipant.modelOnChain(hash) clears every round committed to that hash, its
 * own failed ones included, so the per-coordinator caps on uncommitted spend never stop it.
 *
 * Mechanism. commit() (for a round the participant trained in: its masked update was made, then
 * the round failed after unmask) holds the bytes and records awaitingChain[hash] ∋ roundId; the
 * service's chain watcher calls modelOnChain(hash) for every main-chain model entry, whoever
 * authored it, and every round id in the set is `committed`, forgiving its spend (× 1 +
 * uncommittedRecoveryPerCommit). Nothing ties the entry to the round's coordinator, nor one entry
 * to one round. The bytes of the next version are in the attacker's hands before its entry is
 * mined: it is a participant of the honest round (fl-commit carries them) or fetches them by hash
 * from the honest coordinator once the entry is gossiped (read, not run). Here the honest
 * entries are stood for by calling modelOnChain(hash) as FlService.watchChain does.
 *
 * Measured today (4 real FlParticipants of the rig, record-level ledgers; the last one the
 * saboteur; boss fails 8 rounds in a row and commits each with the bytes of the honest version of
 * that period, whose entry then connects): 8 of 8 rounds run (aggregate-out-of-range × 8), an
 * honest node's ledger is charged 8 rounds, ε 1.839 of 3, uncommitted share 0. With plain fake
 * commits that no entry names (fake-commit.test.ts) the caps stop the same saboteur after 3.
 *
 * Fix that would make this pass: awaitingChain keeps each round's coordinator, and modelOnChain
 * (given the entry's author by watchChain) clears only rounds whose coordinator authored the
 * entry naming the hash, at most one round per entry.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { toHex } from '../../node/chain/bytes.ts';
import { subset } from '../../node/fl/dataset.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { coordinateRound, type ParticipantLink, RoundFailed } from '../../node/fl/net/coordinator.ts';
import { encodeModel, modelHash } from '../../node/fl/net/model-codec.ts';
import { FlParticipant } from '../../node/fl/net/participant.ts';
import type { PrivacyGate } from '../../node/fl/net/privacy-gate.ts';
import { recordSecAggDp } from '../../node/fl/record-contribution.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import {
  cleanup,
  coordinatorKeys,
  data,
  defaultSgd,
  gate,
  type Keys,
} from '../../node/testing/fl-round-rig.ts';

after(cleanup);

interface Member {
  readonly name: string;
  readonly p: FlParticipant;
  readonly g: PrivacyGate;
}

/** As the rig's participants(), except that a held commit is named by its hash (ModelStore.hold). */
async function members(n: number, keys: Keys, now: () => number): Promise<Member[]> {
  const { ex, split } = data();
  const out: Member[] = [];
  for (let k = 0; k < n; k++) {
    const g = await gate();
    const key = await generateKeyPair('Ed25519');
    const name = peerIdFromPrivateKey(key).toString();
    const p = new FlParticipant({
      self: name,
      data: () => subset(ex, split.slices[k % split.slices.length]!),
      privacy: g,
      resolveModel: async (_h, count) => zeroParams(count - 1),
      storeModel: async (b) => toHex(modelHash(b)),
      verifySurvivors: keys.verify,
      sign: async (m) => key.sign(m),
      now,
      // The last one is the saboteur: an out-of-range masked update every round.
      ...(k === n - 1 ? { misbehave: 'out-of-range' as const } : {}),
    });
    out.push({ name, p, g });
  }
  return out;
}

function linkFrom(coordinator: string, n: Member): ParticipantLink {
  return {
    peerId: n.name,
    announce: (a) => n.p.announce(coordinator, a),
    keys: async (k) => n.p.keys(coordinator, k),
    shares: async (s) => n.p.shares(coordinator, s),
    train: (t) => n.p.train(coordinator, t),
    confirm: (c) => n.p.confirm(coordinator, c),
    unmask: (u) => n.p.unmask(coordinator, u),
    commit: async (c) => {
      await n.p.commit(coordinator, c);
    },
  };
}

test('a version another coordinator gets on the chain does not clear this coordinator’s failed rounds', async () => {
  const keys = await coordinatorKeys();
  let clock = Date.now();
  const nodes = await members(4, keys, () => clock);
  const honest = nodes.slice(0, 3);
  const { ex } = data();
  const reasons: string[] = [];
  for (let r = 0; r < 8; r++) {
    clock += 120_000; // past the failed round's expiry, as in failed-rounds-drain.test.ts
    const roundId = new Uint8Array(32).fill(r + 1);
    try {
      await coordinateRound(
        { hash: null, params: zeroParams(ex.dim) },
        nodes.map((n) => linkFrom('boss', n)),
        {
          roundId,
          round: 1,
          dp: recordSecAggDp(FL_DEFAULTS.recordUpdateClipNorm),
          train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
          deadlineMs: 30_000,
          privacy: { mode: 'record', sgd: defaultSgd },
        },
        { sign: keys.sign },
      );
      reasons.push('completed');
    } catch (err) {
      assert.ok(err instanceof RoundFailed, (err as Error).message);
      reasons.push(err.reason ?? 'failed');
      if (err.reason === 'too-few-participants') break;
    }
    // The honest version of this period (another coordinator's round): its bytes, then its entry.
    const w = zeroParams(ex.dim);
    w[0] = 0.01 * (r + 1);
    const bytes = encodeModel(w);
    for (const n of nodes)
      await linkFrom('boss', n)
        .commit({ roundId, model: bytes })
        .catch(() => {});
    for (const n of nodes) await n.p.modelOnChain(toHex(modelHash(bytes)));
  }
  const s = honest[0]!.g.status()!;
  const figures = `${reasons.join(', ')}; rounds ${s.rounds}, ε ${s.epsilonTotal.toFixed(3)} of ${s.budgetEpsilon}, uncommitted ${JSON.stringify(s.uncommitted)}`;
  assert.deepEqual(
    reasons,
    ['aggregate-out-of-range', 'aggregate-out-of-range', 'aggregate-out-of-range', 'too-few-participants'],
    figures,
  );
});
