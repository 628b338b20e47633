/**
 * Rényi-DP accountant for the sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019, "Rényi
 * Differential Privacy of the Sampled Gaussian Mechanism"), a port of TF-Privacy's / Opacus'
 * `compute_rdp` for Poisson subsampling (integer orders by the binomial expansion, fractional
 * orders by the two-sided erfc series), with the conversion to (ε, δ) of Balle et al. 2020
 * ("Hypothesis testing interpretations and Rényi differential privacy", Thm 21), as Opacus'
 * `get_privacy_spent` does it — tighter than the classic ε = RDP + log(1/δ)/(α − 1).
 *
 * The maths does not know what an "example" is; the caller's q and z decide what is protected:
 *  - record level (dp-sgd.ts, privacy-budget.ts): q is the Poisson rate at which one node's
 *    examples join a DP-SGD step, z the noise on the summed clipped per-example gradients, and
 *    the result protects each email of that node.
 *  - update level (`RdpAccountant` below, used by round.ts and node/fl/net/*): the "example" is a
 *    participant's whole update, q the fraction of nodes invited, and the result protects a
 *    participant as a whole — with five participants all invited every round that ε is large and
 *    says nothing about individual emails.
 */

/** Opacus' default orders: 1.1 … 10.9 in steps of 0.1, then 12 … 63. */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, x) => 1 + (x + 1) / 10),
  ...Array.from({ length: 52 }, (_, x) => 12 + x),
]);

function logAdd(logx: number, logy: number): number {
  const a = Math.min(logx, logy);
  const b = Math.max(logx, logy);
  if (a === -Infinity) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

function logSub(logx: number, logy: number): number {
  if (logx < logy) throw new RangeError('logSub: the result would be negative');
  if (logy === -Infinity) return logx;
  if (logx === logy) return -Infinity;
  const d = logx - logy;
  // expm1 overflows past ~709; then log(e^x - e^y) is logx to double precision.
  return d > 700 ? logx : Math.log(Math.expm1(d)) + logy;
}

/**
 * log(erfc(x)) without underflow. For x ≥ 2 a continued fraction for erfc(x)·e^{x²}·√π
 * (modified Lentz), below that the Maclaurin series of erf; negative x by erfc(x) = 2 − erfc(−x).
 * Relative accuracy ~1e-13, ample for an accountant whose answer is rounded to 0.01.
 */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return Number.NaN;
  if (x < 0) return Math.log(2 - Math.exp(logErfc(-x)));
  if (x < 2) {
    // erf(x) = 2/√π Σ (-1)^n x^{2n+1} / (n! (2n+1))
    let term = x;
    let sum = x;
    const x2 = x * x;
    for (let n = 1; n < 200; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.log(1 - (2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …)))))
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let k = 1; k < 500; k++) {
    const a = k / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return -x * x - 0.5 * Math.log(Math.PI) - Math.log(f);
}

function logAInt(q: number, sigma: number, alpha: number): number {
  let logA = -Infinity;
  let logBinom = 0; // log C(alpha, 0)
  for (let i = 0; i <= alpha; i++) {
    if (i > 0) logBinom += Math.log((alpha - i + 1) / i);
    const s = logBinom + i * Math.log(q) + (alpha - i) * Math.log1p(-q) + (i * i - i) / (2 * sigma * sigma);
    logA = logAdd(logA, s);
  }
  return logA;
}

function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  // Generalised binomial coefficient C(alpha, i), carried as log|c| and sign.
  let logCoef = 0;
  let coefPositive = true;
  for (let i = 0; ; i++) {
    if (i > 0) {
      const ratio = (alpha - i + 1) / i;
      logCoef += Math.log(Math.abs(ratio));
      if (ratio < 0) coefPositive = !coefPositive;
    }
    const j = alpha - i;
    const logT0 = logCoef + i * Math.log(q) + j * Math.log1p(-q);
    const logT1 = logCoef + j * Math.log(q) + i * Math.log1p(-q);
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / (2 * sigma * sigma) + logE0;
    const logS1 = logT1 + (j * j - j) / (2 * sigma * sigma) + logE1;
    if (coefPositive) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100_000) throw new Error('logAFrac did not converge');
  }
  return logAdd(logA0, logA1);
}

/** RDP of one application of the sampled Gaussian mechanism at one order. */
export function rdpSampledGaussian(q: number, noiseMultiplier: number, order: number): number {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`sampling rate must be in [0, 1], got ${q}`);
  if (!(noiseMultiplier > 0)) throw new RangeError('noise multiplier must be positive');
  if (!(order > 1)) throw new RangeError('RDP orders must be > 1');
  if (q === 0) return 0;
  if (q === 1) return order / (2 * noiseMultiplier * noiseMultiplier);
  if (!Number.isFinite(order)) return Infinity;
  const logA = Number.isInteger(order)
    ? logAInt(q, noiseMultiplier, order)
    : logAFrac(q, noiseMultiplier, order);
  return logA / (order - 1);
}

