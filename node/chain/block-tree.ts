import { type Hex, toHex } from './bytes.ts';
import type { StoredHeader } from './header-store.ts';
import { workForTarget } from './pow.ts';
import type { BlockHeader } from './types.ts';
import type { ParentContext } from './validation.ts';

/** What the chain keeps in memory about every known valid block (the bytes live in the store). */
export interface BlockNode {
  readonly hash: Uint8Array;
  readonly hashHex: Hex;
  readonly header: BlockHeader;
  /**
   * Undefined at the bottom of what memory holds: genesis, the lowest block of the main-chain
   * window, a main-chain block below it loaded as a side chain's fork point, and a block read
   * from the store for a lookup (see BlockTree's `deep`).
   */
  parent: BlockNode | undefined;
  readonly height: number;
  /** Cumulative work from genesis up to and including this block. */
  readonly chainWork: bigint;
  readonly entryIds: readonly Hex[];
  onMain: boolean;
}

export interface ReorgPlan {
  readonly fork: BlockNode;
  /** Main-chain blocks to disconnect, highest first. */
  readonly disconnect: readonly BlockNode[];
  /** Blocks to connect, lowest first. */
  readonly connect: readonly BlockNode[];
}

/**
 * The hash and header's byte fields copied into one small buffer. A decoded block's fields are
 * views into its whole encoding, and its hash into pooled digest memory: kept as they are, every
 * node of the tree would hold kilobytes alive for as long as the node runs.
 */
function ownCopy(hash: Uint8Array, header: BlockHeader): { hash: Uint8Array; header: BlockHeader } {
  const buf = new Uint8Array(160);
  buf.set(hash, 0);
  buf.set(header.chainId, 32);
  buf.set(header.prevHash, 64);
  buf.set(header.merkleRoot, 96);
  buf.set(header.miner, 128);
  return {
    hash: buf.subarray(0, 32),
    header: {
      ...header,
      chainId: buf.subarray(32, 64),
      prevHash: buf.subarray(64, 96),
      merkleRoot: buf.subarray(96, 128),
      miner: buf.subarray(128, 160),
    },
  };
}

/** Reads the committed main chain below the window (the node store); absent: memory holds it all. */
export type DeepMain = (height: number) => StoredHeader | undefined;

/** A node for a stored header: a lookup's answer, or a node the tree adopts. */
export function nodeOfStored(s: StoredHeader, parent?: BlockNode): BlockNode {
  const own = ownCopy(s.hash, s.header);
  return {
    hash: own.hash,
    hashHex: s.hashHex,
    header: own.header,
    parent,
    height: s.height,
    chainWork: s.chainWork,
    entryIds: s.entryIds,
    onMain: false,
  };
}

/**
 * The tree of known valid blocks and the selected main chain. Fork choice is most cumulative
 * work; on equal work the chain seen first stays selected. Pure bookkeeping, no I/O.
 *
 * With a `deep` reader it holds a window: the main chain from `base` up to the tip, the side
 * blocks above it, and, for side chains that fork further down, their blocks down to their
 * fork point. `mainAt` below `base` answers from `deep`; `evictBelow` lets older nodes go.
 */
export class BlockTree {
  private readonly nodes = new Map<Hex, BlockNode>();
  /** main[i] is the main-chain block at height base + i. */
  private main: BlockNode[] = [];
  private baseHeight = 0;
  readonly genesis: BlockNode;
  private readonly deep: DeepMain | undefined;

  constructor(genesis: { hash: Uint8Array; hashHex: Hex; header: BlockHeader }, deep?: DeepMain) {
    const node: BlockNode = {
      hash: genesis.hash,
      hashHex: genesis.hashHex,
      header: genesis.header,
      parent: undefined,
      height: 0,
      chainWork: workForTarget(genesis.header.target),
      entryIds: [],
      onMain: true,
    };
    this.genesis = node;
    this.deep = deep;
    this.nodes.set(node.hashHex, node);
    this.main.push(node);
  }

  get tip(): BlockNode {
    return this.main[this.main.length - 1]!;
  }

