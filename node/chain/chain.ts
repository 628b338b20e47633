import { RosterLedger } from '../membership/ledger.ts';
import type { MembershipProblem, RosterState } from '../membership/roster-state.ts';
import type { AddResult, MempoolOrigin } from '../mempool/mempool.ts';
import { Mempool } from '../mempool/mempool.ts';
import { decodeBlock } from './block-codec.ts';
import { type BlockNode, BlockTree } from './block-tree.ts';
import { type Hex, toHex } from './bytes.ts';
import { ancestorAt, type Checkpoint, checkpointsIn, forksBelow, laterCheckpoint } from './checkpoint.ts';
import { easiestTargetReachable } from './difficulty.ts';
import { type EntryIndex, MemoryEntryIndex, mergeHolders } from './entry-index.ts';
import { genesisBlock } from './genesis.ts';
import { CHAIN_WINDOW_DEFAULTS, type HeaderStore, type StoredHeader, windowSize } from './header-store.ts';
import { ModelLedger } from './model-ledger.ts';
import { assertValidNetworkConfig, chainIdOf, type NetworkConfig } from './network-config.ts';
import { type Orphan, type OrphanDropReason, OrphanPool } from './orphan-pool.ts';
import { PooledEntryVerifier } from './pooled-entry-verifier.ts';
import { workForTarget } from './pow.ts';
import { CachedVerifier, type SignatureVerifier } from './signature-cache.ts';
import type { BlockHeader, ModelPayload, SealedBlock, SealedEntry } from './types.ts';
import {
  BlockValidationError,
  retryAfter,
  validateBlockBody,
  validateBlockContext,
  validateBlockShell,
  validateHeader,
} from './validation.ts';

/** Why a known block is not on the main chain. */
export type StaleReason = 'reorged-out' | 'side-chain';

export type ChainEvent =
  | { readonly type: 'block-connected'; readonly node: BlockNode }
  | {
      readonly type: 'reorg';
      readonly fork: BlockNode;
      readonly oldTip: BlockNode;
      readonly newTip: BlockNode;
      readonly depth: number;
    }
  | {
      readonly type: 'block-stale';
      readonly node: BlockNode;
      readonly reason: StaleReason;
      /** For a reorged-out block: how many main-chain blocks the reorg that took it out disconnected. */
      readonly reorgDepth?: number;
    }
  | { readonly type: 'orphan-added'; readonly block: SealedBlock; readonly missingParent: Hex }
  | {
      readonly type: 'orphan-dropped';
      readonly block: SealedBlock;
      readonly reason: OrphanDropReason;
      readonly from: string | undefined;
    }
  | { readonly type: 'block-invalid'; readonly hashHex: Hex; readonly error: BlockValidationError }
  | { readonly type: 'finalized'; readonly checkpoint: Checkpoint };

/**
 * Everything a batch of chain operations changed, as net effects, for the store to commit in
 * one transaction. A map value of null means "removed".
 */
export interface ChainUpdate {
  readonly blocks: { readonly block: SealedBlock; readonly node: BlockNode; readonly receivedAt: number }[];
  head: BlockNode | undefined;
  /** A higher admin checkpoint became final on the main chain. */
  finalized: Checkpoint | undefined;
  readonly stale: Map<Hex, StaleReason | null>;
  readonly orphans: Map<Hex, Orphan | null>;
  readonly mempool: Map<Hex, SealedEntry | null>;
  /** The origin of each entry `mempool` puts, other than `peer` (filled in by takeUpdate). */
  readonly mempoolOrigins?: ReadonlyMap<Hex, MempoolOrigin>;
  readonly events: ChainEvent[];
}

/**
 * Why a block was neither stored nor judged invalid. Such blocks may be valid, but are not
 * worth keeping (Bitcoin's AcceptBlock drops unrequested blocks the same way): an orphan far
 * above our tip (range sync fetches those), an orphan easier than the retarget rule lets any
 * chain get from our tip, or a side-chain block whose chain is far lighter than ours.
 */
export type IgnoreReason =
  | 'orphan-too-far-ahead'
  | 'orphan-outside-envelope'
  /** Larger than the orphan pool's byte quota for its sender: no eviction could make room. */
  | 'orphan-too-large'
  /** Its sender already holds its quota of orphans: one more would evict its own chain. */
  | 'orphan-peer-quota'
  /**
   * Miner or an entry's author not allowed by the roster at our tip (the orphan's own parent is
   * unknown): held, its entries' signatures would be checked for a block that may never connect.
   */
  | 'orphan-not-member'
  | 'low-work-side-chain';

export type ProcessResult =
  | {
      readonly status: 'connected' | 'side' | 'duplicate';
      readonly hashHex: Hex;
      /**
       * `false`: kept, but not worth relaying. A side block whose own chain reaches the work
       * floor only with orphans held here: a peer without them sees junk, and would blame us.
       */
      readonly relay?: false;
    }
  | {
      readonly status: 'ignored';
      readonly hashHex: Hex;
      readonly reason: IgnoreReason;
      /**
       * Clearly junk, not a block an honest peer would send: a side chain with less than half our
       * tip's work (a cheap fork from far below). Others may come from an honest peer that
       * followed another fork for a while.
       */
      readonly junk: boolean;
    }
  | { readonly status: 'reorg'; readonly hashHex: Hex; readonly depth: number }
  | {
      readonly status: 'orphan';
      readonly hashHex: Hex;
      readonly missingParent: Hex;
      readonly from: string | undefined;
    }
  | { readonly status: 'invalid'; readonly hashHex: Hex; readonly error: BlockValidationError };

