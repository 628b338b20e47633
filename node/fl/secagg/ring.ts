/**
 * The finite ring of secure aggregation: Z_2^32, held in Uint32Array and added with wrap-around.
 * Real vectors are clamped to ±bound and scaled to integers so that the sum of up to
 * `maxParticipants` of them stays inside the signed 32-bit range: the unmasked sum then reads back
 * exactly as an Int32, with no modular ambiguity.
 */
import { chacha20 } from '@noble/ciphers/chacha.js';
import type { Uniform } from '../random.ts';

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  // Mask words are read straight from the keystream bytes; every party must read them alike.
  throw new Error('secure aggregation assumes a little-endian host');
}

export interface Quantiser {
  /** Integer steps per unit. */
  readonly scale: number;
  /** Each coordinate is clamped to [−bound, bound] before scaling. */
  readonly bound: number;
  readonly maxParticipants: number;
}

const INT32_MAX = 2 ** 31 - 1;

export function quantiserFor(bound: number, maxParticipants: number): Quantiser {
  if (!(bound > 0) || !Number.isFinite(bound)) throw new RangeError('bound must be positive and finite');
  if (!Number.isInteger(maxParticipants) || maxParticipants < 1) throw new RangeError('maxParticipants ≥ 1');
  // ⌈bound·scale⌉ per participant (stochastic rounding may round up), n of them, < 2^31.
  const scale = Math.floor((INT32_MAX - maxParticipants) / (bound * maxParticipants));
  if (scale < 1) throw new RangeError('bound too large for 32-bit aggregation');
  return { scale, bound, maxParticipants };
}

export interface Quantised {
  readonly words: Uint32Array;
  /** Coordinates that had to be clamped: a sign the bound is too small. */
  readonly clamped: number;
}

/**
 * Fixed-point encoding. With `uniform`, stochastic rounding (unbiased, so the error of the sum
 * averages out); without, round to nearest.
 */
export function quantise(v: ArrayLike<number>, q: Quantiser, uniform?: Uniform): Quantised {
  const words = new Uint32Array(v.length);
  let clamped = 0;
  for (let i = 0; i < v.length; i++) {
    let x = v[i]!;
    if (Number.isNaN(x)) throw new RangeError(`coordinate ${i} is NaN`);
    if (x > q.bound || x < -q.bound) {
      clamped++;
      x = x > 0 ? q.bound : -q.bound;
    }
    const s = x * q.scale;
    const fl = Math.floor(s);
    const n = uniform ? fl + (uniform() < s - fl ? 1 : 0) : Math.round(s);
    words[i] = n >>> 0;
  }
  return { words, clamped };
}

/** Reads a ring sum back as reals (Int32 interpretation, then unscaled). */
export function dequantise(sum: Uint32Array, q: Quantiser): Float64Array {
  const out = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i]! | 0) / q.scale;
  return out;
}

/** acc += x (mod 2^32), in place. */
export function addInto(acc: Uint32Array, x: Uint32Array): void {
  if (acc.length !== x.length) throw new RangeError('ring vectors differ in length');
  for (let i = 0; i < acc.length; i++) acc[i] = (acc[i]! + x[i]!) >>> 0;
}

/** acc −= x (mod 2^32), in place. */
export function subInto(acc: Uint32Array, x: Uint32Array): void {
  if (acc.length !== x.length) throw new RangeError('ring vectors differ in length');
  for (let i = 0; i < acc.length; i++) acc[i] = (acc[i]! - x[i]!) >>> 0;
}

const ZERO_NONCE = new Uint8Array(12);

/**
 * The PRG: a 256-bit seed expanded into `dim` ring elements by the ChaCha20 keystream (RFC 8439,
 * zero nonce — every seed is used for exactly one mask).
 */
export function expandMask(seed: Uint8Array, dim: number): Uint32Array {
  if (seed.length !== 32) throw new RangeError('mask seeds are 32 bytes');
  const stream = chacha20(seed, ZERO_NONCE, new Uint8Array(dim * 4));
  return new Uint32Array(stream.buffer, stream.byteOffset, dim);
}
