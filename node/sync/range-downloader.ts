/**
 * The download half of range sync: keeps a bounded window of batches ahead of the import
 * (Lodestar's BATCH_BUFFER_SIZE idea), hands them to up to `parallelPeers` peers with
 * `requestsPerPeer` requests each, checks every answer for consistency, retries a failed batch
 * elsewhere and gives it up after a bounded number of attempts.
 *
 * Nothing is built from the target's claimed head beyond the window: a status claiming 2^32-1
 * blocks costs `bufferBatches` Batch objects, not 33 million. A target whose answers garble a
 * range, or fail to deliver one below its own claimed head, have disproved its status: it gets
 * no further batches in this sync and the importer is told why (`disproved`).
 *
 * Short answers. An honest server ends an answer early when the next block would take it over
 * the protocol's response byte bound (8 MiB) or when its main chain changes under it (serving
 * stops at a reorg), so a short answer is not a lie by itself. The rule:
 *   - a short answer (at least one block, consistent) is continued at once: the same peer is
 *     asked for the rest of the batch, from the next height, until the batch is complete;
 *   - an answer with no block at all for heights the peer claimed is a lie (a helper is only
 *     asked up to its head; the target claimed every height up to its own);
 *   - a continuation that does not link to the answer before it means the server's chain
 *     changed between its answers: the first time in a sync a peer does it, the batch just
 *     fails for it (retried elsewhere, no penalty); the second time it counts as a lie.
 * Every continuation must bring a block, so a batch of n blocks takes at most n answers; a
 * liar that trickles one block per answer is stopped by the progress floor (progress-floor.ts),
 * not by this rule, and one that cuts its answers and "reorgs" gets a single excuse per sync.
 *
 * Pace. Each batch download (with its continuations) must keep to the progress floor: a peer
 * that falls behind it is penalised (high tolerance) and given no more batches in this sync;
 * a batch it completed late is still used. A slow target is not asked again either (`stalled`):
 * its batches go to helpers, and without any the sync ends so another peer can be followed.
 *
 * Refetch. A batch that does not follow the chain being imported is downloaded again from the
 * target (`refetchFromTarget`), under the same floor: otherwise a target with a helper of its own
 * could have the helper serve a batch that does not link and then trickle the refetch (a 64-block
 * batch at one block per 9.9 s answer is ~634 s, repeatable per batch). A helper whose batch
 * ended on the hash the target named served exactly the chain the target named (a hash fixes its
 * ancestry), so it is never blamed: if the target's range links where the helper's did not, the
 * target named one block and serves another. Whether its range links or not, a target whose chain
 * changed between answers is excused once per peer and sync (the same excuse as for
 * continuations); otherwise, or a second time, it lied (mid-tolerance, its status disproved).
 */
import type { PeerId } from '@libp2p/interface';
import { bytesEqual } from '../chain/bytes.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { Logger } from '../log.ts';
import type { BlockRef, Status } from '../p2p/messages.ts';
import { MAX_HASHES_PER_REQUEST } from '../p2p/messages.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { Batch } from './batch.ts';
import { ProgressFloor, type ProgressFloorOptions } from './progress-floor.ts';

export interface SyncPeer {
  readonly peer: PeerId;
  readonly status: Status;
}

/** What the downloader needs from the network (a subset of RangeSyncDeps). */
export interface DownloaderDeps {
  requestRange(peer: PeerId, startHeight: number, count: number): Promise<SealedBlock[]>;
  requestHashesAt(peer: PeerId, heights: number[]): Promise<BlockRef[]>;
  preverify?(blocks: readonly SealedBlock[]): Promise<void>;
  penalise(peer: PeerId, action: PeerAction, reason: string): void;
  readonly log: Logger;
}

