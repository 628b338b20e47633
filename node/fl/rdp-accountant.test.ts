import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  computeRdp,
  DEFAULT_ORDERS,
  epsilonFor,
  logErfc,
  noiseMultiplierFor,
  privacySpent,
  RdpAccountant,
  rdpSampledGaussian,
} from './rdp-accountant.ts';

/**
 * A second method, sharing no code with the accountant: RDP of one sampled Gaussian step straight
 * from its definition, (1/(α−1))·log ∫ μ₀(x)·(μ(x)/μ₀(x))^α dx with μ₀ = N(0, σ²) and
 * μ = (1−q)·N(0, σ²) + q·N(1, σ²) (Mironov et al. 2019, §3: this direction is the larger one), by
 * Simpson's rule in log space on [−30σ, α + 30σ] — the integrand's mass sits between 0 and α.
 */
function rdpByIntegration(q: number, sigma: number, alpha: number): number {
  const s2 = 2 * sigma * sigma;
  const log1q = Math.log1p(-q);
  const logq = Math.log(q);
  const lo = -30 * sigma;
  const hi = alpha + 30 * sigma;
  const n = 2 * Math.ceil((hi - lo) / (0.01 * sigma) / 2);
  const h = (hi - lo) / n;
  const logF = (x: number) => {
    const u = logq + (2 * x - 1) / s2; // log of q·μ₁/μ₀
    const m = Math.max(log1q, u);
    const logRatio = m + Math.log(Math.exp(log1q - m) + Math.exp(u - m));
    return -(x * x) / s2 - 0.5 * Math.log(Math.PI * s2) + alpha * logRatio;
  };
  const vals = new Float64Array(n + 1);
  let max = -Infinity;
  for (let k = 0; k <= n; k++) {
    vals[k] = logF(lo + k * h);
    if (vals[k]! > max) max = vals[k]!;
  }
  let sum = 0;
  for (let k = 0; k <= n; k++) sum += (k === 0 || k === n ? 1 : k % 2 ? 4 : 2) * Math.exp(vals[k]! - max);
  return (max + Math.log((sum * h) / 3)) / (alpha - 1);
}