  /** Nodes in memory. */
  get size(): number {
    return this.nodes.size;
  }

  /** The lowest main-chain height memory holds (0 until the window moves up). */
  get base(): number {
    return this.baseHeight;
  }

  get(hashHex: Hex): BlockNode | undefined {
    return this.nodes.get(hashHex);
  }

  /** The main-chain block at `height`; below the window, a node read from the store. */
  mainAt(height: number): BlockNode | undefined {
    if (height >= this.baseHeight) return this.main[height - this.baseHeight];
    if (height === 0) return this.genesis;
    if (height < 0 || !this.deep) return undefined;
    const s = this.deep(height);
    if (!s) return undefined;
    const node = nodeOfStored(s);
    node.onMain = true;
    return node;
  }

  /** Adds a validated block whose parent is known; it does not change the main chain. */
  add(hashHex: Hex, hash: Uint8Array, header: BlockHeader, entryIds: readonly Hex[]): BlockNode {
    const parent = this.nodes.get(toHex(header.prevHash));
    if (!parent) throw new Error(`parent of ${hashHex} is not in the tree`);
    const own = ownCopy(hash, header);
    const node: BlockNode = {
      hash: own.hash,
      hashHex,
      header: own.header,
      parent,
      height: parent.height + 1,
      chainWork: parent.chainWork + workForTarget(header.target),
      entryIds,
      onMain: false,
    };
    this.nodes.set(hashHex, node);
    return node;
  }

  /**
   * Adopts a stored block read back from the store (a side chain's blocks below the window, or
   * its fork point on the main chain, which is then flagged onMain but stays out of the window).
   * Its parent, if given, must be in the tree.
   */
  adopt(s: StoredHeader, parent: BlockNode | undefined): BlockNode {
    const held = this.nodes.get(s.hashHex);
    if (held) return held;
    const node = nodeOfStored(s, parent);
    node.onMain = s.onMain && s.height < this.baseHeight && !parent;
    this.nodes.set(s.hashHex, node);
    return node;
  }

  /**
   * Starts the main chain at a stored block (opening at the head with a window): it becomes the
   * lowest main-chain node in memory, its ancestors stay in the store.
   */
  setRoot(root: StoredHeader): BlockNode {
    if (this.tip !== this.genesis) throw new Error('the root is set on an empty tree only');
    const node = nodeOfStored(root);
    node.onMain = true;
    this.nodes.set(node.hashHex, node);
    this.main = [node];
    this.baseHeight = node.height;
    return node;
  }

  /**
   * Brings the main chain from the window down to `height` into memory (a reorg forking below
   * the window disconnects those blocks). Nodes adopted already (fork points) are reused.
   */
  extendDown(height: number): void {
    if (height >= this.baseHeight) return;
    if (!this.deep) throw new Error(`no main-chain block below ${this.baseHeight} in memory`);
    const from = Math.max(height, 1);
    const loaded: BlockNode[] = [];
    for (let h = from; h < this.baseHeight; h++) {
      const s = this.deep(h);
      if (!s) throw new Error(`main-chain block at height ${h} is missing from the store`);
      const node = this.nodes.get(s.hashHex) ?? nodeOfStored(s);
      node.onMain = true;
      this.nodes.set(node.hashHex, node);
      loaded.push(node);
    }
    const below = from === 1 ? [this.genesis] : [];
    const all = [...below, ...loaded, ...this.main];
    for (let i = 1; i < all.length; i++) all[i]!.parent ??= all[i - 1];
    this.main = all;
    this.baseHeight = all[0]!.height;
  }