/** Fetches a block's bytes from durable storage (used for blocks that left the recent cache). */
export type BlockLoader = (hashHex: Hex) => Promise<SealedBlock | undefined>;

export interface ChainOptions {
  readonly config: NetworkConfig;
  readonly loadBlock: BlockLoader;
  /**
   * The entry ids of stored blocks (the node store's index). Without it the chain indexes every
   * block it holds in memory (tests and benches without a store).
   */
  readonly entryIndex?: EntryIndex;
  /**
   * The headers of stored blocks. With it the chain holds only a window of recent headers in
   * memory and reads older ones from here; without it, every block it knows.
   */
  readonly headers?: HeaderStore;
  /** Reorgs this deep are planned from memory (default CHAIN_WINDOW_DEFAULTS.reorgDepth). */
  readonly windowReorgDepth?: number;
  /** Headers leave memory in steps of this many (default CHAIN_WINDOW_DEFAULTS.evictEvery). */
  readonly evictEvery?: number;
  readonly verifier?: SignatureVerifier;
  readonly now?: () => number;
  readonly orphanCapacity?: number;
  readonly orphanTtlMs?: number;
  /** Orphans one sender may have in the pool (default a quarter of the capacity). */
  readonly orphanPeerQuota?: number;
  /** Bytes of orphans held at most, and per sender (defaults: ORPHAN_POOL_DEFAULTS). */
  readonly orphanMaxBytes?: number;
  readonly orphanPeerMaxBytes?: number;
  /** Orphans above tip height + this are not kept (default 24, the ancestor fetch depth). */
  readonly orphanMaxAhead?: number;
  /**
   * An unrequested block on a side chain is kept only if that chain's work (with the orphans
   * waiting on it) is within this many tip-difficulty blocks of the tip's work (default 6), and
   * at least half the tip's work.
   */
  readonly sideChainMarginBlocks?: number;
  /** Blocks rejected for a transient reason remembered at most (default 1,024). */
  readonly transientMemory?: number;
  readonly mempoolMaxEntries?: number;
  readonly mempoolMaxBytes?: number;
  readonly recentBlockCache?: number;
}

/** What a store hands back on reopen. */
/** How a block reached us. */
export interface ProcessOptions {
  /**
   * Asked for by us because its chain claims more work (range sync; our own miner): exempt
   * from the side-chain work margin, which only keeps strangers from making us store cheap
   * forks. Gossiped blocks and ancestors fetched for an orphan are unrequested.
   */
  readonly requested?: boolean;
}

export interface PersistedChainState {
  /** Every stored block (with `window`: those above its root, and the root), parents before children. */
  readonly blocks: readonly {
    hashHex: Hex;
    hash: Uint8Array;
    header: BlockHeader;
    entryIds: readonly Hex[];
  }[];
  /**
   * Present when the store opened at its head with a window: `root` is the lowest main-chain
   * block read (its ancestors stay on disk), `below` the main-chain blocks at or below it that
   * carry config or model entries (in `configEntries`, `modelEntries`), lowest first.
   */
  readonly window?: {
    readonly root: StoredHeader;
    readonly below: readonly { readonly hashHex: Hex; readonly height: number }[];
  };
  readonly headHashHex: Hex;
  readonly orphans: readonly Orphan[];
  readonly mempool: readonly SealedEntry[];
  /** Stored origins of mempool entries other than `peer` (absent: all peers'). */
  readonly mempoolOrigins?: ReadonlyMap<Hex, MempoolOrigin>;
  /** The highest checkpoint final on this node (absent: none yet). */
  readonly finalized?: Checkpoint;
  /**
   * The config entries of stored blocks, by block hash, in block order: what the roster at
   * every block is derived from (a store that keeps none restores the genesis roster only).
   */
  readonly configEntries?: ReadonlyMap<Hex, readonly SealedEntry[]>;
  /** The model entries of stored blocks, by block hash, in block order: what the model head at every block is derived from. */
  readonly modelEntries?: ReadonlyMap<Hex, readonly SealedEntry[]>;
}

const newUpdate = (): ChainUpdate => ({
  blocks: [],
  head: undefined,
  finalized: undefined,
  stale: new Map(),
  orphans: new Map(),
  mempool: new Map(),
  events: [],
});

/**
 * The node's chain state machine: block tree and fork choice, orphan pool and mempool.
 * Operations are serialised; each records its effects into a pending ChainUpdate that the
 * caller commits with `takeUpdate()`. No I/O except loading old blocks during deep reorgs.
 */
