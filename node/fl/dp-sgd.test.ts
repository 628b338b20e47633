import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type DpSgdOptions, type DpSgdRandom, stepsForEpochs, trainDpSgd } from './dp-sgd.ts';
import type { Examples, SparseRow } from './features.ts';
import { evaluate, zeroParams } from './logistic.ts';
import { gaussian, seededUniform } from './random.ts';

const seeded = (seed: number): DpSgdRandom => ({
  uniform: seededUniform(seed),
  normal: gaussian(seededUniform(seed + 1)),
});

/** Sparse random rows over `dim` buckets, L2-normalised; label from the sign of a fixed direction. */
function toy(n: number, dim: number, seed: number, nnz = 8): Examples {
  const u = seededUniform(seed);
  const rows: SparseRow[] = [];
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const idx = new Set<number>();
    while (idx.size < nnz) idx.add(Math.floor(u() * dim));
    const indices = Uint32Array.from(idx).sort();
    const raw = Array.from(indices, () => u() * 2 - 1);
    const norm = Math.hypot(...raw);
    const values = Float32Array.from(raw, (v) => v / norm);
    let score = 0;
    for (let k = 0; k < indices.length; k++) score += (indices[k]! % 2 ? 1 : -1) * values[k]!;
    rows.push({ indices, values });
    labels[i] = score > 0 ? 1 : 0;
  }
  return { dim, rows, labels };
}

const base: DpSgdOptions = {
  samplingRate: 1,
  noiseMultiplier: 0,
  clipNorm: 0.5,
  steps: 1,
  learningRate: 1,
  l2: 0,
  biasScale: 0.25,
};

/**
 * The summed clipped gradient of one step, read back from the update (z = 0, q = 1): the stored bias
 * is s·β, so its coordinate comes back divided by s once more.
 */
function summedGradient(start: Float64Array, data: Examples, opts: DpSgdOptions): Float64Array {
  const after = trainDpSgd(start, data, { ...opts, samplingRate: 1, noiseMultiplier: 0, steps: 1 }).params;
  const scale = opts.learningRate / data.rows.length;
  const s = opts.biasScale ?? 1;
  return Float64Array.from(after, (v, j) => (start[j]! - v) / scale / (j === data.dim ? s : 1));
}

/** Dense reference: per-example gradient [(p − y)·x, (p − y)·s], clipped to C, summed. */
function referenceSum(start: Float64Array, data: Examples, clip: number, s: number): Float64Array {
  const dim = data.dim;
  const sum = new Float64Array(dim + 1);
  data.rows.forEach((row, i) => {
    const g = new Float64Array(dim + 1);
    let dot = start[dim]!;
    row.indices.forEach((j, k) => {
      dot += row.values[k]! * start[j]!;
    });
    const err = 1 / (1 + Math.exp(-dot)) - data.labels[i]!;
    row.indices.forEach((j, k) => {
      g[j] = err * row.values[k]!;
    });
    g[dim] = err * s;
    const norm = Math.hypot(...g);
    const f = norm > clip ? clip / norm : 1;
    for (let j = 0; j <= dim; j++) sum[j]! += f * g[j]!;
  });
  return sum;
}

