import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seededRoundRandomness as randomness } from '../testing/prng.ts';
import { featurisedCorpus, splitIndices, subset } from './dataset.ts';
import { clipL2 } from './dp.ts';
import { applyDelta, deltaOf, fedAvg } from './fedavg.ts';
import { type RoundConfig, type RoundParticipant, runRound } from './local-round.ts';
import { evaluate, trainLocal, zeroParams } from './logistic.ts';
import { RdpAccountant } from './rdp-accountant.ts';

const ex = featurisedCorpus();
const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 5, mode: 'iid' });
const testSet = subset(ex, split.test);
const train = { epochs: 3, batchSize: 16, learningRate: 8, l2: 0, seed: 5 };
const roundId = (r: number) => new Uint8Array(32).fill(r + 1);
const participants = (behaviours: RoundParticipant['behaviour'][] = []): RoundParticipant[] =>
  split.slices.map((s, k) => ({ id: k + 1, data: subset(ex, s), behaviour: behaviours[k] ?? 'honest' }));

describe('federated rounds', () => {
  test('5 IID participants, 20 rounds, DP (z = 0.3) and secure aggregation reach ≥ 97% test accuracy', () => {
    const parts = participants();
    const rnd = randomness(1);
    const accountant = new RdpAccountant(1e-5);
    let params = zeroParams(ex.dim);
    const start = evaluate(params, testSet);
    let last: ReturnType<typeof runRound> | undefined;
    for (let r = 0; r < 20; r++) {
      const cfg: RoundConfig = {
        roundId: roundId(r),
        round: r,
        dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
        train,
        threshold: 4,
      };
      last = runRound(params, parts, cfg, rnd, accountant);
      params = last.params;
      assert.deepEqual(last.included, [1, 2, 3, 4, 5]);
      assert.equal(last.clamped, 0);
    }
    const end = evaluate(params, testSet);
    assert.ok(end.accuracy >= 0.97, `accuracy ${end.accuracy}`);
    console.log(`federated accuracy ${end.accuracy}`);
    assert.ok(end.loss < start.loss / 3);
    // Honest accounting: with 5 participants and everyone in every round, user-level ε is large.
    assert.equal(last!.privacy!.rounds, 20);
    assert.ok(last!.privacy!.epsilonTotal > last!.privacy!.epsilonRound);
    assert.ok(Number.isFinite(last!.privacy!.epsilonTotal));
  });

  test('a declining participant is left out; a dropped, a malformed and an oversized update do not spoil the round', () => {
    const global = zeroParams(ex.dim);
    // Without noise the aggregate must equal plaintext FedAvg over exactly the included updates.
    const dp = { clipNorm: 4, noiseMultiplier: 0, weightCap: 100_000 };
    const cases = [
      {
        behaviours: ['honest', 'decline', 'malformed', 'honest', 'honest'],
        included: [1, 4, 5],
        dropped: [3],
        code: 'malformed',
      },
      {
        behaviours: ['honest', 'decline', 'honest', 'honest', 'oversized'],
        included: [1, 3, 4],
        dropped: [5],
        code: 'oversized',
      },
      {
        behaviours: ['honest', 'decline', 'drop-after-masking', 'honest', 'honest'],
        included: [1, 4, 5],
        dropped: [3],
      },
    ] as const;
    for (const c of cases) {
      const ps = participants([...c.behaviours]);
      const cfg: RoundConfig = { roundId: roundId(0), round: 0, dp, train };
      const res = runRound(global, ps, cfg, randomness(2));
      assert.deepEqual(res.included, c.included);
      assert.deepEqual(res.declined, [2]);
      assert.deepEqual(res.dropped, c.dropped);
      assert.deepEqual(
        res.rejected.map((r) => [r.id, r.code]),
        'code' in c ? [[c.dropped[0], c.code]] : [],
      );
      const expected = applyDelta(
        global,
        fedAvg(
          c.included.map((id) => {
            const local = trainLocal(global, ps[id - 1]!.data, {
              ...train,
              seed: train.seed ^ (id * 104729),
            });
            // FedAvg weighted by example counts (the cap is far above the slice sizes).
            return { delta: clipL2(deltaOf(local, global), 4).clipped, weight: ps[id - 1]!.data.rows.length };
          }),
        ),
      );
      let maxErr = 0;
      for (let i = 0; i < expected.length; i++)
        maxErr = Math.max(maxErr, Math.abs(res.params[i]! - expected[i]!));
      assert.ok(maxErr < 1e-6, `max error ${maxErr}`);
    }
  });

  test('adaptive clipping inside a round: a clip norm far above the update norms shrinks', () => {
    const parts = participants();
    const adaptive = { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 1 };
    const cfg: RoundConfig = {
      roundId: roundId(0),
      round: 0,
      dp: { clipNorm: 1000, noiseMultiplier: 0.7, weightCap: 1000, adaptive },
      train,
    };
    const res = runRound(zeroParams(ex.dim), parts, cfg, randomness(3));
    // All five updates are far below 1000: b̄ ≈ 1 (plus noise of σ_b/5), so C must go down.
    assert.ok(res.unclippedFraction > 0.5, `b̄ = ${res.unclippedFraction}`);
    assert.ok(res.nextClipNorm < 1000);
    const low = runRound(
      zeroParams(ex.dim),
      parts,
      { ...cfg, dp: { ...cfg.dp, clipNorm: 0.01 } },
      randomness(4),
    );
    assert.ok(low.unclippedFraction < 0.5 && low.nextClipNorm > 0.01);
  });

  test('too many dropouts: the round refuses rather than publishing a masked sum', () => {
    const parts = participants(['honest', 'drop-after-masking', 'drop-after-masking', 'decline', 'honest']);
    const cfg: RoundConfig = {
      roundId: roundId(0),
      round: 0,
      dp: { clipNorm: 4, noiseMultiplier: 0, weightCap: 1000 },
      train,
    };
    assert.throws(() => runRound(zeroParams(ex.dim), parts, cfg, randomness(5)), /too-few-participants/);
  });
});