export class Chain {
  readonly config: NetworkConfig;
  readonly chainId: Uint8Array;
  readonly genesis: SealedBlock;
  readonly tree: BlockTree;
  readonly orphans: OrphanPool;
  readonly mempool: Mempool;
  readonly verifier: SignatureVerifier;
  /** Block bodies are checked with this: what the mempool holds is not checked twice. */
  readonly bodyVerifier: PooledEntryVerifier;
  /** The clock the chain judges timestamps by (tests set it). */
  readonly now: () => number;
  private readonly loadBlock: BlockLoader;
  /** The store's entry index; undefined: `newEntries` indexes every block and is never cleared. */
  private readonly storedEntries: EntryIndex | undefined;
  /** Entry ids of the blocks added since the last takeUpdate, which the store has not seen yet. */
  private readonly newEntries = new MemoryEntryIndex();
  private readonly headers: HeaderStore | undefined;
  /** Main-chain headers kept below the tip (with a header store). */
  readonly windowSize: number;
  private readonly evictEvery: number;
  /**
   * The highest stored block that memory does not hold (below the window, or a side block whose
   * chain left it): a block above it that the tree does not know is not stored either.
   */
  private outsideTop = 0;
  private readonly invalid = new Map<Hex, BlockValidationError>();
  /**
   * Blocks rejected for a transient reason (their clock ahead of ours), until they could pass:
   * re-sent before then they cost a map lookup, not another validation. Bounded, oldest first.
   */
  private readonly transient = new Map<Hex, { error: BlockValidationError; retryAt: number }>();
  private readonly transientCapacity: number;
  private readonly orphanMaxAhead: number;
  private readonly sideChainMarginBlocks: bigint;
  /**
   * Encodings of recent blocks, decoded again on demand: decoded blocks held this long outlive
   * V8's young generation, and copying them there cost about a fifth of sync's main-thread time.
   */
  private readonly recent = new Map<Hex, Uint8Array>();
  private readonly recentCapacity: number;
  private pending = newUpdate();
  /** Everything at or below this is final: no chain forking below it is accepted. */
  private finalCheckpoint: Checkpoint | undefined;
  /** Checkpoints carried by known blocks (rare: admins sign them), applied when a block joins the main chain. */
  private readonly carried = new Map<Hex, Checkpoint[]>();
  private queue: Promise<unknown> = Promise.resolve();
  /** The roster at every known block (membership mode `roster`; inert in open mode). */
  readonly roster: RosterLedger;
  /** The model head at every known block (model-ledger.ts): `model` entries must extend it. */
  readonly models: ModelLedger;

  constructor(opts: ChainOptions) {
    assertValidNetworkConfig(opts.config);
    this.config = opts.config;
    this.chainId = chainIdOf(opts.config);
    this.genesis = genesisBlock(opts.config);
    this.headers = opts.headers;
    const headers = opts.headers;
    this.tree = new BlockTree(this.genesis, headers ? (h) => headers.mainHeader(h) : undefined);
    this.windowSize = windowSize(opts.config, opts.windowReorgDepth ?? CHAIN_WINDOW_DEFAULTS.reorgDepth);
    this.evictEvery = opts.evictEvery ?? CHAIN_WINDOW_DEFAULTS.evictEvery;
    this.roster = new RosterLedger(opts.config, this.chainId, this.tree.genesis);
    this.models = new ModelLedger(this.tree.genesis);
    this.orphans = new OrphanPool({
      ...(opts.orphanCapacity !== undefined ? { capacity: opts.orphanCapacity } : {}),
      ...(opts.orphanTtlMs !== undefined ? { ttlMs: opts.orphanTtlMs } : {}),
      ...(opts.orphanPeerQuota !== undefined ? { perPeerQuota: opts.orphanPeerQuota } : {}),
      ...(opts.orphanMaxBytes !== undefined ? { maxBytes: opts.orphanMaxBytes } : {}),
      ...(opts.orphanPeerMaxBytes !== undefined ? { perPeerMaxBytes: opts.orphanPeerMaxBytes } : {}),
    });
    this.orphanMaxAhead = opts.orphanMaxAhead ?? 24;
    this.sideChainMarginBlocks = BigInt(opts.sideChainMarginBlocks ?? 6);
    this.transientCapacity = opts.transientMemory ?? 1024;
    this.verifier = opts.verifier ?? new CachedVerifier();
    this.now = opts.now ?? Date.now;
    this.loadBlock = opts.loadBlock;
    this.storedEntries = opts.entryIndex;
    this.recentCapacity = opts.recentBlockCache ?? 2048;
    this.mempool = new Mempool({
      config: opts.config,
      verifier: this.verifier,
      isIncluded: (id) => this.mainBlockOf(id) !== undefined,
      // Admission judges permissions and the model head at the tip: the block the entry would
      // go into builds on it.
      authorize: (e, now) =>
        this.roster.entryProblem(e, this.tree.tip, now) ?? this.models.entryProblem(e, this.tree.tip),
      maxEntries: opts.mempoolMaxEntries,
      maxBytes: opts.mempoolMaxBytes,
      // Held entries are stored with the pool's: a restart must not lose what a reorg returned.
      onHeldChange: (id, entry) => {
        this.pending.mempool.delete(id);
        this.pending.mempool.set(id, entry);
      },
    });
    this.bodyVerifier = new PooledEntryVerifier(this.mempool, this.verifier);
    this.remember(this.genesis);
  }

  /**
   * Rebuilds the in-memory state from what the store persisted (trusted: no re-validation).
   * Finality is derived again from the stored blocks, not taken from the recorded value alone:
   * the checkpoints every stored block carries (a side-chain carrier finalizes when its chain
   * wins later), and the highest one carried on the main chain, which is final whatever the
   * store recorded (a store written before the value was kept, or that lost it).
   */
  restore(state: PersistedChainState): void {
    // Every carrier, not only those `carried` keeps (it is bounded): rare, admins sign them.
    const carriers: { node: BlockNode; checkpoints: Checkpoint[] }[] = [];
    this.finalCheckpoint = state.finalized;
    if (state.window) this.restoreFloor(state);
    for (const b of state.blocks) {
      if (b.hashHex === this.genesis.hashHex) continue;
      if (this.tree.get(b.hashHex)) continue;
      if (state.window && !this.tree.get(toHex(b.header.prevHash))) {
        // Its chain forks below the window: it stays on disk until something builds on it.
        this.outsideTop = Math.max(this.outsideTop, b.header.height);
        continue;
      }
      const node = this.tree.add(b.hashHex, b.hash, b.header, b.entryIds);
      if (!this.storedEntries) this.newEntries.add(node, b.entryIds);
      const config = state.configEntries?.get(b.hashHex) ?? [];
      this.roster.record(node, config);
      this.models.record(node, state.modelEntries?.get(b.hashHex) ?? []);
      this.recordCarried(b.hashHex, config);
      const checkpoints = checkpointsIn(config);
      if (checkpoints.length) carriers.push({ node, checkpoints });
    }
    const head = this.tree.get(state.headHashHex);
    if (!head) throw new Error(`stored head ${state.headHashHex} is not among the stored blocks`);
    this.tree.applyReorg(this.tree.planReorg(head));
    for (const o of state.orphans) this.orphans.add(o);
    this.mempool.restore(state.mempool, state.mempoolOrigins);
    for (const { node, checkpoints } of carriers) {
      if (!node.onMain) continue;
      for (const cp of checkpoints) {
        if (laterCheckpoint(this.finalCheckpoint, cp) === this.finalCheckpoint) continue;
        this.finalCheckpoint = cp;
        // Written back with the next commit, so the store records what it implies.
        this.pending.finalized = cp;
      }
    }
  }