export interface DownloaderOptions {
  /** First and last height to download (last: the target's claimed head, never trusted further). */
  readonly first: number;
  readonly last: number;
  readonly batchSize: number;
  /** Batches that exist at once, counted from the next one to import. */
  readonly bufferBatches: number;
  /** Bytes of downloaded blocks held at once (beyond the next batch to import). */
  readonly maxBufferedBytes: number;
  readonly parallelPeers: number;
  readonly requestsPerPeer: number;
  /** Called for every Batch created (metrics, and tests that count them). */
  readonly onBatchCreated?: (b: Batch<PeerId>) => void;
  /**
   * Hashes a pre-sync read from the target's headers, by height (every batch end up to the
   * height it proved): a batch containing one must have that block there, from whoever serves it.
   */
  readonly anchors?: ReadonlyMap<number, Uint8Array>;
  /** The pace every batch download must keep (SYNC_DEFAULTS.progress in node/options.ts). */
  readonly progress: ProgressFloorOptions;
  /** The clock the pace is judged by (tests inject one). */
  readonly clock: () => number;
}

/** Why the target's status no longer counts: what its answers showed. */
export interface Disproof {
  readonly reason: string;
}

/**
 * A consistency problem of an answer for `count` blocks from `start`, or undefined: more
 * blocks than asked, a block at another height than its position, or one that does not link
 * to the block before it. A short answer is consistent (see the module comment).
 */
export function inconsistency(
  start: number,
  count: number,
  blocks: readonly SealedBlock[],
): string | undefined {
  if (blocks.length > count) return `${blocks.length} blocks for a range of ${count}`;
  for (let i = 0; i < blocks.length; i++) {
    const blk = blocks[i]!;
    if (blk.header.height !== start + i) return `block at position ${i} has height ${blk.header.height}`;
    if (i > 0 && !bytesEqual(blk.header.prevHash, blocks[i - 1]!.hash))
      return `block ${blk.header.height} does not link`;
  }
  return undefined;
}

/**
 * What went wrong downloading a batch: `garbage` (an inconsistent answer), `lie` (no block for
 * heights the peer claimed), `reorg` (a continuation that does not link to the answer before),
 * `slow` (behind the progress floor with the batch still incomplete).
 */
export type RangeFaultKind = 'garbage' | 'lie' | 'reorg' | 'slow';

/**
 * How a refetch from the target went: `linked` (the batch now holds the target's blocks and they
 * continue the chain), `slow` (behind the progress floor), `reorged` (its range does not continue
 * the chain, the first time in this sync: its chain changed), `lie` (anything else that failed).
 */
export type Refetch =
  | { readonly kind: 'linked' }
  | { readonly kind: 'slow' | 'reorged' | 'lie'; readonly reason: string };

export class RangeFault extends Error {
  override readonly name = 'RangeFault';
  readonly kind: RangeFaultKind;
  constructor(kind: RangeFaultKind, message: string) {
    super(message);
    this.kind = kind;
  }
}

/** How `blocks` (consistent for `b`) differ from the pre-synced hashes, or undefined. */
export function anchorMismatch(
  b: Batch<PeerId>,
  blocks: readonly SealedBlock[],
  anchors: ReadonlyMap<number, Uint8Array> | undefined,
): string | undefined {
  if (!anchors?.size) return undefined;
  for (let h = b.start; h <= b.end; h++) {
    const want = anchors.get(h);
    if (want && !bytesEqual(want, blocks[h - b.start]!.hash))
      return `block ${h} is not the one its headers showed`;
  }
  return undefined;
}

export class RangeDownloader {
  /** Batches in the window, by index. */
  private readonly window = new Map<number, Batch<PeerId>>();
  /** Index of the next batch to import: the window starts here. */
  private low = 0;
  /** Index of the next batch to create. */
  private nextIndex = 0;
  private readonly downloaders: SyncPeer[] = [];
  private readonly inflight = new Map<string, number>();
  private readonly requests = new Set<Promise<void>>();
  /** Peers given no more batches in this sync (failed one, or follow another fork). */
  private readonly failedPeers = new Set<string>();
  /** One range penalty per peer and sync: its other request in flight fails for the same fault. */
  private readonly penalisedForRanges = new Set<string>();
  /** Peers whose chain changed between two answers in this sync (excused once). */
  private readonly reorgedPeers = new Set<string>();
  /** Batches in the window a helper served that were checked against the target's hash at their end. */
  private readonly anchored = new Set<number>();
  private readonly anchorChunks = new Map<number, Promise<Map<number, Uint8Array>>>();
  private stopped = false;
  private bufferedBytes = 0;
  /** Bytes of each downloaded batch in the window, until it is released or discarded. */
  private readonly bytesOf = new Map<number, number>();
  private wakeWaiter: (() => void) | undefined;
  private readonly targetKey: string;
  /** Set once the target's answers showed its status false. */
  disproved: Disproof | undefined;
  /** Set once the target fell behind the progress floor: it is asked for nothing more. */
  stalled: Disproof | undefined;
  /** Peers penalised for their pace in this sync (once each). */
  private readonly slowPeers = new Set<string>();
  /** Most batches that existed at once (for tests and logs). */
  maxLive = 0;
  /** Batches created in all. */
  created = 0;
  readonly batchCount: number;

