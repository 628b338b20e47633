/**
 * Headers-first pre-sync of a fork (after Bitcoin Core's headerssync.cpp): before range sync
 * downloads a single block of a chain that forks from ours further down than the side-chain
 * margin, the target's headers from the fork point up must prove, under every header rule,
 * that the fork carries at least the work a stored side chain needs (`Chain.sideChainWorkFloor`).
 * Until then nothing of the fork is stored: a fork at genesis with thousands of
 * minimum-difficulty blocks costs a few hundred kilobytes of headers read and dropped.
 *
 * Each header must link to the one before (height and previous hash), carry a target within
 * the network's bounds and meet it, follow the retarget rule exactly (the context of the
 * headers before it is at hand), and be later than the median of its predecessors and not
 * ahead of our clock. The state kept is constant apart from anchors: the hash of every
 * `anchorEvery`-th header (and the last one), so the block download can check that the blocks
 * it gets are the chain whose headers proved the work (a hash commits to every ancestor).
 * Bitcoin keeps a salted bit per header for the same purpose; a hash per batch is simpler and
 * still small (32 bytes per 128 blocks).
 *
 * How many headers it reads is bounded three ways: by the height the target claimed, by the
 * number of headers the threshold could need if every one had the least work the network
 * allows, and by a hard cap; how long it takes, by the progress floor (a peer that trickles its
 * answers fails it as `too-slow`). Pure: no I/O, no timers; the runner is `presyncHeaders`.
 *
 *   Presyncing ──accept (threshold reached)──► Proven
 *        │
 *        └──accept (a bad header, a short or unlinked answer, the claim or the cap reached,
 *                   behind the progress floor)──► Failed
 */
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { PeerId } from '@libp2p/interface';
import { HEADER_BYTES } from '../chain/block-codec.ts';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { NetworkConfig } from '../chain/network-config.ts';
import { workForTarget } from '../chain/pow.ts';
import {
  BlockValidationError,
  type ParentContext,
  type SealedHeader,
  validateBlockContext,
  validateHeader,
} from '../chain/validation.ts';
import { SYNC_DEFAULTS } from '../options.ts';
import { MAX_HEADERS_PER_REQUEST } from '../p2p/messages.ts';
import { ProgressFloor, type ProgressFloorOptions } from './progress-floor.ts';

/** Headers read at most for one fork, whatever else allows: 64 MB of answers, seconds of hashing. */
export const MAX_PRESYNC_HEADERS = SYNC_DEFAULTS.maxPresyncHeaders;

export type PresyncStatus = 'Presyncing' | 'Proven' | 'Failed';

/**
 * Why a pre-sync failed. `bad-header`: a header broke a rule (its code says which);
 * `unlinked`: an answer did not continue the headers before it; `short`: an answer ended below
 * the height the target claimed; `work-unproven`: the headers reached the claimed head with
 * less work than needed; `too-long`: the hard cap was reached first; `unserved`: a request
 * failed (an error or a timeout); `too-slow`: the answers fell behind the progress floor.
 */
export type PresyncErrorCode =
  | 'bad-header'
  | 'unlinked'
  | 'short'
  | 'work-unproven'
  | 'too-long'
  | 'unserved'
  | 'too-slow';

export interface PresyncFailure {
  readonly code: PresyncErrorCode;
  readonly reason: string;
  /** For `bad-header`: the rule it broke. */
  readonly error?: BlockValidationError;
}

/** The fork point: a block of our main chain, with what validating its children needs. */
export interface PresyncFork extends ParentContext {
  readonly chainWork: bigint;
}

export interface PresyncOptions {
  readonly config: NetworkConfig;
  readonly chainId: Uint8Array;
  readonly fork: PresyncFork;
  /** Work the fork's headers must reach (cumulative, from genesis). */
  readonly threshold: bigint;
  /** The target's claimed head: no header is asked for above it. */
  readonly claimedHeight: number;
  /** Anchors are kept at fork height + k × this (the block download's batch ends). */
  readonly anchorEvery: number;
  readonly maxHeaders?: number;
  readonly headersPerRequest?: number;
  /** The chain's clock, for header timestamps. */
  readonly now: () => number;
  /** The pace the answers must keep (SYNC_DEFAULTS.progress), and the clock it is judged by. */
  readonly progress?: ProgressFloorOptions;
  readonly clock?: () => number;
}