  /**
   * Opening with a window: the main chain starts at the stored root, and the roster and model
   * head below it are folded from the config and model entries of the main chain's blocks at or
   * below it; the checkpoints those carry are final (they are on the main chain).
   */
  private restoreFloor(state: PersistedChainState): void {
    const { root, below } = state.window!;
    this.tree.setRoot(root);
    this.outsideTop = root.height - 1;
    let roster = this.roster.floor.initial;
    let head = this.models.floor.initial;
    for (const b of below) {
      const config = state.configEntries?.get(b.hashHex) ?? [];
      roster = RosterLedger.after(roster, config);
      head = this.models.fold(head, state.modelEntries?.get(b.hashHex) ?? []);
      this.roster.floor.push(b.height, roster);
      this.models.floor.push(b.height, head);
      for (const cp of checkpointsIn(config)) {
        if (laterCheckpoint(this.finalCheckpoint, cp) === this.finalCheckpoint) continue;
        this.finalCheckpoint = cp;
        this.pending.finalized = cp;
      }
    }
    this.roster.floor.push(root.height, roster);
    this.models.floor.push(root.height, head);
  }

  /** The highest admin checkpoint final on this node. */
  get finalized(): Checkpoint | undefined {
    return this.finalCheckpoint;
  }

  /**
   * Why `entry` cannot go into a block on `parent` (default: the tip): a checkpoint it carries
   * names a block that is not that chain's block at that height.
   */
  checkpointProblem(entries: readonly SealedEntry[], parent: BlockNode = this.tree.tip): string | undefined {
    for (const cp of checkpointsIn(entries)) {
      const at =
        cp.height <= parent.height ? ancestorAt(parent, cp.height, (h) => this.tree.mainAt(h)) : undefined;
      if (at?.hashHex !== cp.hashHex)
        return `checkpoint ${cp.height}:${cp.hashHex.slice(0, 16)}… is not this chain's block at that height`;
    }
    return undefined;
  }

  get tip(): BlockNode {
    return this.tree.tip;
  }

  /**
   * The least cumulative work a side chain's block may carry to be stored: within the margin
   * of `sideChainMarginBlocks` tip-difficulty blocks of the tip, and at least half the tip's
   * work (under half is junk however young the chain: six tip-difficulty blocks can outweigh
   * a chain that just ramped its difficulty up). Gossiped blocks are held to it here; range
   * sync proves a fork's headers reach it before it downloads a single block of the fork.
   */
  sideChainWorkFloor(): bigint {
    const tipWork = this.tree.tip.chainWork;
    const margin = tipWork - this.sideChainMarginBlocks * workForTarget(this.tree.tip.header.target);
    const half = (tipWork + 1n) / 2n;
    return margin > half ? margin : half;
  }

  /** The roster after the main chain's tip. */
  get tipRoster(): RosterState {
    return this.roster.at(this.tree.tip);
  }

  /** The newest model version on the main chain (undefined before the first). */
  get tipModel(): ModelPayload | undefined {
    return this.models.at(this.tree.tip);
  }

  /** Why `entry` could not go into the next block on `parent` (default the tip), stamped `atMs`. */
  permissionProblem(
    entry: SealedEntry,
    atMs: number,
    parent: BlockNode = this.tree.tip,
  ): MembershipProblem | undefined {
    return this.roster.entryProblem(entry, parent, atMs);
  }

  /** Returns and clears the effects recorded since the last call. */
  takeUpdate(): ChainUpdate {
    const u = this.pending;
    this.pending = newUpdate();
    // The store indexes these blocks' entries when it commits the update.
    if (this.storedEntries) this.newEntries.clear();
    // Origins as they stand at commit: an entry put and moved within one update is stored once.
    const origins = new Map<Hex, MempoolOrigin>();
    for (const [id, e] of u.mempool) {
      const origin = e ? this.mempool.originOf(id) : 'peer';
      if (origin !== 'peer') origins.set(id, origin);
    }
    return origins.size ? { ...u, mempoolOrigins: origins } : u;
  }

  async getBlock(hashHex: Hex): Promise<SealedBlock | undefined> {
    const encoded = this.recent.get(hashHex);
    return encoded ? decodeBlock(encoded) : await this.loadBlock(hashHex);
  }

  /** A block's encoding from the in-memory cache of recent blocks, if it is there. */
  cachedEncoding(hashHex: Hex): Uint8Array | undefined {
    return this.recent.get(hashHex);
  }

  /** Several blocks at once, in the order asked; unknown ones are left out. */
  async getBlocks(hashHexes: readonly Hex[]): Promise<SealedBlock[]> {
    const blocks = await Promise.all(hashHexes.map((h) => this.getBlock(h)));
    return blocks.filter((b): b is SealedBlock => b !== undefined);
  }

