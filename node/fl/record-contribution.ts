/**
 * A participant's contribution to a record-level round: DP-SGD on its own examples from the
 * global model (node/fl/dp-sgd.ts), and the resulting delta in the secure-aggregation layout of
 * local-round.ts (delta, weight, clip bit). The delta is already differentially private, so
 * everything after DP-SGD is post-processing and costs no privacy: no update-level noise, an
 * equal weight of 1 (the example count FedAvg usually weights by is itself private and no step
 * accounts for releasing it), and an L2 clip at a public bound so the quantiser and the range
 * check of the sum (aggregate-range.ts) have one.
 */
import { clipBit, clipL2 } from './dp.ts';
import { type DpSgdRandom, trainDpSgd } from './dp-sgd.ts';
import type { Examples } from './features.ts';
import { deltaOf } from './fedavg.ts';
import { type DpConfig, layoutDim } from './local-round.ts';
import type { Params } from './logistic.ts';

/**
 * What a round's DP-SGD asks of each participant in `record` mode: the privacy-relevant part
 * (q, z, C, steps) is what the participant's ledger prices; the rest is how the steps train.
 */
export interface RecordDp {
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly clipNorm: number;
  readonly steps: number;
  readonly learningRate: number;
  readonly l2: number;
  readonly biasScale: number;
}

/** The secure-aggregation DP config of a record-level round whose deltas are bounded by `updateClipNorm`. */
export const recordSecAggDp = (updateClipNorm: number): DpConfig => ({
  clipNorm: updateClipNorm,
  noiseMultiplier: 0,
  weightCap: 1,
});

export function recordContribution(
  global: Params,
  data: Examples,
  sgd: RecordDp,
  dp: DpConfig,
  random: DpSgdRandom,
): { vector: Float64Array; unclipped: boolean } {
  const local = trainDpSgd(global, data, sgd, random);
  const { clipped, unclipped } = clipL2(deltaOf(local.params, global), dp.clipNorm);
  const vector = new Float64Array(layoutDim(global.length));
  vector.set(clipped);
  vector[global.length] = 1;
  vector[global.length + 1] = clipBit(unclipped);
  return { vector, unclipped };
}
