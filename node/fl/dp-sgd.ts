/**
 * Record-level DP-SGD (Abadi et al. 2016) for the logistic model: each step draws a Poisson
 * sample (every example independently with probability q), clips every sampled example's
 * gradient to L2 norm ≤ C, adds N(0, (zC)²) to each coordinate of the sum and divides by the
 * expected batch size qn. That is exactly the sampled Gaussian mechanism the RDP accountant
 * (rdp-accountant.ts, Poisson subsampling, add/remove-one neighbours) composes, so `steps`
 * steps at (q, z) cost `computeRdp(q, z, steps)` — fixed-size shuffled batches would need a
 * different (sampling-without-replacement) analysis, which is why they are not offered here.
 *
 * Pure and synchronous; the only inputs are the start model, the node's own examples and the
 * randomness, so the same seeds give the same model bit for bit.
 */
import { cryptoNormal, type Normal } from './dp.ts';
import type { Examples } from './features.ts';
import type { Params } from './logistic.ts';
import { cryptoUniform, type Uniform } from './random.ts';

export interface DpSgdOptions {
  /** q: each example joins a step's batch independently with this probability. */
  readonly samplingRate: number;
  /** z: noise std on the summed clipped gradients is z·C. 0 = no noise (and no guarantee). */
  readonly noiseMultiplier: number;
  /** C: per-example gradient L2 bound (the gradient includes the bias coordinate). */
  readonly clipNorm: number;
  /** Number of noisy steps (each one a release the accountant charges for). */
  readonly steps: number;
  readonly learningRate: number;
  /**
   * Weight decay on the weights (not the bias) per step. It depends on the parameters only, never
   * on the data, so it costs no privacy.
   */
  readonly l2: number;
  /**
   * s: the bias is trained as the weight of a constant feature s instead of 1 (the stored bias is
   * s·β, so predictions are unchanged). With s = 1 the bias takes half of every clipped gradient's
   * norm budget (features have ‖x‖ = 1); a smaller s leaves more of C, and so of the signal that
   * survives the noise, to the word weights. Default 1.
   */
  readonly biasScale?: number;
}

export interface DpSgdRandom {
  /** Poisson sampling: which examples a step uses must stay secret too, or amplification is lost. */
  readonly uniform: Uniform;
  /** The Gaussian noise. Predictable noise could be subtracted again: OS CSPRNG in production. */
  readonly normal: Normal;
}

export const cryptoDpSgdRandom = (): DpSgdRandom => ({ uniform: cryptoUniform(), normal: cryptoNormal() });

export interface DpSgdResult {
  readonly params: Params;
  readonly steps: number;
  /**
   * Local diagnostics (mean sampled batch size, share of sampled gradients that were clipped).
   * They are functions of the private data: log them locally, never release them.
   */
  readonly meanBatch: number;
  readonly clippedFraction: number;
}

/** Upper bound on steps per call: a coordinator's announcement must not buy unbounded CPU. */
export const MAX_DP_SGD_STEPS = 100_000;

/** Steps for `epochs` expected passes over the data at sampling rate q (⌈epochs / q⌉). */
export function stepsForEpochs(epochs: number, samplingRate: number): number {
  if (!(epochs > 0) || !(samplingRate > 0 && samplingRate <= 1)) throw new RangeError('invalid epochs or q');
  return Math.ceil(epochs / samplingRate - 1e-9);
}

export function validateDpSgd(opts: DpSgdOptions): void {
  const { samplingRate: q, noiseMultiplier: z, clipNorm: c, steps, learningRate: lr, l2 } = opts;
  if (!(q > 0 && q <= 1)) throw new RangeError(`sampling rate must be in (0, 1], got ${q}`);
  if (!(z >= 0) || !Number.isFinite(z)) throw new RangeError(`noise multiplier must be ≥ 0, got ${z}`);
  if (!(c > 0) || !Number.isFinite(c)) throw new RangeError(`clip norm must be positive, got ${c}`);
  if (!Number.isInteger(steps) || steps < 0 || steps > MAX_DP_SGD_STEPS) {
    throw new RangeError(`steps must be an integer in [0, ${MAX_DP_SGD_STEPS}], got ${steps}`);
  }
  if (!(lr > 0) || !Number.isFinite(lr)) throw new RangeError(`learning rate must be positive, got ${lr}`);
  if (!(l2 >= 0) || !Number.isFinite(l2)) throw new RangeError(`l2 must be ≥ 0, got ${l2}`);
  const s = opts.biasScale ?? 1;
  if (!(s > 0) || !Number.isFinite(s)) throw new RangeError(`bias scale must be positive, got ${s}`);
}

