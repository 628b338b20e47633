/**
 * t-of-n Shamir secret sharing over GF(2^8), byte by byte (as in SLIP-39 / `ssss`): a 32-byte
 * secret becomes 32 independent random polynomials of degree t − 1, and share x is their values
 * at x. Any t shares give the secret; t − 1 shares are uniformly distributed. Byte-wise sharing
 * fits 256-bit keys exactly, unlike a prime field of 255 bits, and limits n to 255.
 */

const EXP = new Uint8Array(510);
const LOG = new Uint8Array(256);
{
  // 3 generates the multiplicative group of GF(2^8) mod x^8 + x^4 + x^3 + x + 1 (AES).
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    EXP[i + 255] = x;
    LOG[x] = i;
    x ^= (x << 1) ^ (x & 0x80 ? 0x11b : 0);
    x &= 0xff;
  }
}

const mul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!);
const div = (a: number, b: number): number => {
  if (b === 0) throw new RangeError('division by zero in GF(256)');
  return a === 0 ? 0 : EXP[LOG[a]! + 255 - LOG[b]!]!;
};

export interface Share {
  /** Evaluation point 1..255; in secure aggregation, the holder's participant id. */
  readonly x: number;
  readonly y: Uint8Array;
}

export const MAX_SHARES = 255;

/**
 * Shares `secret` at the points `xs` (distinct, 1..255) with threshold t. `randomBytes` supplies the
 * polynomial coefficients: the OS CSPRNG in production, a seeded stream only in tests.
 */
export function splitSecret(
  secret: Uint8Array,
  xs: readonly number[],
  threshold: number,
  randomBytes: (n: number) => Uint8Array,
): Share[] {
  if (!Number.isInteger(threshold) || threshold < 1) throw new RangeError('threshold must be ≥ 1');
  if (xs.length < threshold) throw new RangeError(`${xs.length} shares cannot meet threshold ${threshold}`);
  if (new Set(xs).size !== xs.length) throw new RangeError('share points must be distinct');
  for (const x of xs)
    if (!Number.isInteger(x) || x < 1 || x > MAX_SHARES) throw new RangeError(`bad point ${x}`);
  const len = secret.length;
  const coeffs = randomBytes((threshold - 1) * len);
  if (coeffs.length !== (threshold - 1) * len) throw new RangeError('randomBytes returned the wrong length');
  return xs.map((x) => {
    const y = new Uint8Array(len);
    for (let b = 0; b < len; b++) {
      // Horner from the highest coefficient down to the secret.
      let acc = 0;
      for (let k = threshold - 2; k >= 0; k--) acc = mul(acc, x) ^ coeffs[k * len + b]!;
      y[b] = mul(acc, x) ^ secret[b]!;
    }
    return { x, y };
  });
}

/** Lagrange interpolation at 0 over the first `threshold` shares. */
export function combineShares(shares: readonly Share[], threshold: number): Uint8Array {
  if (shares.length < threshold) throw new RangeError(`need ${threshold} shares, have ${shares.length}`);
  const use = shares.slice(0, threshold);
  const xs = use.map((s) => s.x);
  if (new Set(xs).size !== xs.length) throw new RangeError('duplicate share points');
  const len = use[0]!.y.length;
  if (use.some((s) => s.y.length !== len)) throw new RangeError('shares differ in length');
  // Lagrange basis at 0: l_i = Π_{j≠i} x_j / (x_j − x_i); subtraction is XOR in GF(2^8).
  const basis = xs.map((xi, i) => {
    let num = 1;
    let den = 1;
    for (let j = 0; j < xs.length; j++) {
      if (j === i) continue;
      num = mul(num, xs[j]!);
      den = mul(den, xs[j]! ^ xi);
    }
    return div(num, den);
  });
  const out = new Uint8Array(len);
  for (let b = 0; b < len; b++) {
    let acc = 0;
    for (let i = 0; i < use.length; i++) acc ^= mul(basis[i]!, use[i]!.y[b]!);
    out[b] = acc;
  }
  return out;
}
