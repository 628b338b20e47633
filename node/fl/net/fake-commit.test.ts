/**
 * ATK-16 (HIGH, fixed): an `fl-commit` that no main-chain entry ever names cleared a round's
 * uncommitted spend, so the caps on ε charged to failed rounds (issue 16, finding 4) stopped
 * nothing: a coordinator whose rounds a saboteur failed sent each participant an fl-commit of the
 * zero model after every failure, and every honest node took part in 8 of 8 failed rounds (ε 1.839
 * of 3, uncommitted share 0). Now a round's spend clears only when a main-chain `model` entry names
 * the hash its commit carried (FlParticipant.modelOnChain, called by FlService's chain watcher),
 * so the caps stop the saboteur after 3 rounds as they do without fake commits.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { FL_DEFAULTS } from '../../options.ts';
import {
  cleanup,
  coordinatorKeys,
  data,
  defaultSgd,
  type Node,
  participants,
} from '../../testing/fl-round-rig.ts';
import { zeroParams } from '../logistic.ts';
import { recordSecAggDp } from '../record-contribution.ts';
import { coordinateRound, type ParticipantLink, RoundFailed } from './coordinator.ts';
import { encodeModel } from './model-codec.ts';

after(cleanup);

function linkFrom(coordinator: string, n: Node): ParticipantLink {
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

describe('fl-commit without a chain entry', async () => {
  const keys = await coordinatorKeys();
  let clock = Date.now();
  const now = () => clock;
  // The last of the four is the saboteur: an out-of-range masked update every round.
  const nodes = await participants(4, keys, { misbehave: 'out-of-range', now });
  const honest = nodes.slice(0, 3);
  const { ex } = data();

  test('does not clear a failed round’s uncommitted spend: the cap still stops the saboteur', async () => {
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
      // The fake commit, to everyone invited: a decodable model of the round's size that no chain
      // entry will name.
      for (const n of nodes)
        await linkFrom('boss', n)
          .commit({ roundId, model: encodeModel(zeroParams(ex.dim)) })
          .catch(() => {});
    }
    const s = honest[0]!.g.status()!;
    const figures = `rounds ${s.rounds}, ε ${s.epsilonTotal.toFixed(3)} of ${s.budgetEpsilon}, uncommitted ${JSON.stringify(s.uncommitted)}`;
    assert.deepEqual(
      reasons,
      ['aggregate-out-of-range', 'aggregate-out-of-range', 'aggregate-out-of-range', 'too-few-participants'],
      figures,
    );
    assert.ok(s.epsilonTotal < 1.2, figures);
  });
});