  /**
   * Lets the main chain below `height` go, and every side block that is below it and not an
   * ancestor of a side block at or above it (side chains keep their path to their fork point).
   * Nodes in `keep` (not yet committed) stay. Returns the main-chain nodes let go, lowest first.
   */
  evictBelow(height: number, keep: ReadonlySet<Hex>): BlockNode[] {
    if (!this.deep || height <= this.baseHeight || height > this.tip.height) return [];
    for (const id of keep) {
      const n = this.nodes.get(id);
      if (n && n.height < height) return [];
    }
    const pinned = new Set<BlockNode>();
    for (const n of this.nodes.values()) {
      if (n.onMain || n.height < height) continue;
      // Up to the cut the path runs through nodes kept anyway; below it, it is pinned down to
      // the fork point.
      let a = n.parent;
      while (a && !a.onMain && a.height >= height) a = a.parent;
      for (; a && !pinned.has(a) && a.height < height; a = a.parent) {
        pinned.add(a);
        if (a.onMain) break;
      }
    }
    const gone = this.main.slice(0, height - this.baseHeight);
    this.main = this.main.slice(height - this.baseHeight);
    this.baseHeight = height;
    this.main[0]!.parent = undefined;
    for (const [id, n] of this.nodes) {
      if (n.height >= height || n === this.genesis || pinned.has(n)) continue;
      this.nodes.delete(id);
    }
    // A main-chain fork point kept for a side chain stands alone: nothing below it is walked.
    for (const n of pinned) if (n.onMain) n.parent = undefined;
    return gone.filter((n) => n !== this.genesis);
  }

  /** The ancestor of `node` (or node itself) at `height`. */
  ancestorAt(node: BlockNode, height: number): BlockNode | undefined {
    if (height > node.height || height < 0) return undefined;
    let n: BlockNode | undefined = node;
    while (n && !n.onMain && n.height > height) n = n.parent;
    if (!n) return undefined;
    return n.onMain ? this.mainAt(height) : n;
  }

  isAncestorOrSelf(ancestor: BlockNode, node: BlockNode): boolean {
    return this.ancestorAt(node, ancestor.height)?.hashHex === ancestor.hashHex;
  }

  parentContext(parent: BlockNode): ParentContext {
    return {
      hash: parent.hash,
      height: parent.height,
      target: parent.header.target,
      timestampAt: (h) => {
        const a = this.ancestorAt(parent, h);
        if (!a) throw new Error(`no ancestor at height ${h}`);
        return a.header.timestamp;
      },
    };
  }

  /** Fork choice: does `candidate` carry more work than the current tip? */
  isBetter(candidate: BlockNode): boolean {
    return candidate.chainWork > this.tip.chainWork;
  }

  /** The main-chain block where `node`'s chain leaves it (node itself if it is on the main chain). */
  forkOf(node: BlockNode): BlockNode {
    let n: BlockNode | undefined = node;
    while (n && !n.onMain) n = n.parent;
    if (!n) throw new Error(`block ${node.hashHex} does not descend from the main chain`);
    return n;
  }

  planReorg(newTip: BlockNode): ReorgPlan {
    const connect: BlockNode[] = [];
    let n: BlockNode | undefined = newTip;
    while (n && !n.onMain) {
      connect.push(n);
      n = n.parent;
    }
    if (!n) throw new Error('new tip does not descend from genesis');
    this.extendDown(n.height);
    // The window's node for the fork point (an adopted fork point is the same node).
    const fork = this.main[n.height - this.baseHeight]!;
    if (connect.length) connect[connect.length - 1]!.parent = fork;
    const disconnect = this.main.slice(fork.height + 1 - this.baseHeight).reverse();
    return { fork, disconnect, connect: connect.reverse() };
  }

  /** Makes `plan` the main chain. */
  applyReorg(plan: ReorgPlan): void {
    for (const d of plan.disconnect) d.onMain = false;
    this.main.length = plan.fork.height + 1 - this.baseHeight;
    for (const c of plan.connect) {
      c.onMain = true;
      this.main.push(c);
    }
  }

  /** A block locator for sync: dense near the tip, then exponentially sparser, ending at genesis. */
  locator(): Hex[] {
    const out: Hex[] = [];
    let step = 1;
    for (let h = this.tip.height; h > 0; h -= step) {
      const node = this.mainAt(h);
      if (node) out.push(node.hashHex);
      if (out.length >= 10) step *= 2;
    }
    out.push(this.genesis.hashHex);
    return out;
  }
}
