import { FairShareBudget, type ShareRefusal } from '../mempool/fair-share.ts';
import { RateLimiterGRCA, type RateQuota } from './rate-limiter.ts';

/**
 * What one peer may take from a node's block serving per interval: blocks (store reads) and
 * bytes (upload). Lodestar serves 1,024 blocks per 10 s per peer for ~100 KB beacon blocks; a
 * Cairn block is a few KB and a syncing node asks several peers for 10,000 blocks at once
 * (bench:p2p: ~3,400 from each of 3 peers within ~3 s), so the block quota is larger and the
 * byte quota is what bounds the upload: 64 MiB per 10 s is ~50 Mbit/s per peer.
 *
 * Beside it, what all peers take together (`total`, Lodestar's total quota next to its per-peer
 * one), shared fairly (FairShareBudget: a peer over its share leaves the others theirs). Without
 * it a stranger's free identities each had a peer's budget (attack review #11, finding 5: 8 ids
 * took 11.1 MB/s, 2.2× one, bounded only by the attacker's own CPU; the budget allowed ~54 MB/s).
 * The byte total is below one peer's sustained rate (a lone syncing peer may take the whole
 * upload), with a short burst (GCRA's burst is the whole quota), since ids are free.
 */
export interface ServeBudgetOptions {
  readonly blocks: RateQuota;
  readonly bytes: RateQuota;
  /** What all peers together may take, shared fairly among those taking. */
  readonly total?: { readonly blocks: RateQuota; readonly bytes: RateQuota };
  readonly now?: () => number;
}

export const DEFAULT_SERVE_BUDGET: ServeBudgetOptions = {
  blocks: { limit: 5_000, periodMs: 10_000 },
  bytes: { limit: 64 * 1024 * 1024, periodMs: 10_000 },
  total: {
    // Store reads: two syncing peers at their full block quota.
    blocks: { limit: 10_000, periodMs: 10_000 },
    // The upload: 5 MiB/s (~44 Mbit/s) for all peers together. Its burst, 18 MiB, lets a lone
    // peer take a full answer (8 MiB, MAX_BLOCK_RESPONSE_BYTES) beside the half a newcomer is
    // owed; a 64 MiB burst let 8 ids take 10.3 MB/s over 15 s against 5 for one.
    bytes: { limit: 18 * 1024 * 1024, periodMs: 3_600 },
  },
};

/**
 * Why a take was refused: `peer` (its own budget is spent: it asked for too much), `share` (it
 * is over its fair share of the node-wide budget while others take too), `node` (the node-wide
 * budget is spent: no one's fault, so no penalty).
 */
export type ServeRefusal = 'peer' | 'share' | 'node';

export class ServeBudget {
  private readonly blocks: RateLimiterGRCA;
  private readonly bytes: RateLimiterGRCA;
  private readonly totalBlocks: FairShareBudget | undefined;
  private readonly totalBytes: FairShareBudget | undefined;

  constructor(opts: ServeBudgetOptions = DEFAULT_SERVE_BUDGET) {
    this.blocks = new RateLimiterGRCA(opts.blocks, opts.now);
    this.bytes = new RateLimiterGRCA(opts.bytes, opts.now);
    if (opts.total) {
      const now = opts.now ?? (() => performance.now());
      this.totalBlocks = new FairShareBudget(opts.total.blocks, now);
      this.totalBytes = new FairShareBudget(opts.total.bytes, now);
    }
  }

  /** Takes a whole request's blocks up front (all or nothing, as Lodestar does). */
  takeBlocks(peer: string, n: number): boolean {
    return this.refuseBlocks(peer, n) === undefined;
  }

  /** Takes one chunk's bytes as it is about to be written. */
  takeBytes(peer: string, n: number): boolean {
    return this.refuseBytes(peer, n) === undefined;
  }

  /** As takeBlocks, saying why it refused (undefined: taken). */
  refuseBlocks(peer: string, n: number): ServeRefusal | undefined {
    if (n <= 0) return undefined;
    if (!this.blocks.allows(peer, n)) return 'peer';
    return fromShare(this.totalBlocks?.take(peer, n));
  }

  /** As takeBytes, saying why it refused (undefined: taken). */
  refuseBytes(peer: string, n: number): ServeRefusal | undefined {
    if (n <= 0) return undefined;
    if (!this.bytes.allows(peer, n)) return 'peer';
    return fromShare(this.totalBytes?.take(peer, n));
  }

  available(peer: string): { blocks: number; bytes: number } {
    return { blocks: this.blocks.available(peer), bytes: this.bytes.available(peer) };
  }
}

const fromShare = (r: ShareRefusal | undefined): ServeRefusal | undefined =>
  r === undefined ? undefined : r === 'share' ? 'share' : 'node';