  /** The blocks known to hold each of `ids`: the store's index and the blocks it has not seen yet. */
  private holders(ids: readonly Hex[]) {
    const fresh = this.newEntries.holders(ids);
    return this.storedEntries ? mergeHolders(this.storedEntries.holders(ids), fresh) : fresh;
  }

  /** The main-chain block that includes an entry, if one does. */
  mainBlockOf(entryId: Hex): BlockNode | undefined {
    for (const h of this.holders([entryId]).get(entryId) ?? []) {
      const node = this.tree.mainAt(h.height);
      if (node?.hashHex === h.hashHex) return node;
    }
    return undefined;
  }

  /**
   * The first of `entries` that `parent` or one of its ancestors already includes. On the tip,
   * an entry the mempool holds is in no main-chain block (the mempool never holds those), so
   * only the others are looked up, all in one query: a block mined from the pool costs none.
   */
  private alreadyIncluded(entries: readonly SealedEntry[], parent: BlockNode): Hex | undefined {
    const ids: Hex[] = [];
    for (const e of entries) if (parent !== this.tree.tip || !this.mempool.has(e.idHex)) ids.push(e.idHex);
    if (!ids.length) return undefined;
    const held = this.holders(ids);
    if (!held.size) return undefined;
    for (const id of ids) {
      for (const h of held.get(id) ?? []) {
        // Below the window the ancestor is read from the store: only a duplicate gets here.
        if (this.tree.ancestorAt(parent, h.height)?.hashHex === h.hashHex) return id;
      }
    }
    return undefined;
  }

  /** Whether the chain holds a block, in memory or (a block that left it) in the store. */
  has(hashHex: Hex): boolean {
    return this.tree.get(hashHex) !== undefined || this.headers?.storedHeader(hashHex) !== undefined;
  }

  /** Whether a block is on the main chain, in memory or below the window. */
  isOnMain(hashHex: Hex): BlockNode | undefined {
    const node = this.tree.get(hashHex);
    if (node) return node.onMain ? node : undefined;
    const s = this.headers?.storedHeader(hashHex);
    if (!s?.onMain || s.height >= this.tree.base) return undefined;
    return this.tree.mainAt(s.height);
  }

  /** A block locator over the main chain (below the window from the store). */
  locator(): Hex[] {
    return this.tree.locator();
  }

  /**
   * The tree node of a stored block that left memory (or never entered it at start-up), with
   * its chain down to where it meets the tree: a side chain's blocks, then its fork point on the
   * main chain below the window (adopted alone: main-chain lookups below it go to the store).
   * Undefined if the store does not hold it.
   */
  private async adoptStored(hashHex: Hex): Promise<BlockNode | undefined> {
    const headers = this.headers;
    if (!headers) return undefined;
    const path: StoredHeader[] = [];
    let id = hashHex;
    let anchor: BlockNode | undefined;
    for (;;) {
      anchor = this.tree.get(id);
      if (anchor) break;
      const s = headers.storedHeader(id);
      if (!s) {
        if (!path.length) return undefined;
        throw new Error(`stored block ${path.at(-1)!.hashHex}'s parent ${id} is missing from the store`);
      }
      if (s.onMain && s.height < this.tree.base) {
        anchor = this.tree.adopt(s, undefined);
        break;
      }
      path.push(s);
      id = toHex(s.header.prevHash);
    }
    for (const s of path.reverse()) {
      const block = await this.getBlock(s.hashHex);
      if (!block) throw new Error(`stored block ${s.hashHex} is missing from the store`);
      anchor = this.tree.adopt(s, anchor);
      this.roster.record(anchor, block.entries);
      this.models.record(anchor, block.entries);
      this.recordCarried(s.hashHex, block.entries);
    }
    return anchor;
  }

  /**
   * Brings the main chain down to `height` into memory for a reorg that forks there, with the
   * roster and model head of every block it brings in taken from the floors while they are still
   * on the main chain; the floors then end below the window again.
   */
  private lowerWindow(height: number): void {
    const base = this.tree.base;
    if (height >= base) return;
    this.tree.extendDown(height);
    for (let h = this.tree.base; h < base; h++) {
      const n = this.tree.mainAt(h)!;
      this.roster.at(n);
      this.models.at(n);
    }
    this.roster.floor.truncate(this.tree.base - 1);
    this.models.floor.truncate(this.tree.base - 1);
  }

  /**
   * Lets the main chain's headers more than the window below the tip leave memory (in steps, so
   * it costs nothing per block), once everything they changed is committed: what the store holds
   * is then what lookups below the window read. Their roster and model head go to the floors.
   */
  private evict(): void {
    if (!this.headers) return;
    const cut = this.tree.tip.height - this.windowSize;
    if (cut - this.tree.base < this.evictEvery) return;
    if (this.pending.blocks.length || this.pending.stale.size) return;
    for (let h = this.tree.base; h < cut; h++) {
      const n = this.tree.mainAt(h)!;
      this.roster.floor.push(h, this.roster.at(n));
      this.models.floor.push(h, this.models.at(n) ?? null);
    }
    this.tree.evictBelow(cut, new Set());
    this.outsideTop = Math.max(this.outsideTop, cut - 1);
  }

  invalidReason(hashHex: Hex): BlockValidationError | undefined {
    return this.invalid.get(hashHex);
  }

  processBlock(block: SealedBlock, from?: string, opts: ProcessOptions = {}): Promise<ProcessResult> {
    return this.serialise(() => this.process(block, from, opts.requested ?? true));
  }

