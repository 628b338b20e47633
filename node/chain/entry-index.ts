import type { Hex } from './bytes.ts';

/** A stored block that includes an entry. */
export interface EntryHolder {
  readonly hashHex: Hex;
  readonly height: number;
}

/**
 * Entry id → the blocks that include it, for duplicate-entry checks and lookups by entry id.
 * The node store answers from an index on disk (BlockEntry), so no node keeps every entry id
 * ever mined in memory. Synchronous: the store reads it through its own SQLite connection, and
 * the mempool asks it on every admission.
 */
export interface EntryIndex {
  /** The holders of each of `ids` that any block holds (ids held by none are absent), in one query. */
  holders(ids: readonly Hex[]): ReadonlyMap<Hex, readonly EntryHolder[]>;
}

/**
 * An EntryIndex in memory: the chain's index of the blocks it added since its last commit (the
 * store has not seen them yet), and, for a chain without a store (tests, benches), of all.
 */
export class MemoryEntryIndex implements EntryIndex {
  /** Almost always exactly one holder: kept as the holder itself, not an array of one. */
  private readonly byId = new Map<Hex, EntryHolder | EntryHolder[]>();

  add(holder: EntryHolder, ids: readonly Hex[]): void {
    for (const id of ids) {
      const held = this.byId.get(id);
      if (held === undefined) this.byId.set(id, holder);
      else if (Array.isArray(held)) held.push(holder);
      else this.byId.set(id, [held, holder]);
    }
  }

  holders(ids: readonly Hex[]): Map<Hex, readonly EntryHolder[]> {
    const out = new Map<Hex, readonly EntryHolder[]>();
    for (const id of ids) {
      const held = this.byId.get(id);
      if (held !== undefined) out.set(id, Array.isArray(held) ? held : [held]);
    }
    return out;
  }

  clear(): void {
    this.byId.clear();
  }

  get size(): number {
    return this.byId.size;
  }
}

/** The holders two indexes know of, together (a block is in at most one of them). */
export function mergeHolders(
  a: ReadonlyMap<Hex, readonly EntryHolder[]>,
  b: ReadonlyMap<Hex, readonly EntryHolder[]>,
): ReadonlyMap<Hex, readonly EntryHolder[]> {
  if (b.size === 0) return a;
  if (a.size === 0) return b;
  const out = new Map(a);
  for (const [id, hs] of b) {
    const prev = out.get(id);
    out.set(id, prev ? [...prev, ...hs] : hs);
  }
  return out;
}
