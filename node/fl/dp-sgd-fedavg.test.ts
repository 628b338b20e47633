import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FL_DEFAULTS } from '../options.ts';
import { seededRoundRandomness } from '../testing/prng.ts';
import { featurisedCorpus, splitIndices, subset } from './dataset.ts';
import {
  type DpSgdNode,
  planDpSgd,
  roundParamsOf,
  runDpSgdRound,
  runDpSgdSecAggRound,
} from './dp-sgd-fedavg.ts';
import { evaluate, zeroParams } from './logistic.ts';
import { PrivacyLedger } from './privacy-budget.ts';
import { gaussian, seededUniform } from './random.ts';
import { epsilonFor } from './rdp-accountant.ts';

const seeded = (seed: number) => ({
  uniform: seededUniform(seed),
  normal: gaussian(seededUniform(seed + 1)),
});

describe('FedAvg over record-level DP-SGD', () => {
  test('5 IID nodes spend ε = 3 (δ = 1e-5) each and reach ≥ 95% test accuracy, then all decline', () => {
    const ex = featurisedCorpus();
    const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 5, mode: 'iid' });
    const testSet = subset(ex, split.test);
    const { budgetEpsilon, delta } = FL_DEFAULTS.privacy;
    const plan = planDpSgd(budgetEpsilon, delta);
    assert.equal(plan.rounds, 20);
    const nodes: DpSgdNode[] = split.slices.map((s, k) => ({
      id: k + 1,
      data: subset(ex, s),
      ledger: PrivacyLedger.fresh(),
      random: seeded(100 * (k + 1)),
    }));
    let params = zeroParams(ex.dim);
    let rounds = 0;
    for (;;) {
      const r = runDpSgdRound(params, nodes, plan, `round ${rounds}`);
      if (r.included.length === 0) {
        // Budget spent everywhere: every node says why, and the model stays as it was.
        assert.deepEqual(
          r.declined.map((d) => d.reason),
          Array(5).fill('round-exceeds-budget'),
        );
        assert.deepEqual(r.params, params);
        break;
      }
      assert.deepEqual(r.included, [1, 2, 3, 4, 5]);
      params = r.params;
      rounds++;
      assert.ok(rounds <= plan.rounds, 'the ledger stops the nodes at the planned round');
    }
    assert.equal(rounds, plan.rounds);
    const epsilonRecord = Math.max(...nodes.map((n) => n.ledger.spent()));
    assert.ok(epsilonRecord <= 3 && epsilonRecord > 2.999, `ε = ${epsilonRecord}`);
    assert.ok(
      Math.abs(epsilonRecord - epsilonFor(plan.samplingRate, plan.noiseMultiplier, 100, delta)) < 1e-9,
    );
    const { accuracy } = evaluate(params, testSet);
    console.log(`record-level DP FedAvg: accuracy ${accuracy.toFixed(4)} at ε ${epsilonRecord.toFixed(4)}`);
    assert.ok(accuracy >= 0.95, `accuracy ${accuracy}`);
  });

  test('a node with less budget left drops out alone; the round goes on without it', () => {
    const data = {
      dim: 4,
      rows: Array.from({ length: 50 }, (_, i) => ({
        indices: Uint32Array.of(i % 4),
        values: Float32Array.of(1),
      })),
      labels: Uint8Array.from({ length: 50 }, (_, i) => i % 2),
    };
    const plan = { ...planDpSgd(3, 1e-5), steps: 5 };
    const perRound = epsilonFor(plan.samplingRate, plan.noiseMultiplier, 5, 1e-5);
    const nodes: DpSgdNode[] = [1, 2, 3].map((id) => ({
      id,
      data,
      // Node 3 can afford exactly one round.
      ledger: PrivacyLedger.fresh({ budgetEpsilon: id === 3 ? perRound * 1.01 : 3 }),
      random: seeded(id),
    }));
    const first = runDpSgdRound(zeroParams(4), nodes, plan);
    assert.deepEqual(first.included, [1, 2, 3]);
    const second = runDpSgdRound(first.params, nodes, plan);
    assert.deepEqual(second.included, [1, 2]);
    assert.deepEqual(
      second.declined.map((d) => [d.id, d.reason]),
      [[3, 'round-exceeds-budget']],
    );
    assert.equal(nodes[2]!.ledger.report().rounds, 1, 'a declined round costs nothing');
    // A coordinator asking for less noise than the nodes' floor is refused by all of them.
    const greedy = runDpSgdRound(second.params, nodes, { ...plan, noiseMultiplier: 0.5 });
    assert.deepEqual(greedy.included, []);
    assert.ok(greedy.declined.every((d) => d.reason === 'noise-below-floor'));
    assert.deepEqual(roundParamsOf(plan), {
      samplingRate: plan.samplingRate,
      noiseMultiplier: plan.noiseMultiplier,
      clipNorm: plan.clipNorm,
      steps: 5,
    });
  });

  test('through secure aggregation the round is the same FedAvg step, charged the same way', () => {
    const data = {
      dim: 4,
      rows: Array.from({ length: 60 }, (_, i) => ({
        indices: Uint32Array.of(i % 4),
        values: Float32Array.of(1),
      })),
      labels: Uint8Array.from({ length: 60 }, (_, i) => (i % 4 < 2 ? 1 : 0)),
    };
    const plan = { ...planDpSgd(3, 1e-5), steps: 5 };
    const perRound = epsilonFor(plan.samplingRate, plan.noiseMultiplier, 5, 1e-5);
    // The same DP-SGD draws both ways: each node's randomness seeded alike.
    const nodes = (): DpSgdNode[] =>
      [1, 2, 3, 4].map((id) => ({
        id,
        data,
        ledger: PrivacyLedger.fresh({ budgetEpsilon: id === 4 ? perRound * 0.5 : 3 }),
        random: seeded(10 * id),
      }));
    const plain = runDpSgdRound(zeroParams(4), nodes(), plan);
    const viaSecAgg = nodes();
    const masked = runDpSgdSecAggRound(zeroParams(4), viaSecAgg, plan, seededRoundRandomness(7), 250);
    assert.deepEqual(masked.included, [1, 2, 3]);
    assert.deepEqual(masked.included, plain.included);
    assert.deepEqual(masked.declined, plain.declined);
    assert.deepEqual(masked.privacy, plain.privacy);
    assert.equal(masked.secagg?.included.length, 3);
    assert.equal(viaSecAgg[0]!.ledger.report().rounds, 1);
    // Only the quantiser's stochastic rounding separates the two.
    const gap = Math.max(...plain.params.map((x, i) => Math.abs(x - masked.params[i]!)));
    assert.ok(gap < 1e-4, `gap ${gap}`);
    assert.ok(Math.max(...plain.params.map(Math.abs)) > 0.01, 'the round moved the model');
    // Nobody can afford it: the model stays and nothing is summed.
    const none = runDpSgdSecAggRound(masked.params, [viaSecAgg[3]!], plan, seededRoundRandomness(8), 250);
    assert.deepEqual(none.included, []);
    assert.deepEqual(none.params, masked.params);
  });

  test('a plan that is not a whole number of rounds is refused', () => {
    assert.throws(() => planDpSgd(3, 1e-5, { ...FL_DEFAULTS.dpSgd, plannedSteps: 101 }), RangeError);
  });
});
