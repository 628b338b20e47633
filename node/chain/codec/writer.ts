const utf8 = new TextEncoder();
/** In a `u` regex a surrogate pair is one code point, so this matches lone surrogates only. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Append-only binary writer for the canonical encodings (big-endian integers, LEB128 lengths). */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private len = 0;

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(initialCapacity);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) throw new RangeError(`u8 out of range: ${v}`);
    this.reserve(1);
    this.buf[this.len++] = v;
    return this;
  }

  u32(v: number): this {
    // DataView would silently wrap (2^32 -> 0, -1 -> 2^32-1, 1.5 -> 1): two values, one encoding.
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw new RangeError(`u32 out of range: ${v}`);
    this.reserve(4);
    this.view.setUint32(this.len, v);
    this.len += 4;
    return this;
  }

  /** Unsigned 64-bit integer from a safe JS integer. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.reserve(8);
    this.view.setBigUint64(this.len, BigInt(v));
    this.len += 8;
    return this;
  }

  f64(v: number): this {
    if (!Number.isFinite(v)) throw new RangeError(`f64 must be finite: ${v}`);
    this.reserve(8);
    // -0 and +0 would be two encodings of one value; normalise.
    this.view.setFloat64(this.len, v === 0 ? 0 : v);
    this.len += 8;
    return this;
  }

  /** Minimal unsigned LEB128, for lengths and counts. */
  varint(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`varint out of range: ${v}`);
    while (v >= 0x80) {
      this.u8((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    return this.u8(v);
  }

  fixed(bytes: Uint8Array, length: number): this {
    if (bytes.length !== length) throw new RangeError(`expected ${length} bytes, got ${bytes.length}`);
    this.reserve(length);
    this.buf.set(bytes, this.len);
    this.len += length;
    return this;
  }

  /** Length-prefixed bytes. */
  bytes(bytes: Uint8Array): this {
    this.varint(bytes.length);
    return this.fixed(bytes, bytes.length);
  }

  /** UTF-8; a lone surrogate is refused, since TextEncoder would silently turn it into U+FFFD. */
  string(s: string): this {
    if (LONE_SURROGATE.test(s)) throw new RangeError('string is not well-formed UTF-16 (lone surrogate)');
    return this.bytes(utf8.encode(s));
  }

  get length(): number {
    return this.len;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}
