import type { Hex } from './bytes.ts';
import type { BlockHeader } from './types.ts';

/** A stored block's header and what the tree keeps about it, without its body. */
export interface StoredHeader {
  readonly hash: Uint8Array;
  readonly hashHex: Hex;
  readonly header: BlockHeader;
  readonly height: number;
  readonly chainWork: bigint;
  readonly entryIds: readonly Hex[];
  /** On the main chain as last committed. */
  readonly onMain: boolean;
}

/**
 * The headers of stored blocks, for what lies below the chain's in-memory window: old main-chain
 * headers (locators, range serving, deep fork points, retargeting across the window's floor) and
 * stored blocks that left memory. The node store reads them synchronously through its own
 * SQLite connection, so validation needs no await to look below the window.
 */
export interface HeaderStore {
  storedHeader(hashHex: Hex): StoredHeader | undefined;
  /** The committed main chain's header at `height` (none for genesis or past the head). */
  mainHeader(height: number): StoredHeader | undefined;
  /** The committed main chain's headers from `from` to `to` inclusive, lowest first. */
  mainHeaders(from: number, to: number): StoredHeader[];
}

/** How many recent headers the chain holds in memory, and how often it lets older ones go. */
export const CHAIN_WINDOW_DEFAULTS = {
  /**
   * Reorgs this deep are planned from memory alone (deeper ones load the headers they need from
   * the store): a sync batch's worth of blocks, the interval of the sync checkpoint votes.
   */
  reorgDepth: 512,
  /** Headers are dropped in steps of this many, so eviction costs nothing per block. */
  evictEvery: 64,
} as const;

/**
 * Main-chain headers the chain keeps below its tip: what the header rules look back on
 * (the retarget window and the median-time span) plus the reorg depth planned from memory.
 */
export function windowSize(
  config: { readonly retargetInterval: number; readonly medianTimeSpan: number },
  reorgDepth: number = CHAIN_WINDOW_DEFAULTS.reorgDepth,
): number {
  return Math.max(config.retargetInterval + 1, config.medianTimeSpan) + reorgDepth;
}

/** Cumulative work as stored: 48 bytes big-endian (work sums past 2^256 fit). */
export const WORK_BYTES = 48;
