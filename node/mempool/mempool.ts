import { type Hex, toHex } from '../chain/bytes.ts';
import type { NetworkConfig } from '../chain/network-config.ts';
import type { SignatureVerifier } from '../chain/signature-cache.ts';
import type { SealedEntry } from '../chain/types.ts';
import { BlockValidationError, type ModelHeadErrorCode, validateEntry } from '../chain/validation.ts';
import type { MembershipErrorCode } from '../membership/roster-state.ts';
import { ReturnedEntries } from './returned-entries.ts';

/**
 * Bytes of a block kept free of entries for its envelope: tag, version, header, signature and
 * entry count need 252 bytes (block-codec.ts); the rest is margin for future header fields.
 */
export const BLOCK_ENVELOPE_RESERVE = 512;
/** Counted per selected entry for its length prefix (a varint of at most 3 bytes here). */
const ENTRY_FRAMING_BYTES = 4;

/** Entry bytes a block template may fill under the network's block size. */
export const templateEntryBudget = (config: NetworkConfig): number =>
  config.maxBlockBytes - BLOCK_ENVELOPE_RESERVE;

/**
 * The largest entry a miner can ever include: admitting a bigger one would leave it in every
 * mempool until evicted, since no template has room for it.
 */
export const maxMineableEntryBytes = (config: NetworkConfig): number =>
  templateEntryBudget(config) - ENTRY_FRAMING_BYTES;

/**
 * Where an entry came from, for quotas and eviction: a peer id (gossip, reconciliation), or one
 * of these. Entries a reorg returns are marked by the caller around block processing.
 */
export const SOURCE = {
  /** This node: its API, its own entries, tests and tools that add directly. */
  local: 'local',
  /** Handed back by a reorg (the block that held them left the main chain). */
  returned: 'returned',
  /** Retried from the hold of returned entries. */
  retried: 'retried',
  /** Reloaded from the store (their peers are not persisted). */
  restored: 'restored',
} as const;
export type EntrySource = string;

/**
 * What the store keeps of an entry's source, so that a restart keeps its protection: a local
 * or returned entry must not become one that peers can push out just because the node
 * restarted. Peer ids are not kept (a peer's share starts afresh on reopening).
 */
export type MempoolOrigin = 'local' | 'returned' | 'peer';

const originOfSource = (s: EntrySource): MempoolOrigin =>
  s === SOURCE.local ? 'local' : s === SOURCE.returned || s === SOURCE.retried ? 'returned' : 'peer';
const sourceOfOrigin = (o: MempoolOrigin | undefined): EntrySource =>
  o === 'local' ? SOURCE.local : o === 'returned' ? SOURCE.returned : SOURCE.restored;

/** Entries no peer can push out: only a local entry evicts a local one, returned ones never go. */
const protectedSource = (s: EntrySource) =>
  s === SOURCE.local || s === SOURCE.returned || s === SOURCE.retried;
const isReturned = (s: EntrySource) => s === SOURCE.returned || s === SOURCE.retried;

export interface MempoolOptions {
  readonly config: NetworkConfig;
  readonly verifier: SignatureVerifier;
  /** Whether the entry is already in the main chain (then it does not belong here). */
  readonly isIncluded: (idHex: Hex) => boolean;
  /**
   * Rules judged at the tip: membership (roster mode: why the entry's author may not have it
   * mined now) and the model head (a `model` entry must extend it), with the chain's own error
   * code; undefined when the entry may be mined on the tip.
   */
  readonly authorize?: (
    entry: SealedEntry,
    now: number,
  ) => { code: MembershipErrorCode | ModelHeadErrorCode; message: string } | undefined;
  readonly maxEntries?: number;
  readonly maxBytes?: number;
  /** Entries one peer may have in the pool (default a quarter of maxEntries). */
  readonly maxPerPeer?: number;
  /** Entries of one author that peers may have put in the pool (default a tenth of maxEntries). */
  readonly maxPerAuthor?: number;
  /** Bound of the hold for returned entries that do not fit (default 10× maxEntries and 4× maxBytes). */
  readonly maxHeldEntries?: number;
  readonly maxHeldBytes?: number;
  /** Every change of the hold (entry held, or null when it left): the chain persists them. */
  readonly onHeldChange?: (id: Hex, entry: SealedEntry | null) => void;
}