  private readonly target: SyncPeer;
  private readonly helpersNow: () => readonly SyncPeer[];
  private readonly deps: DownloaderDeps;
  private readonly o: DownloaderOptions;
  constructor(
    target: SyncPeer,
    helpersNow: () => readonly SyncPeer[],
    deps: DownloaderDeps,
    o: DownloaderOptions,
  ) {
    this.target = target;
    this.helpersNow = helpersNow;
    this.deps = deps;
    this.o = o;
    this.targetKey = target.peer.toString();
    this.batchCount = o.last < o.first ? 0 : Math.ceil((o.last - o.first + 1) / o.batchSize);
  }

  /** The heights of batch `i` (arithmetic: no batch object needed). */
  private rangeOf(i: number): { start: number; count: number } {
    const start = this.o.first + i * this.o.batchSize;
    return { start, count: Math.min(this.o.batchSize, this.o.last - start + 1) };
  }

  /**
   * Waits until batch `i` (the next to import) is downloaded or given up; returns it in state
   * AwaitingProcessing or Failed. Batches must be asked for in order.
   */
  async ready(i: number): Promise<Batch<PeerId>> {
    this.low = i;
    for (;;) {
      this.pump();
      const b = this.window.get(i);
      if (!b) throw new Error(`batch ${i} is not in the window`);
      if (b.status === 'AwaitingProcessing' || b.status === 'Failed') return b;
      // Woken by every finished request; the timer lets helpers whose statuses arrive later join.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        this.wakeWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Batch `i` is imported: its blocks go, the window slides on. */
  release(i: number): void {
    this.unbuffer(i);
    this.window.delete(i);
    this.anchored.delete(i);
    this.low = i + 1;
    this.pump();
  }

  /**
   * Downloads batch `b` again from the target itself, now (the importer found that its first
   * block does not follow `prevHash`, the end of the chain being imported). The same pace as any
   * batch download applies: a target that trickles the refetch is `slow` (penalised and stalled,
   * as in `fetch`). When the target's range links where a helper's batch anchored to the target's
   * hash did not, the target contradicted itself: asked again for that hash, it either names the
   * block it now serves (`reorged`, excused once per peer and sync) or it lied. When the target's
   * range does not link either, its chain changed under the sync (the same excuse) or it lied.
   */
  async refetchFromTarget(b: Batch<PeerId>, prevHash: Uint8Array): Promise<Refetch> {
    const helper = b.peer;
    const anchored = this.anchored.delete(b.index);
    this.unbuffer(b.index);
    b.discard();
    b.startDownloading(this.target.peer);
    const range = `range ${b.start}+${b.count}`;
    const floor = new ProgressFloor(this.o.progress, this.o.clock);
    let blocks: SealedBlock[];
    try {
      blocks = await this.download(b, this.target.peer, floor);
    } catch (err) {
      if (err instanceof RangeFault && err.kind === 'slow') {
        const reason = this.tooSlow(this.target, b, floor);
        b.downloadFailed(reason);
        return { kind: 'slow', reason };
      }
      const problem = err instanceof RangeFault ? err.message : 'no answer';
      return this.refetchFailed(b, `${range}: ${problem}`, err instanceof RangeFault && err.kind === 'reorg');
    }
    if (blocks.length < b.count) return this.refetchFailed(b, `${range}: stopped`, false);
    // Complete but late: used, as in `fetch`; the target is asked for nothing more.
    if (floor.behind()) this.tooSlow(this.target, b, floor);
    const swapped = anchorMismatch(b, blocks, this.o.anchors);
    if (swapped) return this.refetchFailed(b, `${range}: ${swapped}`, false);
    if (!bytesEqual(blocks[0]!.header.prevHash, prevHash))
      return this.refetchFailed(b, `${range}: does not continue the chain it claimed`, true);
    if (helper && anchored && !helper.equals(this.target.peer)) {
      // The helper's batch ended on the hash the target named, and a block's hash fixes its whole
      // ancestry: the helper served the target's named chain exactly, so it cannot be at fault.
      // The target's own range links here, so it ends elsewhere than it named: its answers
      // contradict each other (attack review #11, finding 3: the liar named the honest chain's
      // public hashes and the honest helper paid -5 at every joiner). Asked again, a target whose
      // chain really changed names the block it now serves (excused once per sync, as for
      // continuations); one that still names the other block lied.
      const now = await this.deps.requestHashesAt(this.target.peer, [b.end]).catch(() => []);
      const named = now.find((r) => r.height === b.end)?.hash;
      const changed = named !== undefined && bytesEqual(named, blocks.at(-1)!.hash);
      return this.refetchFailed(
        b,
        `${range}: named another block at ${b.end} than it serves${changed ? ' (its chain changed)' : ''}`,
        changed,
      );
    }
    b.downloadSuccess(blocks);
    this.buffer(b.index, blocks);
    return { kind: 'linked' };
  }

  /** The target's refetch failed (`b` is still Downloading): a changed chain is excused once. */
  private refetchFailed(b: Batch<PeerId>, reason: string, chainChanged: boolean): Refetch {
    b.downloadFailed(reason);
    if (chainChanged && !this.reorgedPeers.has(this.targetKey)) {
      this.reorgedPeers.add(this.targetKey);
      return { kind: 'reorged', reason };
    }
    if (!this.penalisedForRanges.has(this.targetKey)) {
      this.penalisedForRanges.add(this.targetKey);
      this.deps.penalise(this.target.peer, 'mid-tolerance', reason);
    }
    this.disproved ??= { reason };
    return { kind: 'lie', reason };
  }

  /** Stops handing out batches and waits for the requests in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await Promise.allSettled([...this.requests]);
    this.window.clear();
    this.anchored.clear();
    this.bytesOf.clear();
    this.bufferedBytes = 0;
  }

  private buffer(i: number, blocks: readonly SealedBlock[]): void {
    let n = 0;
    for (const b of blocks) n += b.encoded.length;
    this.bytesOf.set(i, n);
    this.bufferedBytes += n;
  }

  private unbuffer(i: number): void {
    this.bufferedBytes -= this.bytesOf.get(i) ?? 0;
    this.bytesOf.delete(i);
  }

  private wake(): void {
    const w = this.wakeWaiter;
    this.wakeWaiter = undefined;
    w?.();
  }

  /** Peers join as their statuses arrive: right after start-up the first status is often alone. */
  private recruit(): void {
    if (this.downloaders.length >= this.o.parallelPeers) return;
    const candidates = [this.target, ...this.helpersNow()].filter(
      (h) => h.status.headHeight >= this.o.first && !this.downloaders.some((d) => d.peer.equals(h.peer)),
    );
    for (const c of candidates) {
      if (this.downloaders.length >= this.o.parallelPeers) break;
      this.downloaders.push(c);
    }
  }

  /** Fills the window and starts every download a free peer can take. Synchronous and bounded. */
  private pump(): void {
    if (this.stopped) return;
    this.recruit();
    while (this.nextIndex < this.batchCount && this.nextIndex < this.low + this.o.bufferBatches) {
      const { start, count } = this.rangeOf(this.nextIndex);
      const b = new Batch<PeerId>(this.nextIndex++, start, count);
      this.window.set(b.index, b);
      this.created++;
      this.o.onBatchCreated?.(b);
    }
    this.maxLive = Math.max(this.maxLive, this.window.size);
    for (const b of [...this.window.values()].sort((x, y) => x.index - y.index)) {
      if (b.status !== 'AwaitingDownload') continue;
      // Memory first: beyond the next batch, nothing more is fetched while the buffer is full.
      if (b.index > this.low && this.bufferedBytes >= this.o.maxBufferedBytes) break;
      const dl = this.pickPeer(b);
      if (dl) {
        this.start(b, dl);
        continue;
      }
      if (this.requests.size > 0) continue;
      // No request left in flight and nobody free to take it: ask the target again (the batch's
      // attempts bound this), unless its own answers disproved its claim: then nobody can.
      if (!this.disproved && !this.stalled) {
        this.failedPeers.delete(this.targetKey);
        this.start(b, this.target);
        continue;
      }
      const why = this.disproved
        ? ` (the target's status was disproved: ${this.disproved.reason})`
        : this.stalled
          ? ` (the target was too slow: ${this.stalled.reason})`
          : '';
      b.fail(`range ${b.start}+${b.count}: no peer can serve it${why}`);
      this.wake();
    }
  }

  private canServe(p: SyncPeer, b: Batch<PeerId>): boolean {
    // Helpers are not asked beyond their heads; the target claimed every height of the range.
    return p.peer.toString() === this.targetKey || b.end <= p.status.headHeight;
  }

  private pickPeer(b: Batch<PeerId>): SyncPeer | undefined {
    let fallback: SyncPeer | undefined;
    for (const d of this.downloaders) {
      const key = d.peer.toString();
      if (this.failedPeers.has(key) || (this.inflight.get(key) ?? 0) >= this.o.requestsPerPeer) continue;
      if (!this.canServe(d, b)) continue;
      if (!b.failedBy(d.peer)) return d;
      fallback ??= d;
    }
    return fallback;
  }

  private start(b: Batch<PeerId>, dl: SyncPeer): void {
    const key = dl.peer.toString();
    b.startDownloading(dl.peer);
    this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    const req = this.fetch(b, dl).finally(() => {
      this.inflight.set(key, (this.inflight.get(key) ?? 1) - 1);
      this.requests.delete(req);
      this.pump();
      this.wake();
    });
    this.requests.add(req);
  }

  /**
   * Downloads batch `b` from `peer`, continuing short answers from the next height (the module
   * comment has the rule); throws a RangeFault for what the answers showed, or the transport's
   * error. Every answer brings at least one block, so this makes at most `b.count` requests.
   */
  private async download(b: Batch<PeerId>, peer: PeerId, floor?: ProgressFloor): Promise<SealedBlock[]> {
    const blocks: SealedBlock[] = [];
    while (blocks.length < b.count && !this.stopped) {
      // Not another request for a batch already behind its pace.
      if (floor?.behind()) throw new RangeFault('slow', floor.describe());
      const start = b.start + blocks.length;
      const count = b.count - blocks.length;
      const part = await this.deps.requestRange(peer, start, count);
      for (const blk of part) floor?.add(blk.encoded.length);
      const problem = inconsistency(start, count, part);
      if (problem) throw new RangeFault('garbage', problem);
      if (part.length === 0) throw new RangeFault('lie', `${blocks.length} blocks for a range of ${b.count}`);
      if (blocks.length && !bytesEqual(part[0]!.header.prevHash, blocks.at(-1)!.hash))
        throw new RangeFault(
          'reorg',
          `its answer from ${start} does not continue its answer before (its chain changed)`,
        );
      for (const blk of part) blocks.push(blk);
    }
    return blocks;
  }

  private async fetch(b: Batch<PeerId>, dl: SyncPeer): Promise<void> {
    const key = dl.peer.toString();
    const isTarget = key === this.targetKey;
    let otherFork = false;
    const floor = new ProgressFloor(this.o.progress, this.o.clock);
    try {
      let blocks: SealedBlock[];
      try {
        blocks = await this.download(b, dl.peer, floor);
      } catch (err) {
        if (!(err instanceof RangeFault) || this.stopped) throw err;
        if (err.kind === 'slow') {
          this.tooSlow(dl, b, floor);
          throw err;
        }
        // A chain that changed between two answers is excused once per peer and sync.
        if (err.kind === 'reorg' && !this.reorgedPeers.has(key)) {
          this.reorgedPeers.add(key);
          throw err;
        }
        const problem = err.message;
        // No block for a height the peer claimed is a lie; an inconsistent answer is garbage.
        if (!this.penalisedForRanges.has(key)) {
          this.penalisedForRanges.add(key);
          this.deps.penalise(dl.peer, 'mid-tolerance', `range ${b.start}+${b.count}: ${problem}`);
        }
        // The target claimed this height: its status is shown false, it gets no more batches.
        if (isTarget) this.disproved ??= { reason: `range ${b.start}+${b.count}: ${problem}` };
        throw err;
      }
      if (this.stopped) return;
      // Complete but late: the blocks are used, the peer gets nothing more.
      if (floor.behind()) this.tooSlow(dl, b, floor);
      const swapped = anchorMismatch(b, blocks, this.o.anchors);
      if (swapped && isTarget) {
        // Headers that proved the work, then other blocks: the target's claim is disproved.
        if (!this.penalisedForRanges.has(key)) {
          this.penalisedForRanges.add(key);
          this.deps.penalise(dl.peer, 'mid-tolerance', `range ${b.start}+${b.count}: ${swapped}`);
        }
        this.disproved ??= { reason: `range ${b.start}+${b.count}: ${swapped}` };
        throw new Error(swapped);
      }
      if (swapped) {
        // A helper on another fork than the headers proved: it just stops helping.
        otherFork = true;
        throw new Error(swapped);
      }
      // A batch that holds a pre-synced hash is anchored already; others ask the target.
      let anchored = !isTarget && this.o.anchors?.has(b.end) === true;
      if (!isTarget && !anchored) {
        const anchor = await this.targetHashAt(b);
        if (this.stopped) return;
        if (anchor && !bytesEqual(anchor, blocks.at(-1)!.hash)) {
          // Following another fork is no offence: the helper just stops helping.
          otherFork = true;
          throw new Error('range ends on another fork than the target');
        }
        anchored = anchor !== undefined;
      }
      // Served in the target's place: if it then does not link, the helper answers for it.
      if (anchored) this.anchored.add(b.index);
      b.downloadSuccess(blocks);
      this.buffer(b.index, blocks);
      b.verified = this.deps.preverify?.(blocks).catch(() => {});
    } catch (err) {
      if (this.stopped || b.status !== 'Downloading') return;
      this.deps.log.debug({ peer: key, start: b.start, err: (err as Error).message }, 'range request failed');
      this.failedPeers.add(key);
      b.downloadFailed((err as Error).message, { countAttempt: !otherFork });
    }
  }

  /** A peer behind the progress floor: penalised once, no more batches; a target is dropped. */
  private tooSlow(dl: SyncPeer, b: Batch<PeerId>, floor: ProgressFloor): string {
    const key = dl.peer.toString();
    const reason = `range ${b.start}+${b.count}: too slow (${floor.describe()})`;
    this.failedPeers.add(key);
    if (key === this.targetKey) this.stalled ??= { reason };
    if (this.slowPeers.has(key)) return reason;
    this.slowPeers.add(key);
    this.deps.penalise(dl.peer, 'high-tolerance', reason);
    return reason;
  }

  /**
   * The target's hashes at the batch ends, asked for (64 at a time) once a helper serves a
   * batch. A helper on a competing fork serves ranges that are consistent and may even link to
   * the previous batch; imported, they would put us on the helper's fork and make the honest
   * target look like a liar when its next batch no longer links.
   */
  private async targetHashAt(b: Batch<PeerId>): Promise<Uint8Array | undefined> {
    const chunk = Math.floor(b.index / MAX_HASHES_PER_REQUEST);
    let answer = this.anchorChunks.get(chunk);
    if (!answer) {
      const heights: number[] = [];
      const end = Math.min((chunk + 1) * MAX_HASHES_PER_REQUEST, this.batchCount);
      for (let i = chunk * MAX_HASHES_PER_REQUEST; i < end; i++) {
        const { start, count } = this.rangeOf(i);
        heights.push(start + count - 1);
      }
      answer = this.deps.requestHashesAt(this.target.peer, heights).then(
        (refs) => new Map(refs.map((r) => [r.height, r.hash])),
        // Without anchors, the linking and checkpoint checks still apply.
        () => new Map(),
      );
      this.anchorChunks.set(chunk, answer);
    }
    return (await answer).get(b.end);
  }
}
