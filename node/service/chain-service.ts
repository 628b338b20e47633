import { EventEmitter } from 'node:events';
import type { BlockNode } from '../chain/block-tree.ts';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { Chain, ChainEvent, ProcessResult } from '../chain/chain.ts';
import type { CachedVerifier } from '../chain/signature-cache.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import { validateHeader } from '../chain/validation.ts';
import type { VerifyPool } from '../chain/verify-pool.ts';
import type { Logger } from '../log.ts';
import { type AddResult, type EntrySource, SOURCE } from '../mempool/mempool.ts';
import type { NodeMetrics } from '../metrics.ts';
import type { NodeStore } from '../store/node-store.ts';

export interface ChainServiceEvents {
  /** The selected tip changed (extension or reorg). */
  head: [tip: BlockNode];
  events: [events: readonly ChainEvent[]];
  /** A commit failed: the chain in memory is ahead of the store, and nothing is accepted any more. */
  'storage-failed': [failure: StorageFailure];
}

/** Why the store stopped taking commits, and the head it last committed. */
export interface StorageFailure {
  readonly reason: string;
  readonly at: number;
  readonly committedHeight: number;
  readonly committedHash: Hex;
}

/**
 * Every operation after a failed commit is refused with this error. The update that failed is
 * gone from the chain's change log, so committing anything after it would store blocks whose
 * parents were never written (a restart then fails with "parent … is not in the tree").
 */
export class StorageFailedError extends Error {
  readonly code = 'storage-failed';
  readonly failure: StorageFailure;
  constructor(failure: StorageFailure) {
    super(`the store failed to commit (${failure.reason}); the node accepts nothing until it restarts`);
    this.failure = failure;
    this.name = 'StorageFailedError';
  }
}

/**
 * The only way blocks and entries enter the node: processes them on the chain, commits the
 * resulting update to the store in one transaction, then announces the changes. Operations
 * run one at a time, so the store always holds a prefix of what the chain decided.
 */
/** Signatures below which the worker round trip costs more than checking them here. */
const POOL_MIN_SIGNATURES = 8;

/** Signatures a batch carries: each block's miner's, and each entry's. */
function signatures(blocks: readonly SealedBlock[]): number {
  let n = 0;
  for (const b of blocks) n += 1 + b.entries.length;
  return n;
}

export class ChainService extends EventEmitter<ChainServiceEvents> {
  private queue: Promise<unknown> = Promise.resolve();
  private committed: { height: number; hashHex: Hex };
  /** Set once a commit fails; from then on every operation is refused. */
  failure: StorageFailure | undefined;

  readonly chain: Chain;
  readonly store: NodeStore;
  private readonly verifier: CachedVerifier;
  private readonly pool: VerifyPool | undefined;
  private readonly metrics: NodeMetrics;
  private readonly log: Logger;
  constructor(
    chain: Chain,
    store: NodeStore,
    verifier: CachedVerifier,
    pool: VerifyPool | undefined,
    metrics: NodeMetrics,
    log: Logger,
  ) {
    super();
    this.chain = chain;
    this.store = store;
    this.verifier = verifier;
    this.pool = pool;
    this.metrics = metrics;
    this.log = log;
    this.committed = { height: chain.tip.height, hashHex: chain.tip.hashHex };
    metrics.finalizedHeight.set(chain.finalized?.height ?? 0);
  }