  addEntry(entry: SealedEntry): AddResult {
    const problem = this.checkpointProblem([entry]);
    if (problem) return { status: 'rejected', reason: 'checkpoint-not-in-chain', message: problem };
    const r = this.mempool.add(entry, this.now());
    if (r.status === 'added') {
      for (const e of r.evicted) this.pending.mempool.set(e.idHex, null);
      this.recordAdmission(entry);
    }
    return r;
  }

  /** Drops the orphans `peer` sent (it did not serve the ancestor they wait for). */
  dropOrphansFrom(peer: string): Orphan[] {
    const dropped = this.orphans.from(peer);
    for (const o of dropped) {
      this.orphans.remove(o.block.hashHex);
      this.dropOrphan(o, 'orphan-unresolved');
    }
    return dropped;
  }

  /** Drops orphans past their TTL. */
  expireOrphans(): Orphan[] {
    const expired = this.orphans.expire(this.now());
    for (const o of expired) this.dropOrphan(o, 'orphan-expired');
    return expired;
  }

  private serialise<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Checks run cheapest first, and everything that can make a block not worth keeping is
   * decided before its body (Merkle root, signatures) costs anything: the header (target bounds
   * first), then for an orphan the height window and the difficulty envelope, for a side-chain
   * block the work margin.
   */
  private async process(
    block: SealedBlock,
    from: string | undefined,
    requested: boolean,
  ): Promise<ProcessResult> {
    const hashHex = block.hashHex;
    this.evict();
    if (this.tree.get(hashHex) || this.orphans.has(hashHex)) return { status: 'duplicate', hashHex };
    // Only a block no higher than one that left memory can be stored and not in the tree.
    if (block.header.height <= this.outsideTop && this.headers?.storedHeader(hashHex))
      return { status: 'duplicate', hashHex };
    const known = this.invalid.get(hashHex);
    if (known) return { status: 'invalid', hashHex, error: known };
    const now = this.now();
    const waiting = this.transient.get(hashHex);
    if (waiting) {
      if (now < waiting.retryAt) return { status: 'invalid', hashHex, error: waiting.error };
      this.transient.delete(hashHex);
    }
    try {
      if (block.header.height === 0)
        throw new BlockValidationError('bad-height', 'only the genesis block has height 0');
      validateHeader(block, this.config, this.chainId);
    } catch (err) {
      return this.reject(hashHex, err, block);
    }
    const prevHex = toHex(block.header.prevHash);
    const parent =
      this.tree.get(prevHex) ??
      (block.header.height - 1 <= this.outsideTop ? await this.adoptStored(prevHex) : undefined);
    if (!parent) {
      if (this.invalid.has(prevHex)) {
        return this.reject(
          hashHex,
          new BlockValidationError('invalid-parent', `parent ${prevHex} is invalid`),
        );
      }
      const ignored =
        this.orphanAdmission(block) ??
        (this.orphans.fits(block.encoded.length, from) ? undefined : 'orphan-too-large') ??
        (from !== undefined && this.orphans.countFrom(from) >= this.orphans.perPeerQuota
          ? 'orphan-peer-quota'
          : undefined) ??
        (this.roster.blockProblem(block, this.tree.tip) ? 'orphan-not-member' : undefined);
      if (ignored) return this.ignore(hashHex, ignored, false);
      // Held header-first: the entries' signatures are checked when the parent arrives.
      try {
        validateBlockShell(block, this.config, this.bodyVerifier);
      } catch (err) {
        return this.reject(hashHex, err, block);
      }
      return this.addOrphan(block, from, now);
    }
    // The whole header against its parent (link, height, difficulty, then time) before the body:
    // the cheap checks that are final come before the transient one and the expensive one.
    try {
      validateBlockContext(block, this.tree.parentContext(parent), this.config, now);
    } catch (err) {
      return this.rejectWithOrphans(hashHex, err, block);
    }
    let onOrphansOnly = false;
    if (!requested) {
      const work = this.chainWorkWith(block, parent);
      const floor = this.sideChainWorkFloor();
      if (work < floor) {
        this.dropDescendants(hashHex);
        return this.ignore(hashHex, 'low-work-side-chain', work * 2n < this.tree.tip.chainWork);
      }
      onOrphansOnly = parent.chainWork + workForTarget(block.header.target) < floor;
    }
    try {
      validateBlockBody(block, this.config, now, this.bodyVerifier);
    } catch (err) {
      // A bad body may be a tampered copy of a good block (same hash): its orphans keep waiting.
      return this.reject(hashHex, err, block);
    }
    const connected = await this.connect(block, parent, now);
    // Attack review #11: relayed, such a block got an honest relay banned by peers without them.
    const result: ProcessResult =
      onOrphansOnly && connected.status === 'side' ? { ...connected, relay: false } : connected;
    // A block that failed only for now (its clock ahead of ours) may come again: its orphans wait.
    if (result.status !== 'invalid' || !result.error.isTransient) {
      await this.connectOrphansOf(hashHex, result.status !== 'invalid');
    }
    return result;
  }

  /**
   * Whether an orphan may wait in the pool, from its header alone. Its height must be within
   * reach of ancestor fetches (range sync fetches chains further ahead), and its target no
   * easier than the retarget rule lets any chain become by that height, starting one clamp
   * factor easier than our tip (room for a fork that retargeted the other way at the last
   * retarget): without a parent its work is unproven, and this keeps it from being nearly free.
   */
  private orphanAdmission(block: SealedBlock): IgnoreReason | undefined {
    const tip = this.tree.tip;
    const h = block.header;
    if (h.height > tip.height + this.orphanMaxAhead) return 'orphan-too-far-ahead';
    const slack = tip.header.target * BigInt(this.config.maxRetargetFactor);
    if (h.target > easiestTargetReachable(slack, tip.height, h.height, this.config))
      return 'orphan-outside-envelope';
    return undefined;
  }