/** `compute_rdp`: RDP after `steps` compositions, one value per order. */
export function computeRdp(
  q: number,
  noiseMultiplier: number,
  steps: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): Float64Array {
  return Float64Array.from(orders, (a) => steps * rdpSampledGaussian(q, noiseMultiplier, a));
}

export interface PrivacySpent {
  readonly epsilon: number;
  readonly delta: number;
  /** The RDP order that gave the tightest bound. */
  readonly order: number;
}

/** Balle et al. 2020 conversion (Opacus `get_privacy_spent`), minimised over the orders. */
export function privacySpent(
  rdp: ArrayLike<number>,
  delta: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): PrivacySpent {
  if (!(delta > 0 && delta < 1)) throw new RangeError('delta must be in (0, 1)');
  if (rdp.length !== orders.length) throw new RangeError('one RDP value per order');
  let best: PrivacySpent = { epsilon: Infinity, delta, order: Number.NaN };
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k]!;
    const eps = rdp[k]! - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (!Number.isNaN(eps) && eps < best.epsilon) best = { epsilon: Math.max(0, eps), delta, order: a };
  }
  return best;
}

/** ε after `steps` sampled Gaussian steps at (q, z), at δ. */
export function epsilonFor(
  q: number,
  noiseMultiplier: number,
  steps: number,
  delta: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): number {
  return privacySpent(computeRdp(q, noiseMultiplier, steps, orders), delta, orders).epsilon;
}

/**
 * The smallest noise multiplier (to a relative 1e-6, rounded up) for which `steps` steps at rate q
 * stay within `targetEpsilon` at δ — how a plan of q, steps and rounds is turned into z. ε falls
 * monotonically in z, so bisection; the answer is the upper end, so its ε never exceeds the target.
 * The search starts at z = 0.1: below that no plan is sensible and the series converge slowly.
 */
export function noiseMultiplierFor(
  targetEpsilon: number,
  q: number,
  steps: number,
  delta: number,
  orders: readonly number[] = DEFAULT_ORDERS,
): number {
  if (!(targetEpsilon > 0) || !Number.isFinite(targetEpsilon))
    throw new RangeError('target ε must be positive');
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError('steps must be a positive integer');
  const eps = (z: number) => epsilonFor(q, z, steps, delta, orders);
  let lo = 0.1;
  let hi = 1;
  while (eps(hi) > targetEpsilon) {
    lo = hi;
    hi *= 2;
    if (hi > 1e6) throw new RangeError(`no noise multiplier ≤ 1e6 reaches ε = ${targetEpsilon}`);
  }
  while (hi - lo > 1e-6 * hi) {
    const mid = (lo + hi) / 2;
    if (eps(mid) > targetEpsilon) lo = mid;
    else hi = mid;
  }
  return hi;
}

export interface RoundPrivacy {
  /** ε of this round alone (what the round would cost a fresh budget). */
  readonly epsilonRound: number;
  /** ε of all rounds so far, composed in RDP (much less than the sum of the per-round values). */
  readonly epsilonTotal: number;
  readonly delta: number;
  readonly rounds: number;
}

/**
 * Update-level running accountant (see the header): one step is one round in which a
 * participant's whole update is the protected unit. Rounds may differ in sampling rate and noise (adaptive clipping changes the
 * effective noise multiplier), so RDP is accumulated per order and converted on demand.
 */
export class RdpAccountant {
  private readonly rdp: Float64Array;
  private count = 0;

  readonly delta: number;
  readonly orders: readonly number[];
  constructor(delta: number, orders: readonly number[] = DEFAULT_ORDERS) {
    this.delta = delta;
    this.orders = orders;
    if (!(delta > 0 && delta < 1)) throw new RangeError('delta must be in (0, 1)');
    this.rdp = new Float64Array(orders.length);
  }

  get rounds(): number {
    return this.count;
  }

  /** Account for `steps` rounds at sampling rate q and noise multiplier z; returns the report. */
  step(q: number, noiseMultiplier: number, steps = 1): RoundPrivacy {
    const one = computeRdp(q, noiseMultiplier, 1, this.orders);
    for (let k = 0; k < one.length; k++) this.rdp[k]! += steps * one[k]!;
    this.count += steps;
    return {
      epsilonRound: privacySpent(one, this.delta, this.orders).epsilon,
      epsilonTotal: this.spent().epsilon,
      delta: this.delta,
      rounds: this.count,
    };
  }

  spent(): PrivacySpent {
    if (this.count === 0) return { epsilon: 0, delta: this.delta, order: Number.NaN };
    return privacySpent(this.rdp, this.delta, this.orders);
  }
}
