import { type Hex, toHex } from './bytes.ts';
import type { SealedBlock } from './types.ts';

export interface Orphan {
  readonly block: SealedBlock;
  readonly receivedAt: number;
  /** The peer that sent it, so the missing parent can be asked of that peer. */
  readonly from: string | undefined;
}

export type OrphanDropReason = 'orphan-expired' | 'orphan-evicted';

/**
 * Blocks whose parent is unknown, waiting for it. Bounded in count (oldest evicted first)
 * and in age; indexed by parent so a chain of orphans connects in any arrival order.
 */
export class OrphanPool {
  private readonly byHash = new Map<Hex, Orphan>();
  private readonly byParent = new Map<Hex, Set<Hex>>();

  constructor(
    readonly capacity = 100,
    readonly ttlMs = 10 * 60_000,
  ) {}

  get size(): number {
    return this.byHash.size;
  }

  has(hashHex: Hex): boolean {
    return this.byHash.has(hashHex);
  }

  all(): Orphan[] {
    return [...this.byHash.values()];
  }

  /** Adds an orphan; returns the ones evicted to make room. */
  add(orphan: Orphan): Orphan[] {
    if (this.byHash.has(orphan.block.hashHex)) return [];
    const evicted: Orphan[] = [];
    while (this.byHash.size >= this.capacity) {
      const oldest = this.byHash.values().next().value;
      if (!oldest) break;
      this.remove(oldest.block.hashHex);
      evicted.push(oldest);
    }
    this.byHash.set(orphan.block.hashHex, orphan);
    const parent = toHex(orphan.block.header.prevHash);
    const children = this.byParent.get(parent) ?? new Set<Hex>();
    this.byParent.set(parent, children);
    children.add(orphan.block.hashHex);
    return evicted;
  }

  remove(hashHex: Hex): Orphan | undefined {
    const o = this.byHash.get(hashHex);
    if (!o) return undefined;
    this.byHash.delete(hashHex);
    const parent = toHex(o.block.header.prevHash);
    const children = this.byParent.get(parent);
    children?.delete(hashHex);
    if (children?.size === 0) this.byParent.delete(parent);
    return o;
  }

  /** Removes and returns the orphans whose parent is `parentHex`. */
  takeChildren(parentHex: Hex): Orphan[] {
    const children = this.byParent.get(parentHex);
    if (!children) return [];
    return [...children].map((h) => this.remove(h)!).filter(Boolean);
  }

  /** Removes orphans older than the TTL. */
  expire(now: number): Orphan[] {
    const expired: Orphan[] = [];
    for (const o of this.byHash.values()) {
      if (now - o.receivedAt > this.ttlMs) expired.push(o);
    }
    for (const o of expired) this.remove(o.block.hashHex);
    return expired;
  }

  /**
   * The block to ask for: the unknown parent at the bottom of the orphan chain that
   * `hashHex` belongs to.
   */
  missingAncestor(hashHex: Hex): Hex | undefined {
    let o = this.byHash.get(hashHex);
    let missing: Hex | undefined;
    for (let guard = 0; o && guard <= this.capacity; guard++) {
      missing = toHex(o.block.header.prevHash);
      o = this.byHash.get(missing);
    }
    return missing;
  }
}
