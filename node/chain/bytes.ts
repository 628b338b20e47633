/** Small helpers for byte strings; hex strings are the map keys throughout the chain code. */
export type Hex = string;

export const toHex = (b: Uint8Array): Hex =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** The bytes as a latin1 string, one character per byte (no copy of the bytes). */
export const toLatin1 = (b: Uint8Array): string =>
  Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

export function fromHex(h: Hex): Uint8Array<ArrayBuffer> {
  if (h.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(h)) throw new Error(`not a hex string: ${h.slice(0, 16)}…`);
  return new Uint8Array(Buffer.from(h, 'hex'));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Big-endian unsigned integer of a byte string. */
export function bytesToBigInt(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${toHex(b)}`);
}

export function bigIntToBytes(v: bigint, length: number): Uint8Array {
  if (v < 0n) throw new RangeError('negative');
  const hex = v.toString(16).padStart(length * 2, '0');
  if (hex.length > length * 2) throw new RangeError(`${v} does not fit in ${length} bytes`);
  return fromHex(hex);
}

export const ZERO_HASH = new Uint8Array(32);
