import { DecodeError } from './errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bounds-checked reader; every failure is a DecodeError with a specific code. */
export class Reader {
  private pos: number;
  private readonly view: DataView;
  private readonly base: number;
  private readonly limit: number;

  private readonly buf: Uint8Array;
  /**
   * `view`, `base` and `limit` are for `sub` only: a nested reader shares its parent's buffer
   * and DataView (a DataView per entry was a measurable part of decoding a block).
   */
  constructor(buf: Uint8Array, view?: DataView, base = 0, limit = buf.length) {
    this.buf = buf;
    this.view = view ?? new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.base = base;
    this.pos = base;
    this.limit = limit;
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.pos - this.base;
  }

  get remaining(): number {
    return this.limit - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.limit) {
      throw new DecodeError(
        'truncated',
        `${what} needs ${n} bytes at offset ${this.offset}, ${this.remaining} left`,
      );
    }
  }

  /** A reader over the next `length` bytes, which this reader then skips (a length-prefixed value). */
  sub(length: number, what = 'bytes'): Reader {
    this.need(length, what);
    const r = new Reader(this.buf, this.view, this.pos, this.pos + length);
    this.pos += length;
    return r;
  }

  /** The bytes between two offsets of this reader, as a view. */
  span(from: number, to: number): Uint8Array {
    return this.buf.subarray(this.base + from, this.base + to);
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(what = 'u64'): number {
    this.need(8, what);
    // Two halves instead of getBigUint64: no BigInt per timestamp. 2^53-1 has 21 high bits.
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (hi > 0x1f_ffff) throw new DecodeError('invalid-value', `${what} exceeds 2^53-1`);
    return hi * 0x1_0000_0000 + lo;
  }

  f64(what = 'f64'): number {
    this.need(8, what);
    const v = this.view.getFloat64(this.pos);
    if (!Number.isFinite(v)) throw new DecodeError('invalid-value', `${what} is not finite`);
    if (Object.is(v, -0)) throw new DecodeError('non-canonical', `${what} is negative zero`);
    this.pos += 8;
    return v;
  }

  varint(max: number, what = 'varint'): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) throw new DecodeError('invalid-value', `${what} is too long`);
      const b = this.u8(what);
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw new DecodeError('non-canonical', `${what} has a redundant zero byte`);
        break;
      }
      scale *= 0x80;
    }
    if (result > max) throw new DecodeError('oversized', `${what} ${result} exceeds ${max}`);
    return result;
  }

  fixed(length: number, what = 'bytes'): Uint8Array {
    this.need(length, what);
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  bytes(maxLength: number, what = 'bytes'): Uint8Array {
    const len = this.varint(maxLength, `${what} length`);
    return this.fixed(len, what);
  }

  string(maxBytes: number, what = 'string'): string {
    const raw = this.bytes(maxBytes, what);
    try {
      return utf8.decode(raw);
    } catch {
      throw new DecodeError('invalid-value', `${what} is not valid UTF-8`);
    }
  }

  /** Decoders call this last: trailing bytes would make two byte strings decode to one value. */
  end(what = 'value'): void {
    if (this.pos !== this.limit) {
      throw new DecodeError('trailing-bytes', `${this.remaining} bytes after ${what}`);
    }
  }
}
