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
  /** Displaced by the count rules (the sender's quota, or a full pool). */
  | 'orphan-evicted'
  /** Displaced by the byte rules (the sender's byte quota, or the pool's byte bound). */
  | 'orphan-evicted-bytes'
  /** Its sender did not serve the missing ancestor it implied having. */
  | 'orphan-unresolved'
  /** Its ancestor arrived but the chain they form carries too little work to be kept. */
  | 'orphan-low-work';

export interface OrphanPoolOptions {
  /** Orphans held at most. */
  readonly capacity: number;
  readonly ttlMs: number;
  /** Orphans one sender may have in the pool. */
  readonly perPeerQuota: number;
  /** Bytes (encoded blocks) held at most. */
  readonly maxBytes: number;
  /** Bytes one sender may have in the pool. */
  readonly perPeerMaxBytes: number;
}

/**
 * The pool's bounds (Chain takes its options from here). The count alone let 100 orphans of a
 * network's largest block (1 MiB by default) pin 100 MiB; 16 MiB in all and 4 MiB per sender
 * (a quarter, as for the count) still fit 100 orphans of the few KB a block usually has, and a
 * sender's quota still holds four blocks of the default maximum size.
 */
export const ORPHAN_POOL_DEFAULTS: OrphanPoolOptions = Object.freeze({
  capacity: 100,
  ttlMs: 10 * 60_000,
  perPeerQuota: 25,
  maxBytes: 16 * 1024 * 1024,
  perPeerMaxBytes: 4 * 1024 * 1024,
});

export interface Eviction {
  readonly orphan: Orphan;
  readonly reason: 'orphan-evicted' | 'orphan-evicted-bytes';
}

const bytesOf = (o: Orphan): number => o.block.encoded.length;

/**
 * Blocks whose parent is unknown, waiting for it. Bounded in count, in bytes and in age;
 * indexed by parent so a chain of orphans connects in any arrival order. Each sending peer has
 * a quota in count and in bytes, so one peer can only ever displace its own orphans: a peer at
 * a quota loses its oldest, a full pool evicts the oldest orphan of the peer holding most (of
 * the bound that is full). Orphans without a sender (our own, or restored from the store)
 * count against the pool only.
 */
export class OrphanPool {
  private readonly byHash = new Map<Hex, Orphan>();
  private readonly byParent = new Map<Hex, Set<Hex>>();
  /** Sender → its orphans, oldest first (a Set keeps insertion order). */
  private readonly byPeer = new Map<string, Set<Hex>>();
  /** Sender → bytes of its orphans. */
  private readonly peerBytes = new Map<string, number>();
  private totalBytes = 0;
  readonly capacity: number;
  readonly ttlMs: number;
  readonly perPeerQuota: number;
  readonly maxBytes: number;
  readonly perPeerMaxBytes: number;

  constructor(opts: Partial<OrphanPoolOptions> = {}) {
    const o = { ...ORPHAN_POOL_DEFAULTS, ...opts };
    this.capacity = o.capacity;
    this.ttlMs = o.ttlMs;
    // A smaller pool than the default keeps the same quarter per peer unless told otherwise.
    this.perPeerQuota = opts.perPeerQuota ?? Math.max(1, Math.floor(o.capacity / 4));
    this.maxBytes = o.maxBytes;
    this.perPeerMaxBytes = Math.min(o.perPeerMaxBytes, o.maxBytes);
  }

  get size(): number {
    return this.byHash.size;
  }

  /** Bytes of the orphans held. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Bytes of the orphans `peer` has in the pool. */
  bytesFrom(peer: string): number {
    return this.peerBytes.get(peer) ?? 0;
  }

  /** Whether an orphan of `size` bytes from `from` can be held at all (else no eviction makes room). */
  fits(size: number, from: string | undefined): boolean {
    return size <= (from === undefined ? this.maxBytes : this.perPeerMaxBytes);
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

  /**
   * Adds an orphan; returns the ones evicted to make room, each with the rule that evicted it.
   * One that does not `fit` is not added (and nothing is evicted for it).
   */
  add(orphan: Orphan): Eviction[] {
    if (this.byHash.has(orphan.block.hashHex)) return [];
    const size = bytesOf(orphan);
    if (!this.fits(size, orphan.from)) return [];
    const evicted: Eviction[] = [];
    const evict = (hashHex: Hex, reason: Eviction['reason']) =>
      evicted.push({ orphan: this.remove(hashHex)!, reason });
    const own = orphan.from === undefined ? undefined : this.byPeer.get(orphan.from);
    while (own && own.size >= this.perPeerQuota) evict(own.values().next().value!, 'orphan-evicted');
    while (own?.size && this.bytesFrom(orphan.from!) + size > this.perPeerMaxBytes)
      evict(own.values().next().value!, 'orphan-evicted-bytes');
    while (this.byHash.size >= this.capacity) {
      const victim = this.evictionCandidate((set) => set.size, this.senderless().count);
      if (!victim) break;
      evict(victim, 'orphan-evicted');
    }
    while (this.byHash.size && this.totalBytes + size > this.maxBytes) {
      const victim = this.evictionCandidate((_set, peer) => this.bytesFrom(peer), this.senderless().bytes);
      if (!victim) break;
      evict(victim, 'orphan-evicted-bytes');
    }
    this.byHash.set(orphan.block.hashHex, orphan);
    this.totalBytes += size;
    if (orphan.from !== undefined) {
      const mine = this.byPeer.get(orphan.from) ?? new Set<Hex>();
      this.byPeer.set(orphan.from, mine);
      mine.add(orphan.block.hashHex);
      this.peerBytes.set(orphan.from, this.bytesFrom(orphan.from) + size);
    }
    const parent = toHex(orphan.block.header.prevHash);
    const children = this.byParent.get(parent) ?? new Set<Hex>();
    this.byParent.set(parent, children);
    children.add(orphan.block.hashHex);
    return evicted;
  }

  /** Count and bytes of the orphans without a sender. */
  private senderless(): { count: number; bytes: number } {
    let count = this.byHash.size;
    let bytes = this.totalBytes;
    for (const [peer, set] of this.byPeer) {
      count -= set.size;
      bytes -= this.bytesFrom(peer);
    }
    return { count, bytes };
  }

  /**
   * The oldest orphan of the sender holding most by `measure` (senderless orphans count as one
   * sender, holding `senderlessHeld`).
   */
  private evictionCandidate(
    measure: (set: Set<Hex>, peer: string) => number,
    senderlessHeld: number,
  ): Hex | undefined {
    let biggest: Set<Hex> | undefined;
    let most = -1;
    for (const [peer, set] of this.byPeer) {
      const held = measure(set, peer);
      if (held > most) {
        biggest = set;
        most = held;
      }
    }
    if (biggest && most >= senderlessHeld) return biggest.values().next().value;
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
    const size = bytesOf(o);
    this.totalBytes -= size;
    if (o.from !== undefined) {
      const mine = this.byPeer.get(o.from);
      mine?.delete(hashHex);
      const left = this.bytesFrom(o.from) - size;
      if (mine?.size === 0) {
        this.byPeer.delete(o.from);
        this.peerBytes.delete(o.from);
      } else this.peerBytes.set(o.from, left);
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
