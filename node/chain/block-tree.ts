import { type Hex, toHex } from './bytes.ts';
import { workForTarget } from './pow.ts';
import type { BlockHeader } from './types.ts';
import type { ParentContext } from './validation.ts';

/** What the chain keeps in memory about every known valid block (the bytes live in the store). */
export interface BlockNode {
  readonly hash: Uint8Array;
  readonly hashHex: Hex;
  readonly header: BlockHeader;
  readonly parent: BlockNode | undefined;
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

/**
 * The tree of known valid blocks and the selected main chain. Fork choice is most cumulative
 * work; on equal work the chain seen first stays selected. Pure bookkeeping, no I/O.
 */
export class BlockTree {
  private readonly nodes = new Map<Hex, BlockNode>();
  private readonly main: BlockNode[] = [];

  constructor(genesis: { hash: Uint8Array; hashHex: Hex; header: BlockHeader }) {
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
    this.nodes.set(node.hashHex, node);
    this.main.push(node);
  }

  get tip(): BlockNode {
    return this.main[this.main.length - 1]!;
  }

  get genesis(): BlockNode {
    return this.main[0]!;
  }

  get size(): number {
    return this.nodes.size;
  }

  get(hashHex: Hex): BlockNode | undefined {
    return this.nodes.get(hashHex);
  }

  mainAt(height: number): BlockNode | undefined {
    return this.main[height];
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

  /** The ancestor of `node` (or node itself) at `height`. */
  ancestorAt(node: BlockNode, height: number): BlockNode | undefined {
    if (height > node.height || height < 0) return undefined;
    let n: BlockNode | undefined = node;
    while (n && !n.onMain && n.height > height) n = n.parent;
    if (!n) return undefined;
    return n.onMain ? this.main[height] : n;
  }

  isAncestorOrSelf(ancestor: BlockNode, node: BlockNode): boolean {
    return this.ancestorAt(node, ancestor.height) === ancestor;
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

  planReorg(newTip: BlockNode): ReorgPlan {
    const connect: BlockNode[] = [];
    let n: BlockNode | undefined = newTip;
    while (n && !n.onMain) {
      connect.push(n);
      n = n.parent;
    }
    if (!n) throw new Error('new tip does not descend from genesis');
    const fork = n;
    const disconnect = this.main.slice(fork.height + 1).reverse();
    return { fork, disconnect, connect: connect.reverse() };
  }

  /** Makes `plan` the main chain. */
  applyReorg(plan: ReorgPlan): void {
    for (const d of plan.disconnect) d.onMain = false;
    this.main.length = plan.fork.height + 1;
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
      out.push(this.main[h]!.hashHex);
      if (out.length >= 10) step *= 2;
    }
    out.push(this.genesis.hashHex);
    return out;
  }
}