  /**
   * The work of the block's chain, counting the heaviest chain of orphans already waiting on it
   * (a side chain fetched ancestor-first arrives lightest block first).
   */
  private chainWorkWith(block: SealedBlock, parent: BlockNode): bigint {
    return parent.chainWork + workForTarget(block.header.target) + this.orphans.descendantWork(block.hashHex);
  }

  /** Orphans waiting on a block that will not be kept can never connect: they go too. */
  private dropDescendants(hashHex: Hex): void {
    for (const o of this.orphans.removeDescendants(hashHex)) this.dropOrphan(o, 'orphan-low-work');
  }

  private ignore(hashHex: Hex, reason: IgnoreReason, junk: boolean): ProcessResult {
    return { status: 'ignored', hashHex, reason, junk };
  }

  private addOrphan(block: SealedBlock, from: string | undefined, now: number): ProcessResult {
    const orphan: Orphan = { block, receivedAt: now, from };
    for (const e of this.orphans.add(orphan)) this.dropOrphan(e.orphan, e.reason);
    this.pending.orphans.set(block.hashHex, orphan);
    const missingParent = this.orphans.missingAncestor(block.hashHex) ?? toHex(block.header.prevHash);
    this.pending.events.push({ type: 'orphan-added', block, missingParent });
    return { status: 'orphan', hashHex: block.hashHex, missingParent, from };
  }

  private dropOrphan(o: Orphan, reason: OrphanDropReason): void {
    this.pending.orphans.set(o.block.hashHex, null);
    this.pending.events.push({ type: 'orphan-dropped', block: o.block, reason, from: o.from });
  }

  /** Connects orphans waiting on `parentHex`, breadth first; children of an invalid block are invalid. */
  private async connectOrphansOf(parentHex: Hex, parentValid: boolean): Promise<void> {
    const queue: { parentHex: Hex; valid: boolean }[] = [{ parentHex, valid: parentValid }];
    while (queue.length) {
      const next = queue.shift()!;
      for (const o of this.orphans.takeChildren(next.parentHex)) {
        this.pending.orphans.set(o.block.hashHex, null);
        if (!next.valid) {
          this.reject(
            o.block.hashHex,
            new BlockValidationError('invalid-parent', `parent ${next.parentHex} is invalid`),
          );
          queue.push({ parentHex: o.block.hashHex, valid: false });
          continue;
        }
        const parent = this.tree.get(next.parentHex)!;
        const now = this.now();
        let r: ProcessResult;
        try {
          // Held header-first (process): its entries' signatures are checked now.
          validateBlockBody(o.block, this.config, now, this.bodyVerifier);
          r = await this.connect(o.block, parent, now);
        } catch (err) {
          r = this.reject(o.block.hashHex, err, o.block);
          // A bad body condemns this copy, not the hash its children name: they keep waiting.
          if (err instanceof BlockValidationError && err.isBodyError) continue;
        }
        // Its own orphans keep waiting if it failed only for now.
        if (r.status === 'invalid' && r.error.isTransient) continue;
        queue.push({ parentHex: o.block.hashHex, valid: r.status !== 'invalid' });
      }
    }
  }

  private async connect(block: SealedBlock, parent: BlockNode, now: number): Promise<ProcessResult> {
    const hashHex = block.hashHex;
    try {
      validateBlockContext(block, this.tree.parentContext(parent), this.config, now);
      // Permissions are consensus rules: the miner and every entry's author, at the parent.
      const denied = this.roster.blockProblem(block, parent);
      if (denied) throw new BlockValidationError(denied.code, denied.message);
      const stale = this.models.blockProblem(block, parent);
      if (stale) throw new BlockValidationError(stale.code, stale.message);
      const included = this.alreadyIncluded(block.entries, parent);
      if (included)
        throw new BlockValidationError(
          'entry-already-included',
          `entry ${included} is already in an ancestor`,
        );
      const final = this.finalCheckpoint;
      // A chain that leaves the main chain above the final checkpoint holds it (it is on the main
      // chain): only one leaving below it needs the look-up, which may read the store.
      if (
        final &&
        (block.header.height <= final.height ||
          (this.tree.forkOf(parent).height < final.height &&
            forksBelow(parent, block.header.height, final, (h) => this.tree.mainAt(h))))
      ) {
        throw new BlockValidationError(
          'below-checkpoint',
          `the block's chain forks below the checkpoint at height ${final.height}`,
        );
      }
      const problem = this.checkpointProblem(block.entries, parent);
      if (problem) throw new BlockValidationError('checkpoint-not-in-chain', problem);
    } catch (err) {
      return this.reject(hashHex, err, block);
    }
    // Load what a reorg would disconnect before touching any state, so a failing load changes
    // nothing and the block can be processed again once the store can deliver.
    const disconnected: SealedBlock[] = [];
    if (parent.chainWork + workForTarget(block.header.target) > this.tree.tip.chainWork) {
      const fork = this.tree.forkOf(parent);
      for (let h = this.tree.tip.height; h > fork.height; h--) {
        const d = this.tree.mainAt(h)!;
        const b = await this.getBlock(d.hashHex);
        if (!b) throw new Error(`block ${d.hashHex} on the main chain is missing from the store`);
        disconnected.push(b);
      }
    }
    const node = this.tree.add(
      hashHex,
      block.hash,
      block.header,
      block.entries.map((e) => e.idHex),
    );
    this.newEntries.add(node, node.entryIds);
    this.roster.record(node, block.entries);
    this.models.record(node, block.entries);
    this.remember(block);
    this.pending.blocks.push({ block, node, receivedAt: now });
    this.recordCarried(hashHex, block.entries);

    if (!this.tree.isBetter(node)) {
      this.markStale(node, 'side-chain');
      return { status: 'side', hashHex };
    }
    this.lowerWindow(this.tree.forkOf(node).height);
    const plan = this.tree.planReorg(node);
    const oldTip = this.tree.tip;
    this.tree.applyReorg(plan);
    this.pending.head = node;
    for (const d of plan.disconnect) this.markStale(d, 'reorged-out', plan.disconnect.length);
    for (const c of plan.connect) {
      if (c !== node) this.pending.stale.set(c.hashHex, null);
      for (const e of this.mempool.removeMany(c.entryIds)) this.pending.mempool.set(e.idHex, null);
      this.pending.events.push({ type: 'block-connected', node: c });
      for (const cp of this.carried.get(c.hashHex) ?? []) this.finalize(cp);
    }
    // Back into the mempool, lowest block first so entries keep their original order.
    for (const e of disconnected.reverse().flatMap((b) => b.entries)) {
      const r = this.mempool.add(e, now);
      if (r.status !== 'added') continue;
      for (const ev of r.evicted) this.pending.mempool.set(ev.idHex, null);
      this.recordAdmission(e);
    }
    if (
      (this.roster.enabled && this.roster.at(oldTip) !== this.roster.at(node)) ||
      this.models.at(oldTip) !== this.models.at(node)
    )
      this.dropUnpermitted(now);
    if (plan.disconnect.length === 0) return { status: 'connected', hashHex };
    this.pending.events.push({
      type: 'reorg',
      fork: plan.fork,
      oldTip,
      newTip: node,
      depth: plan.disconnect.length,
    });
    return { status: 'reorg', hashHex, depth: plan.disconnect.length };
  }

