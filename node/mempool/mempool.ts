import type { Hex } from '../chain/bytes.ts';
import type { NetworkConfig } from '../chain/network-config.ts';
import type { SignatureVerifier } from '../chain/signature-cache.ts';
import type { SealedEntry } from '../chain/types.ts';
import { BlockValidationError, validateEntry } from '../chain/validation.ts';

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

export interface MempoolOptions {
  readonly config: NetworkConfig;
  readonly verifier: SignatureVerifier;
  /** Whether the entry is already in the main chain (then it does not belong here). */
  readonly isIncluded: (idHex: Hex) => boolean;
  readonly maxEntries?: number;
  readonly maxBytes?: number;
}

export type MempoolRejection =
  | 'already-included'
  | 'mempool-full'
  | 'entry-too-large'
  | BlockValidationError['code'];

export type AddResult =
  | { readonly status: 'added'; readonly evicted: readonly SealedEntry[] }
  | { readonly status: 'duplicate' }
  | { readonly status: 'rejected'; readonly reason: MempoolRejection; readonly message: string };

/**
 * Valid entries not yet in a block. Bounded by count and bytes; when full, the entries that
 * arrived first are evicted. Iteration order is arrival order, which is also the order a
 * block template takes them in.
 */
export class Mempool {
  private readonly entries = new Map<Hex, SealedEntry>();
  private totalBytes = 0;
  readonly maxEntries: number;
  readonly maxBytes: number;

  constructor(private readonly opts: MempoolOptions) {
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.maxBytes = opts.maxBytes ?? 32 * 1024 * 1024;
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

  add(entry: SealedEntry, now: number): AddResult {
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
    try {
      validateEntry(entry, this.opts.config, now, this.opts.verifier);
    } catch (err) {
      if (err instanceof BlockValidationError)
        return { status: 'rejected', reason: err.code, message: err.message };
      throw err;
    }
    return { status: 'added', evicted: this.insert(entry) };
  }

  /**
   * Puts back entries of blocks that left the main chain. They were valid when first seen;
   * their signatures are still checked (cheaply, through the verifier cache).
   */
  readmit(entries: readonly SealedEntry[], now: number): SealedEntry[] {
    const added: SealedEntry[] = [];
    for (const e of entries) {
      const r = this.add(e, now);
      if (r.status === 'added') added.push(e);
    }
    return added;
  }

  /** Drops entries that a connected block included; returns the ones that were here. */
  removeMany(idHexes: Iterable<Hex>): SealedEntry[] {
    const removed: SealedEntry[] = [];
    for (const id of idHexes) {
      const e = this.entries.get(id);
      if (!e) continue;
      this.entries.delete(id);
      this.totalBytes -= e.encoded.length;
      removed.push(e);
    }
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

  /** Restores persisted entries without validation side effects beyond capacity. */
  restore(entries: readonly SealedEntry[]): void {
    for (const e of entries) if (!this.entries.has(e.idHex) && !this.opts.isIncluded(e.idHex)) this.insert(e);
  }

  private insert(entry: SealedEntry): SealedEntry[] {
    const evicted: SealedEntry[] = [];
    while (
      this.entries.size > 0 &&
      (this.entries.size >= this.maxEntries || this.totalBytes + entry.encoded.length > this.maxBytes)
    ) {
      const oldest = this.entries.values().next().value!;
      this.removeMany([oldest.idHex]);
      evicted.push(oldest);
    }
    this.entries.set(entry.idHex, entry);
    this.totalBytes += entry.encoded.length;
    return evicted;
  }
}