export type MempoolRejection =
  | 'already-included'
  | 'mempool-full'
  | 'entry-too-large'
  | BlockValidationError['code'];

/**
 * Why a full pool had no room: all of it (`pool`), or this peer's or author's share. A
 * returned entry that did not fit is `held` (kept aside, not lost).
 */
export type FullQuota = 'pool' | 'peer' | 'author' | 'held' | 'peer-rate' | 'rate' | 'share' | 'queue';

export type AddResult =
  | { readonly status: 'added'; readonly evicted: readonly SealedEntry[] }
  | { readonly status: 'duplicate' }
  | {
      readonly status: 'rejected';
      readonly reason: MempoolRejection;
      readonly message: string;
      readonly quota?: FullQuota;
    };

interface Bucket {
  readonly ids: Set<Hex>;
  bytes: number;
}

/**
 * Valid entries not yet in a block, bounded by count and bytes. Each entry is filed under its
 * source. A peer may hold at most `maxPerPeer` entries and peers together at most `maxPerAuthor`
 * of one author's, so a stranger with throwaway keys fills its own share and no more; when the
 * pool is full, room is made by evicting the oldest entry of the peer holding the most, so one
 * peer's flood pushes out its own entries first, never local or returned ones. Entries that a
 * reorg returns and that do not fit wait in a counted hold (see ReturnedEntries) until they fit
 * or are mined. Iteration order is arrival order, which is also the order a block template
 * takes them in.
 */
export class Mempool {
  private readonly entries = new Map<Hex, SealedEntry>();
  private readonly sourceOf = new Map<Hex, EntrySource>();
  private readonly buckets = new Map<EntrySource, Bucket>();
  /** Peer-sourced entries per author (hex key). */
  private readonly byAuthor = new Map<Hex, number>();
  private totalBytes = 0;
  private source: EntrySource = SOURCE.local;
  /** Returned entries admitted since the last takeAnnouncements (to gossip again). */
  private announce: SealedEntry[] = [];
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly maxPerPeer: number;
  readonly maxPerAuthor: number;
  readonly returned: ReturnedEntries;
  /** Returned entries seen (the first time a reorg hands them back). */
  returnedTotal = 0;