  /**
   * Records an admission at the end of the pending map: a Map keeps a re-set key in its first
   * place, and the store numbers entries in map order, so a removed-then-readmitted entry
   * would otherwise come back ahead of entries that arrived in between.
   */
  private recordAdmission(entry: SealedEntry): void {
    this.pending.mempool.delete(entry.idHex);
    this.pending.mempool.set(entry.idHex, entry);
  }

  /**
   * After the tip's roster changed (a revocation, an expiry-bearing change, a reorg) or its model
   * head did: entries whose authors lost the permission, and model entries that no longer extend
   * the head, leave the mempool, so they are neither mined nor offered to peers. Rare (admins
   * change the roster, a round ends every few blocks at most), so a scan of the pool is fine.
   */
  private dropUnpermitted(now: number): void {
    const tip = this.tree.tip;
    const out = this.mempool
      .all()
      .filter((e) => this.roster.entryProblem(e, tip, now) ?? this.models.entryProblem(e, tip));
    for (const e of this.mempool.removeMany(out.map((x) => x.idHex))) this.pending.mempool.set(e.idHex, null);
  }

  /** Remembers the checkpoints a known block carries, to finalize them when it joins the main chain. */
  private recordCarried(hashHex: Hex, entries: readonly SealedEntry[]): void {
    const carried = checkpointsIn(entries);
    if (!carried.length) return;
    if (this.carried.size >= 1024) this.carried.delete(this.carried.keys().next().value!);
    this.carried.set(hashHex, carried);
  }

  private finalize(cp: Checkpoint): void {
    if (laterCheckpoint(this.finalCheckpoint, cp) === this.finalCheckpoint) return;
    this.finalCheckpoint = cp;
    this.pending.finalized = cp;
    this.pending.events.push({ type: 'finalized', checkpoint: cp });
  }

  private markStale(node: BlockNode, reason: StaleReason, reorgDepth?: number): void {
    this.pending.stale.set(node.hashHex, reason);
    this.pending.events.push({ type: 'block-stale', node, reason, ...(reorgDepth ? { reorgDepth } : {}) });
  }

  /**
   * Rejects a block whose header fails against its known parent: what its hash commits to is
   * wrong, so orphans waiting on it are invalid too (unless it failed only for now).
   */
  private async rejectWithOrphans(hashHex: Hex, err: unknown, block: SealedBlock): Promise<ProcessResult> {
    const r = this.reject(hashHex, err, block);
    if (r.status === 'invalid' && !r.error.isTransient) await this.connectOrphansOf(hashHex, false);
    return r;
  }

  private reject(hashHex: Hex, err: unknown, block?: SealedBlock): ProcessResult {
    if (!(err instanceof BlockValidationError)) throw err;
    if (err.isTransient && block) {
      if (this.transient.size >= this.transientCapacity)
        this.transient.delete(this.transient.keys().next().value!);
      this.transient.set(hashHex, { error: err, retryAt: retryAfter(block, this.config) });
    }
    // Transient errors may pass later; body errors condemn this copy, not the block hash.
    if (!err.isTransient && !err.isBodyError) {
      if (this.invalid.size >= 10_000) this.invalid.delete(this.invalid.keys().next().value!);
      this.invalid.set(hashHex, err);
    }
    this.pending.events.push({ type: 'block-invalid', hashHex, error: err });
    return { status: 'invalid', hashHex, error: err };
  }

  private remember(block: SealedBlock): void {
    if (this.recent.size >= this.recentCapacity) this.recent.delete(this.recent.keys().next().value!);
    this.recent.set(block.hashHex, block.encoded);
  }
}
