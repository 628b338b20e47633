/**
 * Update-level differential privacy: L2 clipping of a participant's whole update, Gaussian noise
 * on the sum, and adaptive clipping by Andrew et al. 2021 ("Differentially Private Learning with
 * Adaptive Clipping"). The protected unit is a participant, not an email: with a handful of
 * participants all taking part in every round the ε is large (bench:fl: ≈ 355 over 20 rounds)
 * and says nothing about any one record. Record-level DP-SGD, which protects each email, is
 * dp-sgd.ts, which takes its noise source (`Normal`, `cryptoNormal`) from here.
 */
import { cryptoUniform, gaussian } from './random.ts';

export function l2Norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

export interface Clipped {
  readonly clipped: Float64Array;
  /** Norm before clipping. */
  readonly norm: number;
  /** True when norm ≤ C, i.e. the update passed unchanged — the bit adaptive clipping counts. */
  readonly unclipped: boolean;
}

/** Scales v down to norm C if it is longer; a new vector either way. */
export function clipL2(v: ArrayLike<number>, clipNorm: number): Clipped {
  if (!(clipNorm > 0)) throw new RangeError('clip norm must be positive');
  const norm = l2Norm(v);
  if (!Number.isFinite(norm)) throw new RangeError('update has a non-finite norm');
  const scale = norm > clipNorm ? clipNorm / norm : 1;
  const clipped = Float64Array.from(v as ArrayLike<number>, (x) => x * scale);
  return { clipped, norm, unclipped: norm <= clipNorm };
}

/** Standard normal source: seeded for tests, the OS CSPRNG by default. */
export type Normal = () => number;

export const cryptoNormal = (): Normal => gaussian(cryptoUniform());

/** Adds N(0, std²) to every coordinate, in place; returns v. */
export function addGaussianNoise<T extends Float64Array>(
  v: T,
  std: number,
  normal: Normal = cryptoNormal(),
): T {
  if (!(std >= 0)) throw new RangeError('noise std must be non-negative');
  if (std === 0) return v;
  for (let i = 0; i < v.length; i++) v[i]! += std * normal();
  return v;
}

/**
 * Distributed DP: each of the participants adds N(0, (zC)²/m) so the sum of m shares carries the
 * N(0, (zC)²) the accountant assumes. m should be the fewest participants the round may finish
 * with (the secure-aggregation threshold): if more survive, the sum is only noisier.
 */
export function distributedNoiseStd(
  noiseMultiplier: number,
  clipNorm: number,
  minParticipants: number,
): number {
  if (!(noiseMultiplier >= 0) || !(clipNorm > 0) || !(minParticipants >= 1)) {
    throw new RangeError('invalid noise parameters');
  }
  return (noiseMultiplier * clipNorm) / Math.sqrt(minParticipants);
}

export interface AdaptiveClipping {
  /** γ: the fraction of updates that should pass unclipped (e.g. 0.5 = clip at the median norm). */
  readonly targetQuantile: number;
  /** η_C of the geometric update. */
  readonly learningRate: number;
  /** σ_b: std of the Gaussian noise on the sum of the participants' (b − ½) bits. */
  readonly countNoiseStd: number;
}

/**
 * Andrew et al.'s geometric update C ← C · exp(−η_C (b̄ − γ)), with b̄ the (noised) fraction of
 * updates whose norm was ≤ C. If more than γ of the updates were unclipped, C is too large and
 * shrinks; if fewer, it grows. (Getting this sign backwards drives C away from the quantile.)
 */
export function nextClipNorm(clipNorm: number, unclippedFraction: number, cfg: AdaptiveClipping): number {
  if (!(clipNorm > 0)) throw new RangeError('clip norm must be positive');
  if (!Number.isFinite(unclippedFraction)) throw new RangeError('unclipped fraction must be finite');
  return clipNorm * Math.exp(-cfg.learningRate * (unclippedFraction - cfg.targetQuantile));
}

/**
 * The value a participant contributes to the private count: b − ½ with b = 1 if unclipped, so one
 * participant moves the sum by at most ½ (the sensitivity Andrew et al. use).
 */
export const clipBit = (unclipped: boolean): number => (unclipped ? 0.5 : -0.5);

/** b̄ from the noised sum of the contributions of `count` participants. */
export function unclippedFraction(noisyBitSum: number, count: number): number {
  if (!(count > 0)) throw new RangeError('count must be positive');
  return noisyBitSum / count + 0.5;
}

/**
 * Noise multiplier left for the update once the private count has taken its share of the budget
 * (Andrew et al., Thm 1): z_Δ = (z⁻² − (2σ_b)⁻²)^(−½). The pair (z_Δ, σ_b) is as private as one
 * Gaussian mechanism with multiplier z, so the accountant keeps using z.
 */
export function updateNoiseMultiplier(noiseMultiplier: number, countNoiseStd: number): number {
  if (!(noiseMultiplier > 0)) throw new RangeError('noise multiplier must be positive');
  if (countNoiseStd === Infinity) return noiseMultiplier;
  const rest = noiseMultiplier ** -2 - (2 * countNoiseStd) ** -2;
  if (!(rest > 0)) {
    throw new RangeError(
      `count noise σ_b=${countNoiseStd} too small for noise multiplier ${noiseMultiplier}`,
    );
  }
  return rest ** -0.5;
}
