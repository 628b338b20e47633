/**
 * Binary logistic regression on sparse rows. The model is one Float64Array of dim + 1 parameters
 * (weights, then the bias) so deltas, clipping, FedAvg and masking all work on a single flat vector.
 */
import { type Examples, sparseDot } from './features.ts';
import { seededUniform, shuffleInPlace } from './random.ts';

/** Weights [0, dim) and bias at index dim. */
export type Params = Float64Array;

export function zeroParams(dim: number): Params {
  return new Float64Array(dim + 1);
}

export interface TrainOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  /** L2 penalty on the weights (not the bias). */
  readonly l2: number;
  /** Seeds the shuffling of each epoch. */
  readonly seed: number;
}

export const DEFAULT_TRAIN: TrainOptions = Object.freeze({
  epochs: 2,
  batchSize: 16,
  learningRate: 2,
  l2: 1e-5,
  seed: 1,
});

/** The logistic function, written so neither branch overflows. */
export const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/** P(spam) for one row. */
export function predictProba(params: Params, ex: Examples, i: number): number {
  const dim = params.length - 1;
  return sigmoid(sparseDot(ex.rows[i]!, params) + params[dim]!);
}

/**
 * Mini-batch SGD for `epochs` passes over `data`, starting from a copy of `start`. Deterministic
 * given `seed`. The L2 decay is applied lazily per batch as a dense scale, which at 2^14 weights
 * is cheaper than tracking per-coordinate staleness.
 */
export function trainLocal(start: Params, data: Examples, opts: TrainOptions = DEFAULT_TRAIN): Params {
  const dim = data.dim;
  if (start.length !== dim + 1) throw new RangeError(`params have ${start.length - 1} weights, data ${dim}`);
  if (!(opts.batchSize >= 1) || !(opts.epochs >= 0) || !(opts.learningRate > 0)) {
    throw new RangeError('invalid training options');
  }
  const w = Float64Array.from(start);
  const n = data.rows.length;
  if (n === 0) return w;
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  const rand = seededUniform(opts.seed);
  const lr = opts.learningRate;
  for (let e = 0; e < opts.epochs; e++) {
    shuffleInPlace(order, rand);
    for (let b = 0; b < n; b += opts.batchSize) {
      const end = Math.min(n, b + opts.batchSize);
      const step = lr / (end - b);
      // Gradients of the batch computed at the same point, then applied.
      const errs = new Float64Array(end - b);
      for (let k = b; k < end; k++) {
        const i = order[k]!;
        const p = sigmoid(sparseDot(data.rows[i]!, w) + w[dim]!);
        errs[k - b] = p - data.labels[i]!;
      }
      if (opts.l2 > 0) {
        const decay = 1 - lr * opts.l2;
        for (let j = 0; j < dim; j++) w[j]! *= decay;
      }
      for (let k = b; k < end; k++) {
        const g = errs[k - b]! * step;
        const { indices, values } = data.rows[order[k]!]!;
        for (let t = 0; t < indices.length; t++) w[indices[t]!]! -= g * values[t]!;
        w[dim]! -= g;
      }
    }
  }
  return w;
}

export interface Evaluation {
  readonly accuracy: number;
  /** Mean binary cross-entropy. */
  readonly loss: number;
  readonly count: number;
}

export function evaluate(params: Params, data: Examples): Evaluation {
  const n = data.rows.length;
  if (n === 0) return { accuracy: Number.NaN, loss: Number.NaN, count: 0 };
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const p = predictProba(params, data, i);
    const y = data.labels[i]!;
    if ((p >= 0.5 ? 1 : 0) === y) correct++;
    // Clamp so a confidently wrong prediction costs ~34.5 nats, not Infinity.
    loss -= Math.log(Math.max(1e-15, y === 1 ? p : 1 - p));
  }
  return { accuracy: correct / n, loss: loss / n, count: n };
}
