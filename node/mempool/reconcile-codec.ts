import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { decodeEntry } from '../chain/entry-codec.ts';
import { LIMITS, type SealedEntry } from '../chain/types.ts';
import { FINGERPRINT_BYTES, type RangeMessage, type ReconcileMessage, SHORT_ID_BYTES } from './reconcile.ts';

/** One reconciliation message on the wire: the protocol part plus the entries it carries. */
export interface ReconcileFrame extends ReconcileMessage {
  readonly entries: readonly SealedEntry[];
}

export const RECONCILE_LIMITS = {
  ranges: 8192,
  perRange: 4096,
  ids: 20_000,
  entries: 10_000,
  frameBytes: 16 * 1024 * 1024,
} as const;

const KIND = { fingerprints: 1, ids: 2 } as const;

export function encodeReconcileFrame(f: ReconcileFrame): Uint8Array {
  const w = new Writer(1024);
  w.u8(1).fixed(f.salt, 8).varint(f.ranges.length);
  for (const r of f.ranges) {
    w.u8(KIND[r.kind])
      .u32(r.lo)
      .varint(r.hi - r.lo);
    const parts = r.kind === 'fingerprints' ? r.fps : r.ids;
    const size = r.kind === 'fingerprints' ? FINGERPRINT_BYTES : SHORT_ID_BYTES;
    w.varint(parts.length);
    for (const p of parts) w.fixed(p, size);
  }
  w.varint(f.requests.length);
  for (const s of f.requests) w.fixed(s, SHORT_ID_BYTES);
  w.varint(f.entries.length);
  for (const e of f.entries) w.bytes(e.encoded);
  return w.finish();
}

export function decodeReconcileFrame(bytes: Uint8Array): ReconcileFrame {
  if (bytes.length > RECONCILE_LIMITS.frameBytes)
    throw new DecodeError('oversized', `frame of ${bytes.length} bytes`);
  const r = new Reader(bytes);
  const version = r.u8('version');
  if (version !== 1) throw new DecodeError('unsupported-version', `reconcile version ${version}`);
  const salt = r.fixed(8, 'salt').slice();
  const ranges: RangeMessage[] = [];
  const n = r.varint(RECONCILE_LIMITS.ranges, 'range count');
  let idTotal = 0;
  for (let i = 0; i < n; i++) {
    const kind = r.u8('range kind');
    const lo = r.u32('range start');
    const hi = lo + r.varint(2 ** 32 - lo, 'range span');
    if (hi <= lo) throw new DecodeError('invalid-value', 'empty range');
    const count = r.varint(RECONCILE_LIMITS.perRange, 'range items');
    if (kind === KIND.fingerprints) {
      if (count === 0) throw new DecodeError('invalid-value', 'fingerprint range without fingerprints');
      const fps = Array.from({ length: count }, () => r.fixed(FINGERPRINT_BYTES, 'fingerprint').slice());
      ranges.push({ kind: 'fingerprints', lo, hi, fps });
    } else if (kind === KIND.ids) {
      idTotal += count;
      if (idTotal > RECONCILE_LIMITS.ids) throw new DecodeError('oversized', 'too many ids');
      const ids = Array.from({ length: count }, () => r.fixed(SHORT_ID_BYTES, 'short id').slice());
      ranges.push({ kind: 'ids', lo, hi, ids });
    } else {
      throw new DecodeError('unknown-tag', `range kind ${kind}`);
    }
  }
  const requestCount = r.varint(RECONCILE_LIMITS.ids, 'request count');
  const requests = Array.from({ length: requestCount }, () => r.fixed(SHORT_ID_BYTES, 'request').slice());
  const entryCount = r.varint(RECONCILE_LIMITS.entries, 'entry count');
  const entries = Array.from({ length: entryCount }, (_, i) =>
    decodeEntry(r.bytes(LIMITS.entryBytes, `entry ${i}`)),
  );
  r.end('reconcile frame');
  return { salt, ranges, requests, entries };
}
