/**
 * The range check of an unmasked aggregate (issue 16, trusted rounds). Masked updates cannot be
 * norm-checked one by one, so one participant could poison the sum with a huge update; but the
 * sum of k honest contributions (layout of local-round.ts localContribution) can only lie in a
 * range the round's public parameters fix, and an out-of-range contribution shows in the sum:
 *
 *   update part  ‖Σ w_u·clip_C(Δ_u) + noise‖₂ ≤ k·C + √k·σ·(√P + 6) + k·√P/scale
 *                (w_u ≤ 1; the summed noise is N(0, kσ²) per coordinate, and a Gaussian vector's
 *                norm exceeds σ√k·(√P + t) with probability ≤ e^(−t²/2), ≈ 1.5e-8 at t = 6; each
 *                participant's stochastic rounding moves a coordinate by < 1/scale)
 *   each coord   |s_i| ≤ k·bound + k/scale (the quantiser clamps every contribution to ±bound)
 *   weight       0 < Σ w_u ≤ k + k/scale (no noise on it)
 *   clip bits    |Σ b_u + noise| ≤ k/2 + 6√k·σ_b + k/scale   (b_u = ±½, dp.ts clipBit)
 *
 * The quantiser clamps an honest coordinate only beyond 10σ of its noise (p ≈ 1e-23), which the
 * bounds ignore. A poisoned update inside these bounds passes; the held-out loss check catches
 * what it can of those (round-runner.ts).
 */
import { type DpConfig, noiseStds } from './local-round.ts';
import type { Quantiser } from './secagg/ring.ts';

/** Gaussian tail allowance, in standard deviations. */
const TAIL = 6;

export interface AggregateRange {
  readonly ok: boolean;
  /** Why not, when not ok: which bound and by how much. */
  readonly why?: string;
  /** ‖update part‖₂ and its bound, for the logs. */
  readonly norm: number;
  readonly normBound: number;
}

/**
 * `sum`: the dequantised aggregate of `survivors` contributions to a model of `paramCount`
 * parameters, in a round with `dp`, quantiser `q` and noise calibrated for `minSurvivors`.
 */
export function checkAggregateRange(
  sum: Float64Array,
  paramCount: number,
  survivors: number,
  dp: DpConfig,
  minSurvivors: number,
  q: Quantiser,
): AggregateRange {
  const P = paramCount;
  const k = survivors;
  if (sum.length !== P + 2) throw new RangeError('aggregate does not match the model');
  const { updateStd, bitStd } = noiseStds(dp, minSurvivors);
  const rounding = k / q.scale;
  const normBound =
    k * dp.clipNorm + Math.sqrt(k) * updateStd * (Math.sqrt(P) + TAIL) + rounding * Math.sqrt(P);
  const coordBound = k * q.bound + rounding;
  let sq = 0;
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < P; i++) {
    const x = sum[i]!;
    if (!Number.isFinite(x))
      return { ok: false, why: `coordinate ${i} is not finite`, norm: Infinity, normBound };
    sq += x * x;
    if (Math.abs(x) > worst) {
      worst = Math.abs(x);
      worstAt = i;
    }
  }
  const norm = Math.sqrt(sq);
  const out = (why: string): AggregateRange => ({ ok: false, why, norm, normBound });
  if (worst > coordBound)
    return out(`|coordinate ${worstAt}| = ${worst.toPrecision(4)} > ${coordBound.toPrecision(4)}`);
  if (norm > normBound) return out(`update norm ${norm.toPrecision(4)} > ${normBound.toPrecision(4)}`);
  const weight = sum[P]!;
  if (!(weight > 0 && weight <= k + rounding))
    return out(`weight ${weight.toPrecision(4)} outside (0, ${k}]`);
  const bits = sum[P + 1]!;
  const bitBound = k / 2 + TAIL * Math.sqrt(k) * bitStd + rounding;
  if (!(Math.abs(bits) <= bitBound))
    return out(`clip bits ${bits.toPrecision(4)} outside ±${bitBound.toPrecision(4)}`);
  return { ok: true, norm, normBound };
}
