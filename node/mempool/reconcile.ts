import { randomBytes } from 'node:crypto';
import { sha256 } from '../chain/hash.ts';

/**
 * Range-based set reconciliation (after Negentropy) over entry ids. Ids are SHA-256 outputs,
 * so ranges are intervals of the id space (keyed by the first 4 bytes) and need no explicit
 * item boundaries. A side sends, per range, either a fingerprint or — once a range is small —
 * the short ids it holds there; the other side answers mismatches by splitting or listing, and
 * whoever sees both lists for a range knows exactly what each side lacks. Fingerprints are
 * salted per session, so a chance collision does not hide a difference twice.
 *
 * Typical exchange for 10,000 items with 100 missing on one side: fingerprints of ~1,024
 * uniform buckets, the id lists of the ~95 buckets that differ, then the missing entries: two
 * round trips. Pure logic: the caller moves messages and entries.
 */

export const SHORT_ID_BYTES = 6;
const FP_BYTES = 5;
const SPACE = 2 ** 32;
const SPLIT = 16;
/** A range holding at most this many of our items is answered with its id list. */
const LIST_THRESHOLD = 24;

export type RangeMessage =
  /** Fingerprints of `count` equal sub-ranges of [lo, hi). */
  | {
      readonly kind: 'fingerprints';
      readonly lo: number;
      readonly hi: number;
      readonly fps: readonly Uint8Array[];
    }
  /** All short ids the sender holds in [lo, hi); `final` means the sender already has the peer's list. */
  | { readonly kind: 'ids'; readonly lo: number; readonly hi: number; readonly ids: readonly Uint8Array[] };

export interface ReconcileMessage {
  readonly salt: Uint8Array;
  readonly ranges: readonly RangeMessage[];
  /** Short ids the sender wants the full items of. */
  readonly requests: readonly Uint8Array[];
}

export interface Outcome {
  /** Our items the peer lacks: send them with the reply. */
  readonly send: Uint8Array[];
  /** Short ids the peer has and we lack: request them. */
  readonly need: Uint8Array[];
}

interface Item {
  readonly id: Uint8Array;
  readonly key: number;
  readonly short: string;
  readonly value: bigint;
}

const keyOf = (id: Uint8Array) => ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
const shortOf = (id: Uint8Array) => Buffer.from(id.subarray(0, SHORT_ID_BYTES)).toString('hex');

export class Reconciler {
  private readonly items: Item[];
  private readonly byShort = new Map<string, Item>();

  constructor(ids: Iterable<Uint8Array>) {
    this.items = [...ids]
      .map((id) => ({
        id,
        key: keyOf(id),
        short: shortOf(id),
        value: BigInt(`0x${Buffer.from(id).toString('hex')}`),
      }))
      .sort((a, b) => a.key - b.key || Buffer.compare(a.id, b.id));
    for (const it of this.items) this.byShort.set(it.short, it);
  }

  get size(): number {
    return this.items.length;
  }

  /** First message: uniform buckets sized so that a few percent of difference costs little. */
  initiate(salt: Uint8Array = randomBytes(8)): ReconcileMessage {
    const buckets = Math.min(
      4096,
      Math.max(1, 2 ** Math.ceil(Math.log2(Math.max(1, this.items.length / 10)))),
    );
    if (this.items.length <= LIST_THRESHOLD) {
      return {
        salt,
        ranges: [
          { kind: 'ids', lo: 0, hi: SPACE, ids: this.items.map((i) => i.id.subarray(0, SHORT_ID_BYTES)) },
        ],
        requests: [],
      };
    }
    return { salt, ranges: [this.fingerprints(0, SPACE, buckets, salt)], requests: [] };
  }

  /**
   * Answers a message: returns the reply's ranges (empty when this side is done) and what to
   * send and request. The caller adds the full items for `send` and for the peer's requests.
   */
  respond(msg: ReconcileMessage): { reply: ReconcileMessage; outcome: Outcome; requested: Uint8Array[] } {
    const ranges: RangeMessage[] = [];
    const send: Uint8Array[] = [];
    const need: Uint8Array[] = [];
    for (const r of msg.ranges) {
      if (r.kind === 'fingerprints') {
        const step = (r.hi - r.lo) / r.fps.length;
        for (let i = 0; i < r.fps.length; i++) {
          const lo = r.lo + Math.round(step * i);
          const hi = i === r.fps.length - 1 ? r.hi : r.lo + Math.round(step * (i + 1));
          const [a, b] = this.span(lo, hi);
          if (Buffer.compare(this.fingerprint(a, b, msg.salt), r.fps[i]!) === 0) continue;
          if (b - a <= LIST_THRESHOLD || hi - lo <= SPLIT) {
            ranges.push({
              kind: 'ids',
              lo,
              hi,
              ids: this.items.slice(a, b).map((it) => it.id.subarray(0, SHORT_ID_BYTES)),
            });
          } else {
            ranges.push(this.fingerprints(lo, hi, SPLIT, msg.salt));
          }
        }
      } else {
        // The peer listed its ids here: compare with ours, and no further message is needed for this range.
        const theirs = new Set(r.ids.map((s) => Buffer.from(s).toString('hex')));
        const [a, b] = this.span(r.lo, r.hi);
        const ours = new Set<string>();
        for (let i = a; i < b; i++) {
          const it = this.items[i]!;
          ours.add(it.short);
          if (!theirs.has(it.short)) send.push(it.id);
        }
        for (const s of r.ids) if (!ours.has(Buffer.from(s).toString('hex'))) need.push(s);
      }
    }
    const requested = msg.requests
      .map((s) => this.byShort.get(Buffer.from(s).toString('hex'))?.id)
      .filter((x) => x !== undefined);
    return { reply: { salt: msg.salt, ranges, requests: need }, outcome: { send, need }, requested };
  }

  /** Index interval [a, b) of our items whose keys fall in [lo, hi). */
  private span(lo: number, hi: number): [number, number] {
    return [this.lowerBound(lo), this.lowerBound(hi)];
  }

  private lowerBound(key: number): number {
    let lo = 0;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.items[mid]!.key < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private fingerprints(lo: number, hi: number, count: number, salt: Uint8Array): RangeMessage {
    const step = (hi - lo) / count;
    const fps: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const a = lo + Math.round(step * i);
      const b = i === count - 1 ? hi : lo + Math.round(step * (i + 1));
      const [x, y] = this.span(a, b);
      fps.push(this.fingerprint(x, y, salt));
    }
    return { kind: 'fingerprints', lo, hi, fps };
  }

  /** Salted hash of the count and the sum of the ids mod 2^256 (order-independent, as in Negentropy). */
  private fingerprint(a: number, b: number, salt: Uint8Array): Uint8Array {
    let sum = 0n;
    for (let i = a; i < b; i++) sum += this.items[i]!.value;
    sum &= (1n << 256n) - 1n;
    const buf = Buffer.alloc(8 + 8 + 32);
    buf.set(salt.subarray(0, 8), 0);
    buf.writeUInt32BE(b - a, 12);
    buf.write(sum.toString(16).padStart(64, '0'), 16, 'hex');
    return sha256(buf).subarray(0, FP_BYTES);
  }
}

export const FINGERPRINT_BYTES = FP_BYTES;
