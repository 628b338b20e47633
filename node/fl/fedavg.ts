/**
 * FedAvg (McMahan et al. 2017) over update deltas: the new model is the old one plus the
 * example-weighted mean of the participants' deltas, optionally scaled by a server learning rate.
 */
import type { Params } from './logistic.ts';

export interface WeightedUpdate {
  /** Local model minus the global model the round started from. */
  readonly delta: Float64Array;
  /** Usually the participant's example count. */
  readonly weight: number;
}

/** after − before. */
export function deltaOf(after: Params, before: Params): Float64Array {
  if (after.length !== before.length) throw new RangeError('parameter vectors differ in length');
  const d = new Float64Array(after.length);
  for (let i = 0; i < d.length; i++) d[i] = after[i]! - before[i]!;
  return d;
}

/** Σ wᵢΔᵢ / Σ wᵢ. Throws when there is nothing to average rather than returning zeros silently. */
export function fedAvg(updates: readonly WeightedUpdate[]): Float64Array {
  if (updates.length === 0) throw new RangeError('fedAvg needs at least one update');
  const dim = updates[0]!.delta.length;
  const sum = new Float64Array(dim);
  let total = 0;
  for (const { delta, weight } of updates) {
    if (delta.length !== dim) throw new RangeError('updates differ in length');
    if (!(weight >= 0) || !Number.isFinite(weight)) throw new RangeError(`invalid weight ${weight}`);
    total += weight;
    for (let i = 0; i < dim; i++) sum[i]! += weight * delta[i]!;
  }
  if (!(total > 0)) throw new RangeError('total weight is zero');
  for (let i = 0; i < dim; i++) sum[i]! /= total;
  return sum;
}

/** params + serverLearningRate · meanDelta, as a new vector. */
export function applyDelta(params: Params, meanDelta: Float64Array, serverLearningRate = 1): Params {
  if (params.length !== meanDelta.length) throw new RangeError('delta does not match the model');
  const out = Float64Array.from(params);
  for (let i = 0; i < out.length; i++) out[i]! += serverLearningRate * meanDelta[i]!;
  return out;
}

/**
 * Weight of a participant under DP: its example count capped and scaled into [0, 1], so a
 * weighted, clipped delta still has norm ≤ C and the sensitivity of the sum stays C
 * (McMahan et al. 2018, "Learning differentially private recurrent language models").
 */
export function cappedWeight(exampleCount: number, cap: number): number {
  if (!(cap > 0)) throw new RangeError('cap must be positive');
  if (!(exampleCount >= 0)) throw new RangeError('example count must be non-negative');
  return Math.min(exampleCount, cap) / cap;
}
