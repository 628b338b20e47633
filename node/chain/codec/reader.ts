import { DecodeError } from './errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bounds-checked reader; every failure is a DecodeError with a specific code. */
export class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new DecodeError(
        'truncated',
        `${what} needs ${n} bytes at offset ${this.pos}, ${this.remaining} left`,
      );
    }
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
    const v = this.view.getBigUint64(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError('invalid-value', `${what} exceeds 2^53-1`);
    return Number(v);
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
    if (this.pos !== this.buf.length) {
      throw new DecodeError('trailing-bytes', `${this.remaining} bytes after ${what}`);
    }
  }
}
