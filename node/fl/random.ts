/**
 * Randomness for the FL code. Two kinds, deliberately separate: seeded streams for everything that
 * must repeat (data split, SGD order, test noise), and a crypto-backed stream for the DP noise of a
 * real round, where a predictable seed would let anyone subtract the noise again.
 */
import { randomFillSync } from 'node:crypto';

/** Uniform samples in [0, 1). */
export type Uniform = () => number;

/** mulberry32: small and fast; fine for shuffles, not for secrets. */
export function seededUniform(seed: number): Uniform {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 53-bit uniforms from the OS CSPRNG, buffered so per-coordinate noise does not call into C each time. */
export function cryptoUniform(): Uniform {
  const buf = new Uint32Array(2048);
  let pos = buf.length;
  return () => {
    if (pos >= buf.length) {
      randomFillSync(buf);
      pos = 0;
    }
    const hi = buf[pos++]! >>> 5; // 27 bits
    const lo = buf[pos++]! >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  };
}

/** Standard normal samples by Box–Muller (both outputs used). */
export function gaussian(uniform: Uniform): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = uniform(); // log(0) would be -Infinity
    const v = uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** Fisher–Yates, in place. */
export function shuffleInPlace<T extends Uint32Array | number[]>(a: T, uniform: Uniform): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}
