import type { Hex } from '../chain/bytes.ts';
import type { SealedEntry } from '../chain/types.ts';

/**
 * Entries a reorg handed back that did not fit in the mempool: held here, outside the pool's
 * bounds, until they fit or a block includes them. The bound is generous (what a stranger cannot
 * fill: only blocks with valid proof of work that were on our main chain put entries here), and
 * every way an entry leaves is counted, so none is lost silently: every entry a reorg returned
 * is readmitted, mined, invalid, dropped (over the bound, counted and logged) or held now.
 *
 * Held entries are persisted with the mempool's (every change goes to `onChange`, which the
 * chain turns into store writes), so a restart does not lose them either: on reopening, what
 * does not fit in the pool comes back into the hold.
 */
export interface ReturnedCounts {
  /** Back in the mempool (at once or later from the hold). */
  readmitted: number;
  /** Left the hold because a block included them. */
  mined: number;
  /** Left the hold because they no longer validate (e.g. expired). */
  invalid: number;
  /** Dropped because the hold itself was over its bound (oldest first): loud, never silent. */
  dropped: number;
}

export class ReturnedEntries {
  private readonly entries = new Map<Hex, SealedEntry>();
  private totalBytes = 0;
  readonly counts: ReturnedCounts = { readmitted: 0, mined: 0, invalid: 0, dropped: 0 };

  readonly maxEntries: number;
  readonly maxBytes: number;
  private readonly onChange: (id: Hex, entry: SealedEntry | null) => void;
  /** `onChange(id, entry)` when an entry is held, `onChange(id, null)` when it leaves the hold. */
  constructor(
    maxEntries: number,
    maxBytes: number,
    onChange: (id: Hex, entry: SealedEntry | null) => void = () => {},
  ) {
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.onChange = onChange;
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(id: Hex): boolean {
    return this.entries.has(id);
  }

  /** Holds an entry; returns the entries dropped to stay within the bound. */
  hold(e: SealedEntry): SealedEntry[] {
    if (this.entries.has(e.idHex)) return [];
    this.entries.set(e.idHex, e);
    this.totalBytes += e.encoded.length;
    this.onChange(e.idHex, e);
    const dropped: SealedEntry[] = [];
    while (this.entries.size > this.maxEntries || this.totalBytes > this.maxBytes) {
      const oldest = this.entries.values().next().value!;
      this.delete(oldest.idHex);
      this.counts.dropped++;
      dropped.push(oldest);
    }
    return dropped;
  }

  /** Takes held entries out, oldest first, up to `maxEntries` and `maxBytes` (to retry admitting them). */
  take(maxEntries: number, maxBytes: number): SealedEntry[] {
    const out: SealedEntry[] = [];
    let bytes = 0;
    for (const e of this.entries.values()) {
      if (out.length >= maxEntries || bytes + e.encoded.length > maxBytes) break;
      out.push(e);
      bytes += e.encoded.length;
    }
    for (const e of out) this.delete(e.idHex);
    return out;
  }

  /** Drops the given ids if held (a block included them). */
  mined(ids: Iterable<Hex>): void {
    for (const id of ids) if (this.delete(id)) this.counts.mined++;
  }

  /**
   * Leaves the hold. An entry taken out to retry is recorded as gone too: its retry records it
   * again (admitted or held), and one that fails the retry must not linger in the store.
   */
  private delete(id: Hex): boolean {
    const e = this.entries.get(id);
    if (!e) return false;
    this.entries.delete(id);
    this.totalBytes -= e.encoded.length;
    this.onChange(id, null);
    return true;
  }
}
