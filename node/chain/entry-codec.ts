import { toHex } from './bytes.ts';
import { DecodeError } from './codec/errors.ts';
import { Reader } from './codec/reader.ts';
import { Writer } from './codec/writer.ts';
import { sha256 } from './hash.ts';
import {
  ENTRY_KIND_CODE,
  type Entry,
  type EntryPayload,
  FORMAT_VERSION,
  type KeyValue,
  LIMITS,
  type SealedEntry,
  TAG,
  type UnsignedEntry,
} from './types.ts';

const ZERO32 = new Uint8Array(32);
const isZero = (b: Uint8Array) => b.every((x) => x === 0);

function writeKeyValues(w: Writer, pairs: readonly KeyValue[], max: number, what: string): void {
  if (pairs.length > max) throw new RangeError(`${what}: at most ${max} pairs`);
  assertSortedUnique(
    pairs.map(([k]) => k),
    what,
  );
  w.varint(pairs.length);
  for (const [k, v] of pairs) {
    w.string(assertMaxBytes(k, LIMITS.keyBytes, `${what} key`));
    w.string(assertMaxBytes(v, LIMITS.valueBytes, `${what} value`));
  }
}

/** The decoder's per-string limits, enforced at encode time so no entry is sealed that cannot be decoded. */
function assertMaxBytes(s: string, max: number, what: string): string {
  if (Buffer.byteLength(s) > max) throw new RangeError(`${what}: at most ${max} UTF-8 bytes`);
  return s;
}

function assertSortedUnique(keys: readonly string[], what: string): void {
  for (let i = 1; i < keys.length; i++) {
    if (!(keys[i - 1]! < keys[i]!)) throw new RangeError(`${what}: keys must be sorted and unique`);
  }
}

function readKeyValues(r: Reader, max: number, what: string): KeyValue[] {
  const n = r.varint(max, `${what} count`);
  const out: KeyValue[] = [];
  for (let i = 0; i < n; i++) {
    const k = r.string(LIMITS.keyBytes, `${what} key`);
    const v = r.string(LIMITS.valueBytes, `${what} value`);
    if (i > 0 && !(out[i - 1]![0] < k))
      throw new DecodeError('non-canonical', `${what} keys not sorted/unique`);
    out.push([k, v]);
  }
  return out;
}

function writePayload(w: Writer, p: EntryPayload): void {
  w.u8(ENTRY_KIND_CODE[p.kind]);
  switch (p.kind) {
    case 'knowledge':
      if (Buffer.byteLength(p.content) > LIMITS.contentBytes) throw new RangeError('content too large');
      w.string(p.content);
      writeKeyValues(w, p.metadata, LIMITS.metadataPairs, 'metadata');
      return;
    case 'model':
      // 32 zero bytes are the parent field's "no parent": a version of that hash could never be
      // named as a parent (a successor would decode as parentless), so neither field may hold it.
      if (isZero(p.modelHash)) throw new RangeError('model hash is all zeros');
      if (p.parentHash !== null && isZero(p.parentHash))
        throw new RangeError('parent hash is all zeros (null is "no parent")');
      w.fixed(p.modelHash, 32);
      w.fixed(p.parentHash ?? ZERO32, 32);
      w.u32(p.round);
      if (p.metrics.length > LIMITS.metrics) throw new RangeError('too many metrics');
      assertSortedUnique(
        p.metrics.map(([n]) => n),
        'metrics',
      );
      w.varint(p.metrics.length);
      for (const [name, value] of p.metrics)
        w.string(assertMaxBytes(name, LIMITS.keyBytes, 'metric name')).f64(value);
      if (p.epsilon < 0) throw new RangeError('epsilon must be non-negative');
      w.f64(p.epsilon);
      return;
    case 'config':
      if (p.changes.length === 0) throw new RangeError('config entry without changes');
      writeKeyValues(w, p.changes, LIMITS.configChanges, 'config');
      return;
  }
}

