import { EventEmitter } from 'node:events';
import type { BlockNode } from '../chain/block-tree.ts';
import type { Chain, ChainEvent, ProcessResult } from '../chain/chain.ts';
import type { CachedVerifier } from '../chain/signature-cache.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import type { VerifyPool } from '../chain/verify-pool.ts';
import type { Logger } from '../log.ts';
import { type AddResult, type EntrySource, SOURCE } from '../mempool/mempool.ts';
import type { NodeMetrics } from '../metrics.ts';
import type { NodeStore } from '../store/node-store.ts';

export interface ChainServiceEvents {
  /** The selected tip changed (extension or reorg). */
  head: [tip: BlockNode];
  events: [events: readonly ChainEvent[]];
}

/**
 * The only way blocks and entries enter the node: processes them on the chain, commits the
 * resulting update to the store in one transaction, then announces the changes. Operations
 * run one at a time, so the store always holds a prefix of what the chain decided.
 */
export class ChainService extends EventEmitter<ChainServiceEvents> {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly chain: Chain,
    readonly store: NodeStore,
    private readonly verifier: CachedVerifier,
    private readonly pool: VerifyPool | undefined,
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
  ) {
    super();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Checks a batch's signatures on the worker pool ahead of its import (sync pipelining). */
  async preverify(blocks: readonly SealedBlock[]): Promise<void> {
    await this.pool?.verifyBlocks(blocks, this.verifier);
  }

  submitBlocks(blocks: readonly SealedBlock[], source: string, from?: string): Promise<ProcessResult[]> {
    return this.exclusive(async () => {
      // Batches (sync) have their signatures checked on worker threads first.
      if (this.pool && blocks.length >= 8)
        await this.pool.verifyBlocks(blocks, this.verifier).catch(() => {});
      const before = this.chain.tip;
      const results: ProcessResult[] = [];
      // The only entries block processing adds are those of reorged-out blocks: marked as
      // returned, so that they are never pushed out and are held when they do not fit.
      const restore = this.chain.mempool.useSource(SOURCE.returned);
      try {
        for (const b of blocks) {
          const r = await this.chain.processBlock(b, from);
          results.push(r);
          this.metrics.blocksProcessed.inc({ outcome: r.status, source });
          if (r.status === 'invalid') this.metrics.blockErrors.inc({ code: r.error.code });
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

  /**
   * Admits many entries in one store transaction (one fsync for the batch, not one each); each
   * is attributed to its source for the mempool's quotas. Results are in order, and only
   * returned once the batch is on disk.
   */
  submitEntries(items: readonly { entry: SealedEntry; source: EntrySource }[]): Promise<AddResult[]> {
    return this.exclusive(async () => {
      const results = items.map(({ entry, source }) =>
        this.chain.mempool.withSource(source, () => this.chain.addEntry(entry)),
      );
      await this.commit(this.chain.tip);
      return results;
    });
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
    await this.store.apply(update);
    this.metrics.height.set(this.chain.tip.height);
    this.metrics.mempoolSize.set(this.chain.mempool.size);
    this.metrics.orphans.set(this.chain.orphans.size);
    if (update.events.length) this.emit('events', update.events);
    for (const e of update.events) {
      if (e.type === 'reorg') {
        // Counted from events: a reorg can also happen while waiting orphans connect.
        this.metrics.reorgs.inc();
        this.log.info({ fork: e.fork.height, depth: e.depth, newTip: e.newTip.hashHex }, 'reorg');
      } else if (e.type === 'block-stale') {
        this.log.info({ hash: e.node.hashHex, height: e.node.height, reason: e.reason }, 'orphaned block');
      }
    }
    if (this.chain.tip !== before) this.emit('head', this.chain.tip);
  }
}
