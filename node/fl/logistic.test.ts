import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Examples } from './features.ts';
import { applyDelta, cappedWeight, deltaOf, fedAvg } from './fedavg.ts';
import { evaluate, trainLocal, zeroParams } from './logistic.ts';
import { seededUniform } from './random.ts';

/** Separable toy data: label = 1 iff feature 0 outweighs feature 1. */
function toy(n: number, seed: number): Examples {
  const u = seededUniform(seed);
  const rows = [];
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const a = u();
    const b = u();
    const norm = Math.hypot(a, b, 0.3);
    rows.push({ indices: Uint32Array.of(0, 1, 2), values: Float32Array.of(a / norm, b / norm, 0.3 / norm) });
    labels[i] = a > b ? 1 : 0;
  }
  return { dim: 3, rows, labels };
}

const opts = { epochs: 20, batchSize: 8, learningRate: 2, l2: 0, seed: 1 };

describe('logistic regression', () => {
  test('learns a separable problem and lowers the loss', () => {
    const data = toy(400, 1);
    const before = evaluate(zeroParams(3), data);
    const p = trainLocal(zeroParams(3), data, opts);
    const after = evaluate(p, toy(400, 2));
    assert.ok(Math.abs(before.loss - Math.log(2)) < 1e-9);
    assert.ok(after.accuracy > 0.95, `accuracy ${after.accuracy}`);
    assert.ok(after.loss < before.loss / 2);
  });

  test('deterministic given the seed; the start vector is not modified', () => {
    const data = toy(100, 3);
    const start = zeroParams(3);
    assert.deepEqual(trainLocal(start, data, opts), trainLocal(start, data, opts));
    assert.notDeepEqual(trainLocal(start, data, opts), trainLocal(start, data, { ...opts, seed: 2 }));
    assert.deepEqual(start, zeroParams(3));
    assert.throws(() => trainLocal(zeroParams(4), data, opts), RangeError);
  });
});

describe('FedAvg', () => {
  test('weights deltas by example counts', () => {
    const avg = fedAvg([
      { delta: Float64Array.of(1, 0), weight: 30 },
      { delta: Float64Array.of(0, 1), weight: 10 },
    ]);
    assert.deepEqual([...avg], [0.75, 0.25]);
    assert.throws(() => fedAvg([]), RangeError);
    assert.throws(() => fedAvg([{ delta: Float64Array.of(1), weight: 0 }]), RangeError);
  });

  test('with one local step, FedAvg of deltas equals the delta of training on the union', () => {
    // One epoch with a single full batch is one gradient step: linear in the data, so averaging is exact.
    const a = toy(60, 4);
    const b = toy(20, 5);
    const union: Examples = {
      dim: 3,
      rows: [...a.rows, ...b.rows],
      labels: Uint8Array.from([...a.labels, ...b.labels]),
    };
    const start = Float64Array.of(0.1, -0.2, 0.05, 0.3);
    const step = (d: Examples) =>
      trainLocal(start, d, { epochs: 1, batchSize: 1000, learningRate: 1, l2: 0, seed: 1 });
    const avg = fedAvg([
      { delta: deltaOf(step(a), start), weight: 60 },
      { delta: deltaOf(step(b), start), weight: 20 },
    ]);
    const central = step(union);
    const fed = applyDelta(start, avg);
    for (let i = 0; i < 4; i++) assert.ok(Math.abs(fed[i]! - central[i]!) < 1e-12);
  });

  test('capped weights stay in [0, 1]', () => {
    assert.equal(cappedWeight(500, 1000), 0.5);
    assert.equal(cappedWeight(5000, 1000), 1);
  });
});