export class HeaderPresync {
  private s: PresyncStatus = 'Presyncing';
  private fail_: PresyncFailure | undefined;
  private readonly o: PresyncOptions;
  private readonly perRequest: number;
  /** The highest height this pre-sync reads (the three bounds). */
  readonly maxHeight: number;
  /** Whether `maxHeight` is the hard cap's (not the claim's or the threshold's). */
  private readonly capped: boolean;
  private last: { hash: Uint8Array; hashHex: Hex; height: number; target: bigint };
  private work: bigint;
  /** Timestamps of the last headers read, enough for the median and a retarget window. */
  private readonly recentTs: number[] = [];
  private readonly keepTs: number;
  private readonly anchorMap = new Map<number, Uint8Array>();
  private readonly floor: ProgressFloor | undefined;
  /** Headers accepted so far. */
  headers = 0;

  constructor(opts: PresyncOptions) {
    this.o = opts;
    this.floor = opts.progress
      ? new ProgressFloor(opts.progress, opts.clock ?? (() => performance.now()))
      : undefined;
    this.perRequest = Math.max(
      1,
      Math.min(opts.headersPerRequest ?? MAX_HEADERS_PER_REQUEST, MAX_HEADERS_PER_REQUEST),
    );
    const f = opts.fork;
    this.last = { hash: f.hash, hashHex: toHex(f.hash), height: f.height, target: f.target };
    this.work = f.chainWork;
    this.keepTs = Math.max(opts.config.medianTimeSpan, opts.config.retargetInterval + 1);
    // Every header carries at least the work of the easiest target: this many reach the threshold.
    const minWork = workForTarget(opts.config.maxTarget);
    const needed =
      opts.threshold > f.chainWork ? (opts.threshold - f.chainWork + minWork - 1n) / minWork : 0n;
    const cap = opts.maxHeaders ?? MAX_PRESYNC_HEADERS;
    const byNeed = needed > BigInt(cap) ? Number.POSITIVE_INFINITY : Number(needed);
    const byClaim = opts.claimedHeight - f.height;
    this.capped = cap < Math.min(byNeed, byClaim);
    this.maxHeight = f.height + Math.max(0, Math.min(cap, byNeed, byClaim));
    if (this.work >= opts.threshold) this.s = 'Proven';
    else if (this.maxHeight <= f.height)
      this.failWith('work-unproven', 'the claimed head is at or below the fork point');
  }

  get status(): PresyncStatus {
    return this.s;
  }

  get failure(): PresyncFailure | undefined {
    return this.fail_;
  }

  /** Cumulative work of the headers read so far (the fork point's to begin with). */
  get provenWork(): bigint {
    return this.work;
  }

  /** Height of the last header read. */
  get height(): number {
    return this.last.height;
  }

  /** Hashes the block download must find at these heights (batch ends and the last header). */
  get anchors(): ReadonlyMap<number, Uint8Array> {
    return this.anchorMap;
  }

  /** The next range to ask for, while pre-syncing. */
  nextRequest(): { startHeight: number; count: number } | undefined {
    if (this.s !== 'Presyncing') return undefined;
    const startHeight = this.last.height + 1;
    return { startHeight, count: Math.min(this.perRequest, this.maxHeight - this.last.height) };
  }

  /** A request for the next range failed: the pre-sync ends (the transport penalised what it saw). */
  unserved(reason: string): PresyncStatus {
    if (this.s === 'Presyncing') this.failWith('unserved', reason);
    return this.s;
  }

