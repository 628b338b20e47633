import { type Hex, toHex } from './bytes.ts';
import { workForTarget } from './pow.ts';
import type { SealedBlock } from './types.ts';

export interface Orphan {
  readonly block: SealedBlock;
  readonly receivedAt: number;
  /** The peer that sent it, so the missing parent can be asked of that peer. */
  readonly from: string | undefined;
}

export type OrphanDropReason =
  | 'orphan-expired'
  | 'orphan-evicted'
  /** Its sender did not serve the missing ancestor it implied having. */
  | 'orphan-unresolved'
  /** Its ancestor arrived but the chain they form carries too little work to be kept. */
  | 'orphan-low-work';

/**
 * Blocks whose parent is unknown, waiting for it. Bounded in count and in age; indexed by
 * parent so a chain of orphans connects in any arrival order. Each sending peer has a quota,
 * so one peer can only ever displace its own orphans: a peer at its quota loses its oldest, a
 * full pool evicts the oldest orphan of the peer holding most. Orphans without a sender (our
 * own, or restored from the store) count against the pool only.
 */
export class OrphanPool {
  private readonly byHash = new Map<Hex, Orphan>();
  private readonly byParent = new Map<Hex, Set<Hex>>();
  /** Sender → its orphans, oldest first (a Set keeps insertion order). */
  private readonly byPeer = new Map<string, Set<Hex>>();

  constructor(
    readonly capacity = 100,
    readonly ttlMs = 10 * 60_000,
    readonly perPeerQuota = Math.max(1, Math.floor(capacity / 4)),
  ) {}

  get size(): number {
    return this.byHash.size;
  }

  /** How many orphans `peer` has in the pool. */
  countFrom(peer: string): number {
    return this.byPeer.get(peer)?.size ?? 0;
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
    const own = orphan.from === undefined ? undefined : this.byPeer.get(orphan.from);
    while (own && own.size >= this.perPeerQuota) {
      const oldest = own.values().next().value!;
      evicted.push(this.remove(oldest)!);
    }
    while (this.byHash.size >= this.capacity) {
      const victim = this.evictionCandidate();
      if (!victim) break;
      evicted.push(this.remove(victim)!);
    }
    this.byHash.set(orphan.block.hashHex, orphan);
    if (orphan.from !== undefined) {
      const mine = this.byPeer.get(orphan.from) ?? new Set<Hex>();
      this.byPeer.set(orphan.from, mine);
      mine.add(orphan.block.hashHex);
    }
    const parent = toHex(orphan.block.header.prevHash);
    const children = this.byParent.get(parent) ?? new Set<Hex>();
    this.byParent.set(parent, children);
    children.add(orphan.block.hashHex);
    return evicted;
  }

  /** The oldest orphan of the sender holding most (senderless orphans count as one sender). */
  private evictionCandidate(): Hex | undefined {
    let biggest: Set<Hex> | undefined;
    for (const set of this.byPeer.values()) if (!biggest || set.size > biggest.size) biggest = set;
    const senderless = this.byHash.size - [...this.byPeer.values()].reduce((n, s) => n + s.size, 0);
    if (biggest && biggest.size >= senderless) return biggest.values().next().value;
    for (const o of this.byHash.values()) if (o.from === undefined) return o.block.hashHex;
    return this.byHash.keys().next().value;
  }

  /** The orphans `peer` sent. */
  from(peer: string): Orphan[] {
    return [...(this.byPeer.get(peer) ?? [])].map((h) => this.byHash.get(h)!);
  }

  /**
   * Work of the heaviest chain of waiting orphans that descends from `hashHex` (0 if none): what
   * the block would carry into the tree with them once it connects.
   */
  descendantWork(hashHex: Hex): bigint {
    let best = 0n;
    const stack: { hash: Hex; work: bigint }[] = [{ hash: hashHex, work: 0n }];
    // Each orphan has one parent, so every orphan is visited at most once.
    while (stack.length) {
      const { hash, work } = stack.pop()!;
      if (work > best) best = work;
      for (const child of this.byParent.get(hash) ?? []) {
        const o = this.byHash.get(child)!;
        stack.push({ hash: child, work: work + workForTarget(o.block.header.target) });
      }
    }
    return best;
  }

  /** Removes the orphans descending from `hashHex` (not itself); returns them. */
  removeDescendants(hashHex: Hex): Orphan[] {
    const out: Orphan[] = [];
    const queue = [hashHex];
    while (queue.length) {
      for (const o of this.takeChildren(queue.shift()!)) {
        out.push(o);
        queue.push(o.block.hashHex);
      }
    }
    return out;
  }

  remove(hashHex: Hex): Orphan | undefined {
    const o = this.byHash.get(hashHex);
    if (!o) return undefined;
    this.byHash.delete(hashHex);
    if (o.from !== undefined) {
      const mine = this.byPeer.get(o.from);
      mine?.delete(hashHex);
      if (mine?.size === 0) this.byPeer.delete(o.from);
    }
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
