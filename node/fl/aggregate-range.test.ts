import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkAggregateRange } from './aggregate-range.ts';
import { layoutDim, noiseStds, roundQuantiser } from './local-round.ts';
import { gaussian, seededUniform } from './random.ts';
import { addInto, dequantise, quantise } from './secagg/ring.ts';

const P = 257;
const dp = { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 };
const n = 5;
const t = 3;
const q = roundQuantiser(dp, n, t);
const { updateStd } = noiseStds(dp, t);

/** k honest contributions (layout of localContribution), each a delta of norm exactly C, summed in the ring. */
function honestSum(k: number, seed: number, tweak?: (v: Float64Array, u: number) => void): Float64Array {
  const u = seededUniform(seed);
  const normal = gaussian(seededUniform(seed + 1));
  const sum = new Uint32Array(layoutDim(P));
  for (let p = 0; p < k; p++) {
    const v = new Float64Array(layoutDim(P));
    const d = Float64Array.from({ length: P }, () => normal());
    const norm = Math.hypot(...d);
    const w = 0.2 + 0.8 * u();
    for (let i = 0; i < P; i++) v[i] = (w * dp.clipNorm * d[i]!) / norm + updateStd * normal();
    v[P] = w;
    v[P + 1] = u() < 0.5 ? 0.5 : -0.5; // clipBit
    tweak?.(v, p);
    addInto(sum, quantise(v, q, u).words);
  }
  return dequantise(sum, q);
}

test('honest aggregates pass, at every survivor count, over many draws', () => {
  for (let seed = 1; seed <= 60; seed++)
    for (const k of [t, n]) {
      const r = checkAggregateRange(honestSum(k, seed * 10 + k), P, k, dp, t, q);
      assert.ok(r.ok, `seed ${seed}, k ${k}: ${r.why}`);
      assert.ok(r.norm < r.normBound);
    }
});

test('one out-of-range contribution makes the aggregate fail, with the bound it broke', () => {
  // Five times the clip norm, in every coordinate's direction: inside the quantiser's clamp.
  const boosted = honestSum(n, 7, (v, p) => {
    if (p === 0) for (let i = 0; i < P; i++) v[i] = (5 * dp.clipNorm) / Math.sqrt(P);
  });
  const r = checkAggregateRange(boosted, P, n, dp, t, q);
  assert.equal(r.ok, true, 'a 5·C update stays within the norm bound at this noise');
  const huge = honestSum(n, 7, (v, p) => {
    if (p === 0) for (let i = 0; i < P; i++) v[i] = q.bound;
  });
  const h = checkAggregateRange(huge, P, n, dp, t, q);
  assert.equal(h.ok, false);
  assert.match(h.why!, /update norm .* > /);
  const weightless = honestSum(n, 8, (v) => {
    v[P] = 0;
  });
  assert.match(checkAggregateRange(weightless, P, n, dp, t, q).why!, /weight 0\.000 outside/);
  const heavy = honestSum(n, 9, (v, p) => {
    if (p === 0) v[P] = q.bound;
  });
  assert.match(checkAggregateRange(heavy, P, n, dp, t, q).why!, /weight .* outside/);
  const bits = honestSum(n, 10, (v, p) => {
    if (p < 2) v[P + 1] = -q.bound;
  });
  assert.match(checkAggregateRange(bits, P, n, dp, t, q).why!, /clip bits/);
  const one = honestSum(n, 11);
  one[3] = n * q.bound + 1;
  assert.match(checkAggregateRange(one, P, n, dp, t, q).why!, /coordinate 3/);
  one[3] = Number.NaN;
  assert.match(checkAggregateRange(one, P, n, dp, t, q).why!, /not finite/);
});
