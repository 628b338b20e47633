/**
 * Hashed bag-of-words features: lowercase word tokens, hashed into 2^bits signed buckets
 * (Weinberger et al. 2009), log(1 + tf) weights, L2-normalised. Hashing keeps the model's size fixed
 * and the same on every node without agreeing on a vocabulary, which would itself leak words.
 */

/** One example as a sparse row: indices strictly increasing, values aligned with them. */
export interface SparseRow {
  readonly indices: Uint32Array;
  readonly values: Float32Array;
}

/** A labelled data set: rows, labels (1 = spam) and the feature dimension. */
export interface Examples {
  readonly dim: number;
  readonly rows: readonly SparseRow[];
  readonly labels: Uint8Array;
}

export interface FeatureOptions {
  /** log2 of the number of buckets. */
  readonly bits: number;
  /**
   * Which headers to keep. Routing headers (Received, Message-ID, …) identify the corpus' mail
   * servers rather than spam, so by default only Subject, From and Content-Type survive.
   */
  readonly headers: 'none' | 'some' | 'all';
  /** Only the first `maxChars` characters of the body are tokenised (bounds the cost of huge mails). */
  readonly maxChars: number;
}

export const DEFAULT_FEATURES: FeatureOptions = Object.freeze({
  bits: 14,
  headers: 'some',
  maxChars: 20_000,
});

const KEPT_HEADERS = /^(subject|from|content-type):/i;
const TOKEN = /[a-z0-9$!][a-z0-9$!'_-]*/g;
const MAX_TOKEN = 30;

/** Splits a raw mail at the first blank line and keeps the selected headers plus the body. */
export function mailText(raw: string, opts: Pick<FeatureOptions, 'headers' | 'maxChars'>): string {
  const normalised = raw.replace(/\r\n/g, '\n');
  const cut = normalised.indexOf('\n\n');
  const head = cut < 0 ? normalised : normalised.slice(0, cut);
  const body = cut < 0 ? '' : normalised.slice(cut + 2, cut + 2 + opts.maxChars);
  if (opts.headers === 'all') return `${head}\n${body}`;
  if (opts.headers === 'none') return body;
  // Header continuation lines start with whitespace and belong to the header above.
  const kept: string[] = [];
  let keep = false;
  for (const line of head.split('\n')) {
    if (/^[ \t]/.test(line)) {
      if (keep) kept.push(line);
      continue;
    }
    keep = KEPT_HEADERS.test(line);
    if (keep) kept.push(line);
  }
  return `${kept.join('\n')}\n${body}`;
}

/** Lowercase word tokens; over-long runs (base64 blobs) are dropped rather than hashed. */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const m of text.toLowerCase().matchAll(TOKEN)) {
    const t = m[0];
    if (t.length >= 2 && t.length <= MAX_TOKEN) out.push(t);
  }
  return out;
}

/** 32-bit FNV-1a over UTF-16 code units, finished with murmur3's fmix32 so low bits mix well. */
export function hashToken(token: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Features of already-extracted text: signed hashed counts → log(1 + |tf|)·sign, L2-normalised. */
export function featurizeText(text: string, bits: number): SparseRow {
  if (!Number.isInteger(bits) || bits < 1 || bits > 24)
    throw new RangeError(`bits must be in 1..24, got ${bits}`);
  const mask = (1 << bits) - 1;
  const counts = new Map<number, number>();
  for (const t of tokenize(text)) {
    const h = hashToken(t);
    // The top bit picks the sign, so collisions cancel in expectation instead of piling up.
    const sign = h >>> 31 ? -1 : 1;
    const bucket = h & mask;
    counts.set(bucket, (counts.get(bucket) ?? 0) + sign);
  }
  const indices = Uint32Array.from([...counts.keys()].filter((k) => counts.get(k) !== 0)).sort();
  const values = new Float32Array(indices.length);
  let sq = 0;
  for (let k = 0; k < indices.length; k++) {
    const c = counts.get(indices[k]!)!;
    const v = Math.sign(c) * Math.log1p(Math.abs(c));
    values[k] = v;
    sq += v * v;
  }
  if (sq > 0) {
    const inv = 1 / Math.sqrt(sq);
    for (let k = 0; k < values.length; k++) values[k]! *= inv;
  }
  return { indices, values };
}

/** Features of a raw mail (headers filtered as configured). */
export function featurize(raw: string, opts: FeatureOptions = DEFAULT_FEATURES): SparseRow {
  return featurizeText(mailText(raw, opts), opts.bits);
}

/** Dot product of a sparse row with dense weights. */
export function sparseDot(row: SparseRow, w: ArrayLike<number>): number {
  let s = 0;
  const { indices, values } = row;
  for (let k = 0; k < indices.length; k++) s += values[k]! * w[indices[k]!]!;
  return s;
}
