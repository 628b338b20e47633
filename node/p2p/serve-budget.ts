import { RateLimiterGRCA, type RateQuota } from './rate-limiter.ts';

/**
 * What one peer may take from a node's block serving per interval: blocks (store reads) and
 * bytes (upload). Lodestar serves 1,024 blocks per 10 s per peer for ~100 KB beacon blocks; a
 * Cairn block is a few KB and a syncing node asks several peers for 10,000 blocks at once
 * (bench:p2p: ~3,400 from each of 3 peers within ~3 s), so the block quota is larger and the
 * byte quota is what bounds the upload: 64 MiB per 10 s is ~50 Mbit/s per peer.
 */
export interface ServeBudgetOptions {
  readonly blocks: RateQuota;
  readonly bytes: RateQuota;
  readonly now?: () => number;
}

export const DEFAULT_SERVE_BUDGET: ServeBudgetOptions = {
  blocks: { limit: 5_000, periodMs: 10_000 },
  bytes: { limit: 64 * 1024 * 1024, periodMs: 10_000 },
};

export class ServeBudget {
  private readonly blocks: RateLimiterGRCA;
  private readonly bytes: RateLimiterGRCA;

  constructor(opts: ServeBudgetOptions = DEFAULT_SERVE_BUDGET) {
    this.blocks = new RateLimiterGRCA(opts.blocks, opts.now);
    this.bytes = new RateLimiterGRCA(opts.bytes, opts.now);
  }

  /** Takes a whole request's blocks up front (all or nothing, as Lodestar does). */
  takeBlocks(peer: string, n: number): boolean {
    return n <= 0 || this.blocks.allows(peer, n);
  }

  /** Takes one chunk's bytes as it is about to be written. */
  takeBytes(peer: string, n: number): boolean {
    return n <= 0 || this.bytes.allows(peer, n);
  }

  available(peer: string): { blocks: number; bytes: number } {
    return { blocks: this.blocks.available(peer), bytes: this.bytes.available(peer) };
  }
}