  /** Checks the answer to `nextRequest()`, header by header; returns the new status. */
  accept(headers: readonly SealedHeader[]): PresyncStatus {
    const q = this.nextRequest();
    if (!q) return this.s;
    if (headers.length > q.count)
      return this.failWith('unlinked', `${headers.length} headers for ${q.count} asked`);
    for (const h of headers) {
      const problem = this.check(h);
      if (problem) return this.failWith(problem.code, problem.reason, problem.error);
      this.take(h);
      if (this.work >= this.o.threshold) {
        this.anchorMap.set(h.header.height, h.hash.slice());
        this.s = 'Proven';
        return this.s;
      }
    }
    if (headers.length < q.count)
      return this.failWith(
        'short',
        `${headers.length} headers for ${q.startHeight}+${q.count}, below its claimed head ${this.o.claimedHeight}`,
      );
    // Headers are fixed-size: their count is the bytes the peer sent.
    this.floor?.add(headers.length * HEADER_BYTES);
    if (this.floor?.behind()) return this.failWith('too-slow', `headers: ${this.floor.describe()}`);
    if (this.last.height >= this.maxHeight) {
      if (this.capped)
        return this.failWith('too-long', `${this.headers} headers without reaching the work needed`);
      return this.failWith(
        'work-unproven',
        `its headers up to ${this.last.height} carry work ${this.work}, short of ${this.o.threshold}`,
      );
    }
    return this.s;
  }

  private check(h: SealedHeader): PresyncFailure | undefined {
    const { config, chainId } = this.o;
    const parent = this.parentContext();
    try {
      // Linkage first (a header of another chain is a lie, not a bad header), then the cheap
      // header rules with the target bounds before the proof of work, then the context.
      if (h.header.height !== parent.height + 1 || toHex(h.header.prevHash) !== this.last.hashHex)
        return {
          code: 'unlinked',
          reason: `header at ${h.header.height} does not continue the headers up to ${parent.height}`,
        };
      validateHeader(h, config, chainId);
      validateBlockContext(h, parent, config, this.o.now());
    } catch (err) {
      if (!(err instanceof BlockValidationError)) throw err;
      return { code: 'bad-header', reason: `header ${h.header.height}: ${err.message}`, error: err };
    }
    return undefined;
  }

  private parentContext(): ParentContext {
    const fork = this.o.fork;
    const last = this.last;
    const firstRecent = last.height - this.recentTs.length + 1;
    return {
      hash: last.hash,
      height: last.height,
      target: last.target,
      timestampAt: (height) => {
        if (height <= fork.height) return fork.timestampAt(height);
        const ts = this.recentTs[height - firstRecent];
        if (ts === undefined) throw new Error(`pre-sync keeps no timestamp at ${height}`);
        return ts;
      },
    };
  }

  private take(h: SealedHeader): void {
    const height = h.header.height;
    this.last = { hash: h.hash.slice(), hashHex: h.hashHex, height, target: h.header.target };
    this.work += workForTarget(h.header.target);
    this.headers++;
    this.recentTs.push(h.header.timestamp);
    if (this.recentTs.length > this.keepTs) this.recentTs.shift();
    if ((height - this.o.fork.height) % this.o.anchorEvery === 0) this.anchorMap.set(height, this.last.hash);
  }

  private failWith(code: PresyncErrorCode, reason: string, error?: BlockValidationError): PresyncStatus {
    this.s = 'Failed';
    this.fail_ = { code, reason, ...(error ? { error } : {}) };
    this.anchorMap.clear();
    return this.s;
  }
}

/** Runs a pre-sync against one peer until it is proven or fails, yielding between answers. */
export async function presyncHeaders(
  p: HeaderPresync,
  peer: PeerId,
  requestHeaders: (peer: PeerId, startHeight: number, count: number) => Promise<SealedHeader[]>,
): Promise<PresyncStatus> {
  for (let q = p.nextRequest(); q; q = p.nextRequest()) {
    let headers: SealedHeader[];
    try {
      headers = await requestHeaders(peer, q.startHeight, q.count);
    } catch (err) {
      return p.unserved(`headers ${q.startHeight}+${q.count}: ${(err as Error).message}`);
    }
    p.accept(headers);
    // Between answers the node answers its peers and its HTTP API.
    await yieldToLoop();
  }
  return p.status;
}