function readPayload(r: Reader): EntryPayload {
  const code = r.u8('entry kind');
  switch (code) {
    case ENTRY_KIND_CODE.knowledge: {
      const content = r.string(LIMITS.contentBytes, 'content');
      const metadata = readKeyValues(r, LIMITS.metadataPairs, 'metadata');
      return { kind: 'knowledge', content, metadata };
    }
    case ENTRY_KIND_CODE.model: {
      const modelHash = r.fixed(32, 'model hash');
      // Reserved for "no parent" (writePayload): a version named so would pin the head for good.
      if (isZero(modelHash)) throw new DecodeError('invalid-value', 'model hash is all zeros');
      const parent = r.fixed(32, 'parent hash');
      const parentHash = isZero(parent) ? null : parent;
      const round = r.u32('round');
      const n = r.varint(LIMITS.metrics, 'metric count');
      const metrics: [string, number][] = [];
      for (let i = 0; i < n; i++) {
        const name = r.string(LIMITS.keyBytes, 'metric name');
        if (i > 0 && !(metrics[i - 1]![0] < name))
          throw new DecodeError('non-canonical', 'metrics not sorted');
        metrics.push([name, r.f64('metric value')]);
      }
      const epsilon = r.f64('epsilon');
      if (epsilon < 0) throw new DecodeError('invalid-value', 'epsilon is negative');
      return { kind: 'model', modelHash, parentHash, round, metrics, epsilon };
    }
    case ENTRY_KIND_CODE.config: {
      const changes = readKeyValues(r, LIMITS.configChanges, 'config');
      if (changes.length === 0) throw new DecodeError('invalid-value', 'config entry without changes');
      return { kind: 'config', changes };
    }
    default:
      throw new DecodeError('unknown-tag', `entry kind ${code}`);
  }
}

/** Canonical encoding of the signed part of an entry. */
export function encodeUnsignedEntry(e: UnsignedEntry): Uint8Array {
  const w = new Writer(128);
  w.u8(TAG.entry).u8(e.version).fixed(e.author, 32).u64(e.timestamp);
  writePayload(w, e.payload);
  return w.finish();
}

export function entryIdOf(e: UnsignedEntry): Uint8Array {
  return sha256(encodeUnsignedEntry(e));
}

/** Computes id and encoding of an entry once, so hot paths never re-encode. */
export function sealEntry(e: Entry): SealedEntry {
  const unsigned = encodeUnsignedEntry(e);
  if (e.signature.length !== 64) throw new RangeError('signature must be 64 bytes');
  const encoded = new Uint8Array(unsigned.length + 64);
  encoded.set(unsigned);
  encoded.set(e.signature, unsigned.length);
  if (encoded.length > LIMITS.entryBytes) throw new RangeError(`entry encodes to ${encoded.length} bytes`);
  const id = sha256(unsigned);
  return { ...e, id, idHex: toHex(id), encoded };
}

/**
 * Reads one entry spanning all of `r`: for callers that own the bytes behind `r` and never
 * change them (the block decoder, which has copied its input once), as fields are views.
 */
export function readEntry(r: Reader): SealedEntry {
  const tag = r.u8('entry tag');
  if (tag !== TAG.entry) throw new DecodeError('unknown-tag', `expected entry tag, got ${tag}`);
  const version = r.u8('entry version');
  if (version !== FORMAT_VERSION) throw new DecodeError('unsupported-version', `entry version ${version}`);
  const author = r.fixed(32, 'author');
  const timestamp = r.u64('entry timestamp');
  const payload = readPayload(r);
  const unsignedEnd = r.offset;
  const signature = r.fixed(64, 'entry signature');
  r.end('entry');
  const id = sha256(r.span(0, unsignedEnd));
  return {
    version,
    author,
    timestamp,
    payload,
    signature,
    id,
    idHex: toHex(id),
    encoded: r.span(0, r.offset),
  };
}

/** Decodes an entry; the result shares no memory with `bytes`. */
export function decodeEntry(bytes: Uint8Array): SealedEntry {
  if (bytes.length > LIMITS.entryBytes) throw new DecodeError('oversized', `entry of ${bytes.length} bytes`);
  return readEntry(new Reader(bytes.slice()));
}