describe('RDP accountant', () => {
  test('reproduces the known value: q = 120/3383, z = 1.2, 100 steps, δ = 1e-5 → ε ≈ 1.99', () => {
    const { epsilon, order } = privacySpent(computeRdp(120 / 3383, 1.2, 100), 1e-5);
    assert.ok(Math.abs(epsilon - 1.99) < 0.02, `ε = ${epsilon}`);
    // TF-Privacy/Opacus (scipy reference) give 1.986111136823699 at order 7.8.
    assert.ok(Math.abs(epsilon - 1.986111136823699) < 1e-6, `ε = ${epsilon}`);
    assert.equal(order, 7.8);
  });

  test('integer and fractional orders agree with the scipy reference of compute_rdp', () => {
    // Values from a direct Python port of TF-Privacy's rdp_accountant with scipy.special.
    assert.ok(Math.abs(computeRdp(120 / 3383, 1.2, 100, [1.6])[0]! - 0.09916827569599891) < 1e-9);
    assert.ok(Math.abs(computeRdp(120 / 3383, 1.2, 100, [7.1])[0]! - 0.6124302442376632) < 1e-9);
    assert.ok(Math.abs(computeRdp(120 / 3383, 1.2, 100, [12])[0]! - 53.981350891607796) < 1e-9);
    assert.ok(Math.abs(privacySpent(computeRdp(0.01, 1.1, 1000), 1e-5).epsilon - 1.7117700912203435) < 1e-6);
  });

  test('compute_rdp agrees with direct numerical integration, integer and fractional orders', () => {
    // The integrator itself first: without subsampling the answer is α/(2σ²) exactly.
    assert.ok(Math.abs(rdpByIntegration(1 - 1e-12, 2, 8) - 1) < 1e-9);
    for (const [q, sigma, alpha] of [
      [120 / 3383, 1.2, 1.6],
      [120 / 3383, 1.2, 7.8],
      [120 / 3383, 1.2, 12],
      [0.01, 0.7, 2.5],
      [0.3, 4.65, 7.3],
      [0.3, 4.65, 33.5],
      [0.5, 2, 63],
    ] as const) {
      const a = rdpSampledGaussian(q, sigma, alpha);
      const b = rdpByIntegration(q, sigma, alpha);
      assert.ok(Math.abs(a - b) <= 1e-8 * b, `q=${q} σ=${sigma} α=${alpha}: ${a} vs ${b}`);
    }
  });

  test('a DP-SGD value computed independently: the benchmark plan (q = 0.3, 100 steps, ε = 3)', () => {
    // The record-level plan bench:fl runs: the z the accountant picks for ε = 3 over 100 steps,
    // then the whole curve re-derived by integration at all 151 orders and converted.
    const z = noiseMultiplierFor(3, 0.3, 100, 1e-5);
    assert.ok(z > 4.6 && z < 4.7, `z = ${z}`);
    const integrated = privacySpent(
      DEFAULT_ORDERS.map((a) => 100 * rdpByIntegration(0.3, z, a)),
      1e-5,
    );
    const accountant = epsilonFor(0.3, z, 100, 1e-5);
    assert.ok(Math.abs(integrated.epsilon - accountant) < 1e-6, `${integrated.epsilon} vs ${accountant}`);
    assert.ok(accountant <= 3 && accountant > 3 - 1e-4, `ε = ${accountant}`);
    assert.equal(integrated.order, 7.3);
    // And the known value the same way: 1.99 does not depend on the port being right.
    const known = privacySpent(
      DEFAULT_ORDERS.map((a) => 100 * rdpByIntegration(120 / 3383, 1.2, a)),
      1e-5,
    );
    assert.ok(Math.abs(known.epsilon - 1.99) < 0.005, `ε = ${known.epsilon}`);
  });

  test('noiseMultiplierFor never overshoots the target and fails loudly when it cannot be met', () => {
    for (const [eps, q, steps] of [
      [1, 0.05, 1000],
      [3, 1, 10],
      [8, 0.3, 100],
    ] as const) {
      const z = noiseMultiplierFor(eps, q, steps, 1e-5);
      assert.ok(epsilonFor(q, z, steps, 1e-5) <= eps);
      // 0.1 % less noise already overspends: the answer is tight, not merely safe.
      assert.ok(epsilonFor(q, z * 0.999, steps, 1e-5) > eps);
    }
    assert.throws(() => noiseMultiplierFor(0, 0.1, 10, 1e-5), RangeError);
    assert.throws(() => noiseMultiplierFor(1, 0.1, 0, 1e-5), RangeError);
  });

  test('without subsampling the Gaussian mechanism has RDP α/(2z²)', () => {
    assert.equal(rdpSampledGaussian(1, 2, 8), 1);
    assert.equal(rdpSampledGaussian(0, 2, 8), 0);
  });

  test('logErfc is accurate far into both tails', () => {
    assert.ok(Math.abs(logErfc(0) - 0) < 1e-15);
    assert.ok(Math.abs(logErfc(1) - Math.log(0.15729920705028513)) < 1e-12);
    assert.ok(Math.abs(logErfc(10) - Math.log(2.088487583762545e-45)) < 1e-10);
    // erfc(30) underflows a double; its log does not: −x² − log(x√π) − 1/(2x²)…
    assert.ok(Math.abs(logErfc(30) - (-900 - Math.log(30 * Math.sqrt(Math.PI)) - 1 / 1800)) < 1e-6);
    assert.ok(Math.abs(logErfc(-3) - Math.log(2 - 2.209049699858544e-5)) < 1e-12);
  });

  test('the running accountant composes rounds and reports per-round and total ε', () => {
    const acc = new RdpAccountant(1e-5);
    assert.equal(acc.spent().epsilon, 0);
    const first = acc.step(120 / 3383, 1.2);
    let last = first;
    for (let i = 1; i < 100; i++) last = acc.step(120 / 3383, 1.2);
    assert.equal(last.rounds, 100);
    assert.ok(Math.abs(last.epsilonTotal - 1.9861) < 1e-3);
    assert.equal(last.epsilonRound, first.epsilonRound);
    // RDP composition is far tighter than adding up the per-round ε.
    assert.ok(last.epsilonTotal < (100 * first.epsilonRound) / 5);
    assert.ok(first.epsilonTotal === first.epsilonRound);
  });

  test('more noise or fewer steps never costs more privacy', () => {
    const eps = (z: number, steps: number) => privacySpent(computeRdp(0.05, z, steps), 1e-5).epsilon;
    assert.ok(eps(1.5, 100) < eps(1.0, 100));
    assert.ok(eps(1.0, 50) < eps(1.0, 100));
  });
});
