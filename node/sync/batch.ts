/**
 * One batch of range sync: a contiguous run of heights, downloaded from one peer, imported
 * once. After Lodestar's `sync/range/batch.ts`: every batch is in exactly one state, each
 * transition is a method that checks the state it starts from (a wrong one is a bug and
 * throws a typed error), and the batch remembers how often and from whom its download failed,
 * so the downloader can retry elsewhere and give up after a bounded number of attempts.
 *
 *   AwaitingDownload ──startDownloading──► Downloading ──downloadSuccess──► AwaitingProcessing
 *        ▲                                     │                               │      │
 *        └────────── downloadFailed ───────────┘ (attempts left)   discard ◄───┘      │
 *                                              │ (attempts used up)          startProcessing
 *                                              ▼                                      ▼
 *                                            Failed ◄──────── processingFailed ── Processing
 *                                                                                     │
 *                                                                       processingSuccess ► Done
 *
 * Pure: no I/O, no timers. Blocks are held only from a successful download until the batch is
 * processed (Done drops them), so memory follows the downloader's window, not the range.
 */
import type { SealedBlock } from '../chain/types.ts';

export type BatchStatus =
  | 'AwaitingDownload'
  | 'Downloading'
  | 'AwaitingProcessing'
  | 'Processing'
  | 'Done'
  | 'Failed';

/** Anything that names a peer (a libp2p PeerId in the node, strings in tests). */
export interface PeerLike {
  toString(): string;
}

export type BatchState<P extends PeerLike> =
  | { readonly status: 'AwaitingDownload' }
  | { readonly status: 'Downloading'; readonly peer: P }
  | { readonly status: 'AwaitingProcessing'; readonly peer: P; readonly blocks: SealedBlock[] }
  | { readonly status: 'Processing'; readonly peer: P; readonly blocks: SealedBlock[] }
  | { readonly status: 'Done'; readonly peer: P }
  | { readonly status: 'Failed'; readonly reason: string };

export type BatchErrorCode = 'WRONG_STATUS' | 'EMPTY_RANGE';

export class BatchError extends Error {
  readonly code: BatchErrorCode;
  constructor(code: BatchErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'BatchError';
  }
}

/** Download attempts per batch (one per peer that tried, at most) before the sync gives up. */
export const MAX_BATCH_DOWNLOAD_ATTEMPTS = 4;

export class Batch<P extends PeerLike = PeerLike> {
  private s: BatchState<P> = { status: 'AwaitingDownload' };
  private attempts = 0;
  private readonly failed: string[] = [];
  /** Starts checking signatures off the main thread once downloaded; awaited before import. */
  verified: Promise<void> | undefined;

  readonly index: number;
  readonly start: number;
  readonly count: number;
  readonly maxAttempts;
  constructor(
    /** Position in the sync, from 0. */
    index: number,
    start: number,
    count: number,
    maxAttempts = MAX_BATCH_DOWNLOAD_ATTEMPTS,
  ) {
    this.index = index;
    this.start = start;
    this.count = count;
    this.maxAttempts = maxAttempts;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || count < 1)
      throw new BatchError('EMPTY_RANGE', `batch ${index}: bad range ${start}+${count}`);
  }

  /** The last height of the batch. */
  get end(): number {
    return this.start + this.count - 1;
  }

  get status(): BatchStatus {
    return this.s.status;
  }

  get state(): BatchState<P> {
    return this.s;
  }

  /** Failed download attempts that counted against the limit. */
  get downloadAttempts(): number {
    return this.attempts;
  }

  /** Peers whose download of this batch failed, in order (a peer may appear more than once). */
  get failedPeers(): readonly string[] {
    return this.failed;
  }

  /** Whether `peer` already failed this batch (the downloader prefers someone else). */
  failedBy(peer: PeerLike): boolean {
    return this.failed.includes(peer.toString());
  }

  /** The peer downloading it, or that served its blocks. */
  get peer(): P | undefined {
    return 'peer' in this.s ? this.s.peer : undefined;
  }

  /** The downloaded blocks, while they wait for or undergo processing. */
  get blocks(): SealedBlock[] | undefined {
    return 'blocks' in this.s ? this.s.blocks : undefined;
  }

  /** Terminal: nothing more will happen to it. */
  get settled(): boolean {
    return this.s.status === 'Done' || this.s.status === 'Failed';
  }

  startDownloading(peer: P): void {
    this.expect('AwaitingDownload', 'startDownloading');
    this.s = { status: 'Downloading', peer };
  }

  downloadSuccess(blocks: SealedBlock[]): void {
    const s = this.expect('Downloading', 'downloadSuccess');
    this.s = { status: 'AwaitingProcessing', peer: s.peer, blocks };
  }

  /**
   * The download failed. `countAttempt: false` for failures that are no fault of the batch
   * (the peer follows another fork): the peer is still remembered, no attempt is used up.
   * Returns the new status: AwaitingDownload to retry, Failed when the attempts are used up.
   */
  downloadFailed(reason: string, { countAttempt = true } = {}): BatchStatus {
    const s = this.expect('Downloading', 'downloadFailed');
    this.failed.push(s.peer.toString());
    if (countAttempt) this.attempts++;
    this.s =
      this.attempts >= this.maxAttempts
        ? {
            status: 'Failed',
            reason: `range ${this.start}+${this.count} failed ${this.attempts} times: ${reason}`,
          }
        : { status: 'AwaitingDownload' };
    return this.s.status;
  }

  /**
   * Gives the batch up for good without another attempt (no peer left that could serve it, or
   * the sync ends). Allowed from every state but Done.
   */
  fail(reason: string): void {
    if (this.s.status === 'Done') throw this.wrong('fail');
    if (this.s.status !== 'Failed') this.s = { status: 'Failed', reason };
  }

  /**
   * Downloaded blocks that turn out unusable before processing (they continue another fork
   * than the one being imported): dropped, the server remembered, the batch downloads again.
   */
  discard(): void {
    const s = this.expect('AwaitingProcessing', 'discard');
    this.failed.push(s.peer.toString());
    this.s = { status: 'AwaitingDownload' };
  }

  startProcessing(): SealedBlock[] {
    const s = this.expect('AwaitingProcessing', 'startProcessing');
    this.s = { status: 'Processing', peer: s.peer, blocks: s.blocks };
    return s.blocks;
  }

  processingSuccess(): void {
    const s = this.expect('Processing', 'processingSuccess');
    this.s = { status: 'Done', peer: s.peer };
    this.verified = undefined;
  }

  /** Processing found an invalid block: range sync does not retry it (the server is blamed). */
  processingFailed(reason: string): void {
    this.expect('Processing', 'processingFailed');
    this.s = { status: 'Failed', reason };
    this.verified = undefined;
  }

  /** Why it failed, once Failed. */
  get failure(): string | undefined {
    return this.s.status === 'Failed' ? this.s.reason : undefined;
  }

  private expect<S extends BatchStatus>(status: S, op: string): Extract<BatchState<P>, { status: S }> {
    if (this.s.status !== status) throw this.wrong(op);
    return this.s as Extract<BatchState<P>, { status: S }>;
  }

  private wrong(op: string): BatchError {
    return new BatchError('WRONG_STATUS', `batch ${this.index}: ${op} in state ${this.s.status}`);
  }
}