  /** The head the store holds: the chain's tip unless a commit failed. */
  get committedHead(): { readonly height: number; readonly hashHex: Hex } {
    return this.committed;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = () => (this.failure ? Promise.reject(new StorageFailedError(this.failure)) : fn());
    const run = this.queue.then(guarded, guarded);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Checks a batch's signatures on the worker pool ahead of its import (sync pipelining). */
  async preverify(blocks: readonly SealedBlock[]): Promise<void> {
    const worth = this.worthVerifying(blocks);
    if (worth.length) await this.pool?.verifyBlocks(worth, this.verifier);
  }

  /**
   * The blocks of a batch whose signatures are worth checking: work is never free, so the
   * header rules (chain id, target bounds, proof of work) and the size limits come first, and
   * the batch is cut at the first block that fails them (import rejects it and everything
   * after it). Blocks already checked (preverified) are not checked again.
   */
  private worthVerifying(blocks: readonly SealedBlock[]): SealedBlock[] {
    const { config, chainId } = this.chain;
    const out: SealedBlock[] = [];
    for (const b of blocks) {
      try {
        validateHeader(b, config, chainId);
      } catch {
        break;
      }
      if (b.entries.length > config.maxEntriesPerBlock || b.encoded.length > config.maxBlockBytes) break;
      if (!this.verifier.hasCheckedBlock(b)) out.push(b);
    }
    return out;
  }

  submitBlocks(blocks: readonly SealedBlock[], source: string, from?: string): Promise<ProcessResult[]> {
    return this.exclusive(async () => {
      // Signatures are checked on worker threads first when there are enough to pay for the
      // round trip: a sync batch, or one gossiped block with many entries (attack review #11:
      // a 1,000-entry block cost 263 ms of main thread). Not orphans: theirs wait for the parent.
      if (this.pool && signatures(blocks) >= POOL_MIN_SIGNATURES) {
        const worth = this.worthVerifying(blocks).filter(
          (b) => blocks.length > 1 || this.chain.tree.get(toHex(b.header.prevHash)) !== undefined,
        );
        if (worth.length) await this.pool.verifyBlocks(worth, this.verifier).catch(() => {});
      }
      const before = this.chain.tip;
      const results: ProcessResult[] = [];
      // The only entries block processing adds are those of reorged-out blocks: marked as
      // returned, so that they are never pushed out and are held when they do not fit.
      const restore = this.chain.mempool.useSource(SOURCE.returned);
      try {
        for (const b of blocks) {
          // Gossip and orphan ancestors arrive unasked: they must pass the side-chain work margin.
          const requested = source !== 'gossip' && source !== 'ancestor';
          const r = await this.chain.processBlock(b, from, { requested });
          results.push(r);
          this.metrics.blocksProcessed.inc({ outcome: r.status, source });
          if (r.status === 'invalid') {
            this.metrics.blockErrors.inc({ code: r.error.code });
            if (r.error.code === 'below-checkpoint') {
              // A heavier or older chain that rewrites final history: the network has split.
              this.metrics.checkpointRefusals.inc();
              this.metrics.splits.inc();
              this.log.warn(
                { hash: r.hashHex, from, err: r.error.message },
                'split: refused a chain that forks below the checkpoint',
              );
            }
          }
          if (r.status === 'ignored') this.metrics.blocksIgnored.inc({ reason: r.reason });
        }
      } finally {
        restore();
      }
      await this.commit(before);
      return results;
    });
  }

  submitEntry(entry: SealedEntry): Promise<AddResult> {
    return this.exclusive(async () => {
      const r = this.chain.addEntry(entry);
      await this.commit(this.chain.tip);
      return r;
    });
  }

  /** Drops the orphans a peer sent (it did not serve the ancestor they wait for). */
  dropOrphansFrom(peer: string): Promise<number> {
    return this.exclusive(async () => {
      const n = this.chain.dropOrphansFrom(peer).length;
      await this.commit(this.chain.tip);
      return n;
    });
  }

  /**
   * Admits many entries in one store transaction (one fsync for the batch, not one each); each
   * is attributed to its source for the mempool's quotas. Results are in order, and only
   * returned once the batch is on disk.
   */
  async submitEntries(items: readonly { entry: SealedEntry; source: EntrySource }[]): Promise<AddResult[]> {
    await this.preverifyEntries(items);
    return this.exclusive(async () => {
      const results = items.map(({ entry, source }) =>
        this.chain.mempool.withSource(source, () => this.chain.addEntry(entry)),
      );
      await this.commit(this.chain.tip);
      return results;
    });
  }

  /**
   * Checks on the worker pool the signatures of the entries that pass the cheap checks
   * (duplicates, quotas: a flood beyond them costs no verification), before taking the chain's
   * turn, so neither the event loop nor block processing waits for them. A dead pool is not
   * fatal: admission then checks them on the main thread.
   */
  private async preverifyEntries(
    items: readonly { entry: SealedEntry; source: EntrySource }[],
  ): Promise<void> {
    if (!this.pool) return;
    const pool = this.chain.mempool;
    const worth: SealedEntry[] = [];
    for (const { entry, source } of items)
      if (!this.verifier.hasCheckedHolder(entry) && !pool.precheck(entry, source)) worth.push(entry);
    if (worth.length) await this.pool.verifyEntries(worth, this.verifier).catch(() => {});
  }

  /**
   * Retries entries that a reorg returned and that did not fit, as far as there is room now
   * (those a block has included meanwhile leave the hold as mined). Returns the entries
   * readmitted, to gossip again.
   */
  readmitHeld(): Promise<SealedEntry[]> {
    return this.exclusive(async () => {
      const pool = this.chain.mempool;
      const room = pool.free();
      if (pool.returned.size > 0 && room.entries > 0) {
        const batch = pool.returned.take(room.entries, room.bytes);
        pool.withSource(SOURCE.retried, () => {
          for (const e of batch) this.chain.addEntry(e);
        });
        await this.commit(this.chain.tip);
      }
      return pool.takeAnnouncements();
    });
  }

  /** Drops expired orphans (called periodically). */
  maintenance(): Promise<void> {
    return this.exclusive(async () => {
      this.chain.expireOrphans();
      await this.commit(this.chain.tip);
    });
  }

  private async commit(before: BlockNode): Promise<void> {
    const update = this.chain.takeUpdate();
    try {
      await this.store.apply(update);
    } catch (err) {
      this.failed(err as Error);
    }
    this.committed = { height: this.chain.tip.height, hashHex: this.chain.tip.hashHex };
    this.metrics.height.set(this.chain.tip.height);
    this.metrics.mempoolSize.set(this.chain.mempool.size);
    this.metrics.orphans.set(this.chain.orphans.size);
    this.metrics.storedBlocks.set(this.store.storedBlocks + 1);
    if (update.events.length) this.emit('events', update.events);
    for (const e of update.events) {
      if (e.type === 'reorg') {
        // Counted from events: a reorg can also happen while waiting orphans connect.
        this.metrics.reorgs.inc();
        this.metrics.reorgDepth.observe(e.depth);
        this.log.info({ fork: e.fork.height, depth: e.depth, newTip: e.newTip.hashHex }, 'reorg');
      } else if (e.type === 'finalized') {
        this.metrics.finalizedHeight.set(e.checkpoint.height);
        this.log.info({ height: e.checkpoint.height, hash: e.checkpoint.hashHex }, 'checkpoint final');
      } else if (e.type === 'block-stale') {
        this.log.info(
          { hash: e.node.hashHex, height: e.node.height, reason: e.reason, reorgDepth: e.reorgDepth },
          'orphaned block',
        );
      }
    }
    if (this.chain.tip !== before) this.emit('head', this.chain.tip);
  }

  private failed(err: Error): never {
    const failure: StorageFailure = {
      reason: err.message,
      at: Date.now(),
      committedHeight: this.committed.height,
      committedHash: this.committed.hashHex,
    };
    this.failure = failure;
    this.metrics.storageFailed.set(1);
    this.log.error(
      { err: err.message, committedHeight: failure.committedHeight, committedHash: failure.committedHash },
      'store commit failed: the node stops mining, relaying and accepting blocks and entries',
    );
    this.emit('storage-failed', failure);
    throw new StorageFailedError(failure);
  }
}