describe('DP-SGD', () => {
  test('one noiseless full-batch step is the sum of per-example gradients clipped to C', () => {
    const data = toy(40, 50, 1);
    // A start away from zero so errors (and so gradient norms) differ between examples.
    const start = Float64Array.from({ length: 51 }, (_, j) => Math.sin(j) * 3);
    for (const clip of [0.05, 0.3, 10]) {
      const got = summedGradient(start, data, { ...base, clipNorm: clip });
      const want = referenceSum(start, data, clip, 0.25);
      for (let j = 0; j <= 50; j++) assert.ok(Math.abs(got[j]! - want[j]!) < 1e-9, `C=${clip} j=${j}`);
    }
  });

  test('removing any one example moves the summed gradient by at most C, outliers included', () => {
    // The bound the accountant assumes. An outlier with a feature 100× too long must be cut to C.
    const clean = toy(30, 40, 2);
    const outlier: SparseRow = { indices: Uint32Array.of(3, 7), values: Float32Array.of(100, -100) };
    const data: Examples = {
      dim: 40,
      rows: [...clean.rows, outlier],
      labels: Uint8Array.from([...clean.labels, 1]),
    };
    const start = Float64Array.from({ length: 41 }, (_, j) => Math.cos(j));
    const clip = 0.2;
    const opts = { ...base, clipNorm: clip };
    // summedGradient undoes each run's own normaliser 1/n, so the two sums compare directly.
    const full = summedGradient(start, data, opts);
    let largest = 0;
    for (let i = 0; i < data.rows.length; i++) {
      const without: Examples = {
        dim: 40,
        rows: data.rows.filter((_, k) => k !== i),
        labels: data.labels.filter((_, k) => k !== i),
      };
      const rest = summedGradient(start, without, opts);
      const change = Math.hypot(...full.map((v, j) => v - rest[j]!));
      assert.ok(change <= clip + 1e-9, `example ${i} moves the sum by ${change}`);
      largest = Math.max(largest, change);
    }
    assert.ok(largest > clip * (1 - 1e-9), 'the outlier is clipped to exactly C, not below');
  });

  test('noise on every coordinate has std z·C (before the step scale), the zero-gradient ones too', () => {
    const data = toy(10, 4000, 3, 4);
    const opts = { ...base, noiseMultiplier: 2, clipNorm: 0.5, learningRate: 3 };
    const start = zeroParams(4000);
    // q = 1 samples everyone, so both runs see the same batch and differ by the noise alone.
    const quiet = trainDpSgd(start, data, { ...opts, noiseMultiplier: 0 }, seeded(5)).params;
    const noisy = trainDpSgd(start, data, opts, seeded(5)).params;
    const scale = opts.learningRate / data.rows.length;
    const touched = new Set(data.rows.flatMap((r) => [...r.indices]));
    let sq = 0;
    let sqUntouched = 0;
    let untouched = 0;
    for (let j = 0; j < 4000; j++) {
      const e = (quiet[j]! - noisy[j]!) / scale;
      sq += e * e;
      if (!touched.has(j)) {
        sqUntouched += e * e;
        untouched++;
      }
    }
    const std = Math.sqrt(sq / 4000);
    assert.ok(Math.abs(std - 1) < 0.05, `std ${std}, want z·C = 1`);
    assert.ok(untouched > 3900 && Math.abs(Math.sqrt(sqUntouched / untouched) - 1) < 0.05);
  });

  test('Poisson sampling: batch sizes average q·n', () => {
    const data = toy(1000, 20, 4);
    const r = trainDpSgd(
      zeroParams(20),
      data,
      { ...base, samplingRate: 0.1, steps: 200, clipNorm: 1, learningRate: 0.5 },
      seeded(6),
    );
    // Mean of 200 Binomial(1000, 0.1) draws: std 0.67.
    assert.ok(Math.abs(r.meanBatch - 100) < 3, `mean batch ${r.meanBatch}`);
    assert.equal(r.steps, 200);
  });

  test('deterministic given the seeds; the start vector is left alone', () => {
    const data = toy(200, 64, 7);
    const start = zeroParams(64);
    const opts = { ...base, samplingRate: 0.2, noiseMultiplier: 1.1, steps: 30 };
    const a = trainDpSgd(start, data, opts, seeded(1)).params;
    assert.deepEqual(a, trainDpSgd(start, data, opts, seeded(1)).params);
    assert.notDeepEqual(a, trainDpSgd(start, data, opts, seeded(3)).params);
    assert.deepEqual(start, zeroParams(64));
  });

  test('learns a separable problem under noise', () => {
    const data = toy(2000, 64, 8);
    const r = trainDpSgd(
      zeroParams(64),
      data,
      { samplingRate: 0.1, noiseMultiplier: 1, clipNorm: 0.5, steps: 300, learningRate: 8, l2: 0 },
      seeded(9),
    );
    const acc = evaluate(r.params, toy(1000, 64, 10)).accuracy;
    assert.ok(acc > 0.9, `accuracy ${acc}`);
    assert.ok(r.clippedFraction > 0 && r.clippedFraction <= 1);
  });

  test('refuses invalid options and non-finite start parameters', () => {
    const data = toy(5, 8, 11);
    const bad: Partial<DpSgdOptions>[] = [
      { samplingRate: 0 },
      { samplingRate: 1.5 },
      { noiseMultiplier: -1 },
      { noiseMultiplier: Number.NaN },
      { clipNorm: 0 },
      { steps: 1.5 },
      { steps: 1e9 },
      { learningRate: 0 },
      { l2: -1 },
      { biasScale: 0 },
    ];
    for (const b of bad) assert.throws(() => trainDpSgd(zeroParams(8), data, { ...base, ...b }), RangeError);
    const nan = zeroParams(8);
    nan[3] = Number.NaN;
    assert.throws(() => trainDpSgd(nan, data, base), /not finite/);
    assert.throws(() => trainDpSgd(zeroParams(7), data, base), RangeError);
  });

  test('stepsForEpochs rounds up', () => {
    assert.equal(stepsForEpochs(30, 0.3), 100);
    assert.equal(stepsForEpochs(1, 0.3), 4);
    assert.throws(() => stepsForEpochs(1, 0), RangeError);
  });
});
