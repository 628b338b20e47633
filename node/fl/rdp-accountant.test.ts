import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { computeRdp, logErfc, privacySpent, RdpAccountant, rdpSampledGaussian } from './rdp-accountant.ts';

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