const sigmoid = (z: number) => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

/**
 * DP-SGD from a copy of `start` on `data`. The per-example gradient of the log loss is
 * (p − y)·[x, 1], so its norm is |p − y|·√(‖x‖² + 1): clipping costs O(nnz) per example and the
 * only dense work per step is the noisy update of the dim + 1 parameters.
 */
export function trainDpSgd(
  start: Params,
  data: Examples,
  opts: DpSgdOptions,
  random: DpSgdRandom = cryptoDpSgdRandom(),
): DpSgdResult {
  validateDpSgd(opts);
  const dim = data.dim;
  if (start.length !== dim + 1) throw new RangeError(`params have ${start.length - 1} weights, data ${dim}`);
  // The start model arrives from the network: a NaN in it would silently poison every gradient.
  for (let j = 0; j < start.length; j++) {
    if (!Number.isFinite(start[j]!)) throw new RangeError(`start parameter ${j} is not finite`);
  }
  const w = Float64Array.from(start);
  const n = data.rows.length;
  if (n === 0 || opts.steps === 0) return { params: w, steps: 0, meanBatch: 0, clippedFraction: 0 };
  const { samplingRate: q, clipNorm: c, learningRate: lr } = opts;
  const std = opts.noiseMultiplier * c;
  // Dividing by the *expected* batch size keeps the scale public; dividing by the drawn size
  // would make the step size itself a function of who was sampled.
  const scale = lr / (q * n);
  const decay = 1 - lr * opts.l2;
  const bs = opts.biasScale ?? 1;
  const { uniform, normal } = random;
  // ‖x‖² per row, once: features are L2-normalised but an empty mail has norm 0.
  const sq = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = data.rows[i]!.values;
    let s = 0;
    for (let t = 0; t < v.length; t++) s += v[t]! * v[t]!;
    sq[i] = s + bs * bs;
  }
  const grad = new Float64Array(dim + 1);
  const batch = new Uint32Array(n);
  const coef = new Float64Array(n);
  let sampled = 0;
  let clipped = 0;
  for (let step = 0; step < opts.steps; step++) {
    // Poisson sample; every example draws, so the cost does not depend on who is chosen.
    let b = 0;
    for (let i = 0; i < n; i++) if (uniform() < q) batch[b++] = i;
    // All gradients at the same point, then one update.
    for (let k = 0; k < b; k++) {
      const i = batch[k]!;
      const { indices, values } = data.rows[i]!;
      let dot = w[dim]!;
      for (let t = 0; t < indices.length; t++) dot += values[t]! * w[indices[t]!]!;
      const err = sigmoid(dot) - data.labels[i]!;
      const norm = Math.abs(err) * Math.sqrt(sq[i]!);
      if (norm > c) {
        clipped++;
        coef[k] = (err * c) / norm;
      } else coef[k] = err;
    }
    for (let k = 0; k < b; k++) {
      const g = coef[k]!;
      const { indices, values } = data.rows[batch[k]!]!;
      for (let t = 0; t < indices.length; t++) grad[indices[t]!]! += g * values[t]!;
      grad[dim]! += g * bs;
    }
    sampled += b;
    // Noise on every coordinate (the zero ones too, or the sparsity pattern would leak), the
    // decay on the weights, the step, and the sum reset, in one pass.
    if (std > 0) {
      for (let j = 0; j < dim; j++) {
        w[j] = w[j]! * decay - scale * (grad[j]! + std * normal());
        grad[j] = 0;
      }
      w[dim]! -= bs * scale * (grad[dim]! + std * normal());
    } else {
      for (let j = 0; j < dim; j++) {
        w[j] = w[j]! * decay - scale * grad[j]!;
        grad[j] = 0;
      }
      w[dim]! -= bs * scale * grad[dim]!;
    }
    grad[dim] = 0;
  }
  return {
    params: w,
    steps: opts.steps,
    meanBatch: sampled / opts.steps,
    clippedFraction: sampled > 0 ? clipped / sampled : 0,
  };
}