  private readonly opts: MempoolOptions;
  constructor(opts: MempoolOptions) {
    this.opts = opts;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
    this.maxPerPeer = opts.maxPerPeer ?? Math.max(1, Math.floor(this.maxEntries / 4));
    this.maxPerAuthor = opts.maxPerAuthor ?? Math.max(1, Math.floor(this.maxEntries / 10));
    this.returned = new ReturnedEntries(
      opts.maxHeldEntries ?? this.maxEntries * 10,
      opts.maxHeldBytes ?? this.maxBytes * 4,
      opts.onHeldChange,
    );
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(idHex: Hex): boolean {
    return this.entries.has(idHex);
  }

  get(idHex: Hex): SealedEntry | undefined {
    return this.entries.get(idHex);
  }

  ids(): Hex[] {
    return [...this.entries.keys()];
  }

  all(): SealedEntry[] {
    return [...this.entries.values()];
  }

  /** The origin to store with an entry of the pool or the hold (see MempoolOrigin). */
  originOf(idHex: Hex): MempoolOrigin {
    if (this.returned.has(idHex)) return 'returned';
    const source = this.sourceOf.get(idHex);
    return source === undefined ? 'peer' : originOfSource(source);
  }

  /** Entries held for `source` (a peer id or a SOURCE value). */
  heldBy(source: EntrySource): number {
    return this.buckets.get(source)?.ids.size ?? 0;
  }

  /** Runs `fn` with entries added attributed to `source`. */
  withSource<T>(source: EntrySource, fn: () => T): T {
    const restore = this.useSource(source);
    try {
      return fn();
    } finally {
      restore();
    }
  }

  /**
   * Attributes entries added from now on to `source` until the returned function is called
   * (for async block processing, which readmits the entries of reorged-out blocks).
   */
  useSource(source: EntrySource): () => void {
    const prev = this.source;
    this.source = source;
    return () => {
      this.source = prev;
    };
  }

  /** Returned entries admitted since the last call: to gossip again, as their block no longer carries them. */
  takeAnnouncements(): SealedEntry[] {
    const out = this.announce;
    this.announce = [];
    return out;
  }

  add(entry: SealedEntry, now: number): AddResult {
    const source = this.source;
    if (!isReturned(source)) return this.admit(entry, now, source);
    // Handed back again while still held (a reorg back and forth): it stays held, counted once.
    if (source === SOURCE.returned && this.returned.has(entry.idHex))
      return full('held', 'mempool full: held until it fits or is mined');
    if (source === SOURCE.returned) this.returnedTotal++;
    const r = this.admit(entry, now, source);
    const c = this.returned.counts;
    if (r.status === 'added' || r.status === 'duplicate') {
      c.readmitted++;
      if (r.status === 'added' && this.announce.length < this.returned.maxEntries) this.announce.push(entry);
    } else if (r.reason === 'already-included') c.mined++;
    else if (r.quota !== 'held') c.invalid++;
    return r;
  }

  /**
   * The checks that cost no signature: duplicate, already mined, size, the source's and the
   * author's quotas. Undefined when the entry is worth verifying (admission checks the
   * signatures of those ahead, on the worker pool).
   */
  precheck(entry: SealedEntry, source: EntrySource = this.source, now = Date.now()): AddResult | undefined {
    if (this.entries.has(entry.idHex)) return { status: 'duplicate' };
    if (this.opts.isIncluded(entry.idHex)) {
      return {
        status: 'rejected',
        reason: 'already-included',
        message: `entry ${entry.idHex} is in the chain`,
      };
    }
    if (entry.encoded.length > Math.min(this.maxBytes, maxMineableEntryBytes(this.opts.config))) {
      return { status: 'rejected', reason: 'entry-too-large', message: `${entry.encoded.length} bytes` };
    }
    // Quotas before the signature check: a flood beyond them costs no verification.
    if (!protectedSource(source)) {
      if (this.heldBy(source) >= this.maxPerPeer)
        return full('peer', `peer ${source} holds ${this.maxPerPeer} entries already`);
      if ((this.byAuthor.get(toHex(entry.author)) ?? 0) >= this.maxPerAuthor)
        return full('author', `peers hold ${this.maxPerAuthor} entries of this author already`);
    }
    // Permissions before the signature: an entry by a non-member costs a lookup, not a verify.
    const denied = this.opts.authorize?.(entry, now);
    if (denied) return { status: 'rejected', reason: denied.code, message: denied.message };
    return undefined;
  }

  private admit(entry: SealedEntry, now: number, source: EntrySource): AddResult {
    const cheap = this.precheck(entry, source, now);
    if (cheap) return cheap;
    try {
      validateEntry(entry, this.opts.config, now, this.opts.verifier);
    } catch (err) {
      if (err instanceof BlockValidationError)
        return { status: 'rejected', reason: err.code, message: err.message };
      throw err;
    }
    if (!this.canFit(entry, source)) {
      if (!isReturned(source))
        return full('pool', `mempool full (${this.size} entries, ${this.bytes} bytes)`);
      this.returned.hold(entry);
      return full('held', 'mempool full: held until it fits or is mined');
    }
    return { status: 'added', evicted: this.insert(entry, source) };
  }

  /**
   * Puts back entries of blocks that left the main chain. They were valid when first seen;
   * their signatures are still checked (cheaply, through the verifier cache).
   */
  readmit(entries: readonly SealedEntry[], now: number): SealedEntry[] {
    const added: SealedEntry[] = [];
    this.withSource(SOURCE.returned, () => {
      for (const e of entries) {
        const r = this.add(e, now);
        if (r.status === 'added') added.push(e);
      }
    });
    return added;
  }

  /** Drops entries that a connected block included; returns the ones that were here. */
  removeMany(idHexes: Iterable<Hex>): SealedEntry[] {
    const removed: SealedEntry[] = [];
    const ids = [...idHexes];
    for (const id of ids) {
      const e = this.entries.get(id);
      if (!e) continue;
      this.remove(e);
      removed.push(e);
    }
    this.returned.mined(ids);
    return removed;
  }

  /** Entries for a block template, in arrival order, within the count and byte budget. */
  select(maxEntries: number, maxBytes: number): SealedEntry[] {
    const out: SealedEntry[] = [];
    let bytes = 0;
    for (const e of this.entries.values()) {
      if (out.length >= maxEntries) break;
      if (bytes + e.encoded.length + ENTRY_FRAMING_BYTES > maxBytes) continue;
      out.push(e);
      bytes += e.encoded.length + ENTRY_FRAMING_BYTES;
    }
    return out;
  }

  /**
   * Restores persisted entries (trusted: no re-validation), in their stored order, each under
   * the source its stored origin names (absent: a peer's), so local and returned entries stay
   * protected. What does not fit (held entries, or a pool reopened with smaller bounds) goes to
   * the hold, not away.
   */
  restore(entries: readonly SealedEntry[], origins?: ReadonlyMap<Hex, MempoolOrigin>): void {
    for (const e of entries) {
      if (this.entries.has(e.idHex) || this.opts.isIncluded(e.idHex)) continue;
      // Room without evicting: one restored entry evicting another would keep the last ones
      // stored instead of the first.
      const room = this.entries.size < this.maxEntries && this.totalBytes + e.encoded.length <= this.maxBytes;
      if (room) this.insert(e, sourceOfOrigin(origins?.get(e.idHex)));
      else this.returned.hold(e);
    }
  }

  /** Room the pool has now (entries, bytes): what the hold may retry. */
  free(): { entries: number; bytes: number } {
    return { entries: this.maxEntries - this.size, bytes: this.maxBytes - this.bytes };
  }

  /** Whether `entry` fits once everything `source` may evict is gone. */
  private canFit(entry: SealedEntry, source: EntrySource): boolean {
    let n = this.entries.size;
    let bytes = this.totalBytes;
    for (const [s, b] of this.buckets) {
      if (!protectedSource(s) || (source === SOURCE.local && s === SOURCE.local)) {
        n -= b.ids.size;
        bytes -= b.bytes;
      }
    }
    return n < this.maxEntries && bytes + entry.encoded.length <= this.maxBytes;
  }

  /** The next entry to evict for `source`: the oldest of the peer holding most, else (for local) the oldest local. */
  private victim(source: EntrySource): SealedEntry | undefined {
    let best: Bucket | undefined;
    for (const [s, b] of this.buckets)
      if (!protectedSource(s) && b.ids.size > 0 && (!best || b.ids.size > best.ids.size)) best = b;
    if (!best && source === SOURCE.local) best = this.buckets.get(SOURCE.local);
    const id = best?.ids.values().next().value;
    return id === undefined ? undefined : this.entries.get(id);
  }

  private insert(entry: SealedEntry, source: EntrySource): SealedEntry[] {
    const evicted: SealedEntry[] = [];
    while (
      this.entries.size > 0 &&
      (this.entries.size >= this.maxEntries || this.totalBytes + entry.encoded.length > this.maxBytes)
    ) {
      const v = this.victim(source);
      if (!v) break; // canFit said it fits
      this.remove(v);
      evicted.push(v);
    }
    this.entries.set(entry.idHex, entry);
    this.sourceOf.set(entry.idHex, source);
    let bucket = this.buckets.get(source);
    if (!bucket) {
      bucket = { ids: new Set(), bytes: 0 };
      this.buckets.set(source, bucket);
    }
    bucket.ids.add(entry.idHex);
    bucket.bytes += entry.encoded.length;
    if (!protectedSource(source)) {
      const a = toHex(entry.author);
      this.byAuthor.set(a, (this.byAuthor.get(a) ?? 0) + 1);
    }
    this.totalBytes += entry.encoded.length;
    return evicted;
  }

  private remove(e: SealedEntry): void {
    const source = this.sourceOf.get(e.idHex)!;
    this.entries.delete(e.idHex);
    this.sourceOf.delete(e.idHex);
    this.totalBytes -= e.encoded.length;
    const bucket = this.buckets.get(source)!;
    bucket.ids.delete(e.idHex);
    bucket.bytes -= e.encoded.length;
    if (bucket.ids.size === 0) this.buckets.delete(source);
    if (!protectedSource(source)) {
      const a = toHex(e.author);
      const n = (this.byAuthor.get(a) ?? 1) - 1;
      if (n > 0) this.byAuthor.set(a, n);
      else this.byAuthor.delete(a);
    }
  }
}

const full = (quota: FullQuota, message: string): AddResult => ({
  status: 'rejected',
  reason: 'mempool-full',
  message,
  quota,
});
