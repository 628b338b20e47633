import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  addGaussianNoise,
  clipBit,
  clipL2,
  distributedNoiseStd,
  l2Norm,
  nextClipNorm,
  unclippedFraction,
  updateNoiseMultiplier,
} from './dp.ts';
import { gaussian, seededUniform } from './random.ts';

const adaptive = { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 1 };

describe('clipping and noise', () => {
  test('clipL2 scales long updates to C and leaves short ones alone', () => {
    const long = clipL2([3, 4], 1);
    assert.ok(Math.abs(l2Norm(long.clipped) - 1) < 1e-12);
    assert.deepEqual(
      [...long.clipped].map((x) => +x.toFixed(12)),
      [0.6, 0.8],
    );
    assert.equal(long.norm, 5);
    assert.equal(long.unclipped, false);
    const short = clipL2([0.3, 0.4], 1);
    assert.deepEqual([...short.clipped], [0.3, 0.4]);
    assert.equal(short.unclipped, true);
    assert.throws(() => clipL2([Number.NaN], 1), RangeError);
  });

  test('Gaussian noise has the requested standard deviation', () => {
    const v = addGaussianNoise(new Float64Array(200_000), 0.7, gaussian(seededUniform(3)));
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    assert.ok(Math.abs(mean) < 0.01, `mean ${mean}`);
    assert.ok(Math.abs(sd - 0.7) < 0.01, `sd ${sd}`);
  });

  test('distributed noise: m shares of N(0, (zC)²/m) sum to N(0, (zC)²)', () => {
    const std = distributedNoiseStd(1.2, 2, 4);
    assert.ok(Math.abs(4 * std * std - (1.2 * 2) ** 2) < 1e-12);
  });
});

describe('adaptive clipping (Andrew et al. 2021)', () => {
  test('sign: more than γ unclipped → C shrinks; fewer → C grows; exactly γ → unchanged', () => {
    assert.ok(nextClipNorm(1, 1, adaptive) < 1);
    assert.ok(nextClipNorm(1, 0, adaptive) > 1);
    assert.equal(nextClipNorm(1, 0.5, adaptive), 1);
    assert.ok(Math.abs(nextClipNorm(2, 0.9, adaptive) - 2 * Math.exp(-0.2 * 0.4)) < 1e-12);
  });

  test('C converges to the γ-quantile of update norms, from above and from below', () => {
    const rand = seededUniform(11);
    const normal = gaussian(seededUniform(12));
    // Update norms log-normal around 1: the 0.3-quantile is exp(−0.5244·0.5) ≈ 0.769.
    const draw = () => Math.exp(0.5 * normal());
    for (const start of [20, 0.01]) {
      let C = start;
      const cfg = { targetQuantile: 0.3, learningRate: 0.2, countNoiseStd: 0 };
      const track: number[] = [];
      for (let round = 0; round < 600; round++) {
        const norms = Array.from({ length: 50 }, draw);
        const bits = norms.reduce((s, n) => s + clipBit(clipL2([n], C).unclipped), 0);
        C = nextClipNorm(C, unclippedFraction(bits, norms.length), cfg);
        if (round >= 400) track.push(C);
      }
      const mean = track.reduce((a, b) => a + b, 0) / track.length;
      assert.ok(Math.abs(mean - 0.769) < 0.06, `from ${start}: C settled at ${mean}`);
    }
    assert.ok(rand() < 1);
  });

  test('the noised count takes its share of the budget from the update noise', () => {
    assert.ok(updateNoiseMultiplier(1, 5) > 1);
    assert.ok(Math.abs(updateNoiseMultiplier(1, 5) - (1 - 1 / 100) ** -0.5) < 1e-12);
    assert.equal(updateNoiseMultiplier(1, Infinity), 1);
    assert.throws(() => updateNoiseMultiplier(1, 0.4), RangeError);
  });
});
