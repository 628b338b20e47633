/**
 * The canonical encoding of a model version's parameters and its content address. The hash is
 * what a `model` entry commits to, so every node must produce the same bytes for the same
 * parameters: a fixed header, then little-endian float64s with −0 folded into +0.
 *
 *   tag u8 (0x4d 'M') | version u8 | count u32 (big-endian) | count × f64 (little-endian)
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { DecodeError } from '../../chain/codec/errors.ts';
import type { Params } from '../logistic.ts';

const TAG = 0x4d;
const VERSION = 1;
const HEADER = 6;
/** Up to 2^17 hashed features plus the bias: 1 MiB of parameters. */
export const MAX_PARAMS = (1 << 17) + 1;
export const MAX_MODEL_BYTES = HEADER + 8 * MAX_PARAMS;

export const modelBytesFor = (count: number): number => HEADER + 8 * count;

export function encodeModel(params: Params): Uint8Array {
  if (params.length < 1 || params.length > MAX_PARAMS) throw new RangeError(`${params.length} parameters`);
  const out = new Uint8Array(modelBytesFor(params.length));
  const view = new DataView(out.buffer);
  out[0] = TAG;
  out[1] = VERSION;
  view.setUint32(2, params.length);
  for (let i = 0; i < params.length; i++) {
    const x = params[i]!;
    if (!Number.isFinite(x)) throw new RangeError(`parameter ${i} is not finite`);
    view.setFloat64(HEADER + 8 * i, x === 0 ? 0 : x, true);
  }
  return out;
}

/** Decodes and checks canonical form; `expectCount` pins the model's size when known. */
export function decodeModel(bytes: Uint8Array, expectCount?: number): Params {
  if (bytes.length > MAX_MODEL_BYTES) throw new DecodeError('oversized', `${bytes.length} model bytes`);
  if (bytes.length < HEADER) throw new DecodeError('truncated', 'model header');
  if (bytes[0] !== TAG) throw new DecodeError('unknown-tag', `model tag ${bytes[0]}`);
  if (bytes[1] !== VERSION) throw new DecodeError('unsupported-version', `model version ${bytes[1]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(2);
  if (count < 1 || count > MAX_PARAMS) throw new DecodeError('invalid-value', `${count} parameters`);
  if (expectCount !== undefined && count !== expectCount)
    throw new DecodeError('invalid-value', `${count} parameters, expected ${expectCount}`);
  if (bytes.length !== modelBytesFor(count))
    throw new DecodeError(bytes.length < modelBytesFor(count) ? 'truncated' : 'trailing-bytes', 'model body');
  const params = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const x = view.getFloat64(HEADER + 8 * i, true);
    if (!Number.isFinite(x)) throw new DecodeError('invalid-value', `parameter ${i} is not finite`);
    if (Object.is(x, -0)) throw new DecodeError('non-canonical', `parameter ${i} is −0`);
    params[i] = x;
  }
  return params;
}

/** SHA-256 of the canonical encoding: the model version's content address. */
export const modelHash = (encoded: Uint8Array): Uint8Array => sha256(encoded);
