import type { PeerId } from '@libp2p/interface';
import { bytesEqual, type Hex, toHex } from '../chain/bytes.ts';
import type { Chain, ProcessResult } from '../chain/chain.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { Logger } from '../log.ts';
import type { BlockRef, Status } from '../p2p/messages.ts';
import { MAX_BLOCKS_PER_REQUEST, MAX_HASHES_PER_REQUEST } from '../p2p/messages.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';

/** What range sync needs from the network and the node; injected so the algorithm stays testable. */
export interface RangeSyncDeps {
  readonly chain: Chain;
  requestRange(peer: PeerId, startHeight: number, count: number): Promise<SealedBlock[]>;
  requestAncestor(peer: PeerId, locator: Uint8Array[]): Promise<BlockRef>;
  requestHashesAt(peer: PeerId, heights: number[]): Promise<BlockRef[]>;
  submit(blocks: readonly SealedBlock[], from: string): Promise<ProcessResult[]>;
  /** Starts checking a downloaded batch's signatures (off the main thread) before its turn to import. */
  preverify?(blocks: readonly SealedBlock[]): Promise<void>;
  penalise(peer: PeerId, action: PeerAction, reason: string): void;
  onSplit?(info: { peer: string; forkHeight: number; ourHeight: number; theirHeight: number }): void;
  readonly log: Logger;
}

export interface SyncPeer {
  readonly peer: PeerId;
  readonly status: Status;
}

export interface RangeSyncOptions {
  readonly batchSize?: number;
  /** How many peers download batches in parallel. */
  readonly parallelPeers?: number;
  /** Requests in flight per downloading peer. */
  readonly requestsPerPeer?: number;
  /** Heights that are multiples of this are checked against other peers before import. */
  readonly checkpointInterval?: number;
  /** A fork deeper than this on reconnecting is reported as a healed network split. */
  readonly splitDepth?: number;
}

export type SyncOutcome =
  | { readonly kind: 'synced'; readonly imported: number; readonly tip: number }
  | { readonly kind: 'aborted'; readonly imported: number; readonly reason: string; readonly blame?: string };

interface Batch {
  readonly index: number;
  readonly start: number;
  readonly count: number;
  attempts: number;
  blocks?: SealedBlock[];
  servedBy?: PeerId;
  verified?: Promise<void>;
  waiters: (() => void)[];
}

/**
 * Catches up with the best peer: finds the fork point with a block locator, downloads the
 * range in bounded batches from up to three peers in parallel, retries a failed batch on
 * another peer, penalises peers that serve invalid or inconsistent batches, drops helpers
 * whose batches end on another block than the target's, checks checkpoint hashes against a
 * 2/3 majority of other peers, and imports batches strictly in order, one store transaction
 * per batch.
 */
export async function rangeSync(
  target: SyncPeer,
  helpersNow: () => readonly SyncPeer[],
  deps: RangeSyncDeps,
  opts: RangeSyncOptions = {},
): Promise<SyncOutcome> {
  const batchSize = Math.min(opts.batchSize ?? MAX_BLOCKS_PER_REQUEST, MAX_BLOCKS_PER_REQUEST);
  const checkpointInterval = opts.checkpointInterval ?? 512;
  const { chain, log } = deps;
  const targetKey = target.peer.toString();

  let fork: BlockRef;
  try {
    fork = await deps.requestAncestor(
      target.peer,
      chain.tree.locator().map((h) => Buffer.from(h, 'hex')),
    );
  } catch (err) {
    return { kind: 'aborted', imported: 0, reason: `ancestor request failed: ${(err as Error).message}` };
  }
  const ours = chain.tree.mainAt(fork.height);
  if (!ours || !bytesEqual(ours.hash, fork.hash)) {
    deps.penalise(target.peer, 'mid-tolerance', 'answered a locator with a block not in it');
    return { kind: 'aborted', imported: 0, reason: 'bad fork point', blame: targetKey };
  }
  const ourHeight = chain.tip.height;
  if (ourHeight - fork.height > (opts.splitDepth ?? 6)) {
    deps.onSplit?.({
      peer: targetKey,
      forkHeight: fork.height,
      ourHeight,
      theirHeight: target.status.headHeight,
    });
  }
  const first = fork.height + 1;
  const last = target.status.headHeight;
  if (last < first) return { kind: 'synced', imported: 0, tip: chain.tip.height };

  const batches: Batch[] = [];
  for (let start = first, i = 0; start <= last; start += batchSize, i++) {
    batches.push({ index: i, start, count: Math.min(batchSize, last - start + 1), attempts: 0, waiters: [] });
  }
  const downloaders: SyncPeer[] = [];
  const failedPeers = new Set<string>();
  const penalisedForRanges = new Set<string>();
  let nextToFetch = 0;
  const retry: Batch[] = [];
  let stopped = false;
  /** Download loops running now; when none is left while batches remain, the target is asked again. */
  let live = 0;
  let wakeMain: (() => void) | undefined;
  const wake = () => {
    const w = wakeMain;
    wakeMain = undefined;
    w?.();
  };

  const consistent = (b: Batch, blocks: SealedBlock[]): string | undefined => {
    if (blocks.length !== b.count) return `${blocks.length} blocks for a range of ${b.count}`;
    for (let i = 0; i < blocks.length; i++) {
      const blk = blocks[i]!;
      if (blk.header.height !== b.start + i) return `block at position ${i} has height ${blk.header.height}`;
      if (i > 0 && !bytesEqual(blk.header.prevHash, blocks[i - 1]!.hash))
        return `block ${blk.header.height} does not link`;
    }
    return undefined;
  };

  // The target's hashes at the batch ends, asked for (64 at a time) once a helper serves a batch.
  // A helper on a competing fork serves ranges that are consistent and may even link to the
  // previous batch; imported, they would put us on the helper's fork and make the honest
  // target look like a liar when its next batch no longer links.
  const anchorChunks = new Map<number, Promise<Map<number, Uint8Array>>>();
  const targetHashAt = async (b: Batch): Promise<Uint8Array | undefined> => {
    const chunk = Math.floor(b.index / MAX_HASHES_PER_REQUEST);
    let answer = anchorChunks.get(chunk);
    if (!answer) {
      const heights = batches
        .slice(chunk * MAX_HASHES_PER_REQUEST, (chunk + 1) * MAX_HASHES_PER_REQUEST)
        .map((x) => x.start + x.count - 1);
      answer = deps.requestHashesAt(target.peer, heights).then(
        (refs) => new Map(refs.map((r) => [r.height, r.hash])),
        // Without anchors, the linking and checkpoint checks still apply.
        () => new Map(),
      );
      anchorChunks.set(chunk, answer);
    }
    return (await answer).get(b.start + b.count - 1);
  };

  const download = async (dl: SyncPeer) => {
    const key = dl.peer.toString();
    const isTarget = key === targetKey;
    live++;
    try {
      while (!stopped && !failedPeers.has(key)) {
        const b = retry.shift() ?? batches[nextToFetch++];
        if (!b) return;
        if (!isTarget && b.start + b.count - 1 > dl.status.headHeight) {
          // Beyond this helper's head: left to the others (the target claimed every height).
          retry.push(b);
          return;
        }
        let otherFork = false;
        try {
          const blocks = await deps.requestRange(dl.peer, b.start, b.count);
          const problem = consistent(b, blocks);
          if (problem) {
            // A short answer from a peer that claimed the height is a lie; a non-linking one is garbage.
            // One penalty per peer and sync: its other request in flight fails for the same fault.
            if (!penalisedForRanges.has(key)) {
              penalisedForRanges.add(key);
              deps.penalise(dl.peer, 'mid-tolerance', `range ${b.start}+${b.count}: ${problem}`);
            }
            throw new Error(problem);
          }
          if (!isTarget) {
            const anchor = await targetHashAt(b);
            if (anchor && !bytesEqual(anchor, blocks.at(-1)!.hash)) {
              // Following another fork is no offence: the helper just stops helping.
              otherFork = true;
              throw new Error('range ends on another fork than the target');
            }
          }
          b.blocks = blocks;
          b.servedBy = dl.peer;
          b.verified = deps.preverify?.(blocks).catch(() => {});
          for (const w of b.waiters.splice(0)) w();
        } catch (err) {
          log.debug({ peer: key, start: b.start, err: (err as Error).message }, 'range request failed');
          failedPeers.add(key);
          if (!otherFork && ++b.attempts >= 4) {
            stopped = true;
            for (const w of b.waiters.splice(0)) w();
            return;
          }
          retry.push(b);
          // Another downloader picks it up; if none is left, the target peer is retried.
          if (downloaders.every((d) => failedPeers.has(d.peer.toString()))) {
            failedPeers.delete(targetKey);
          }
          return;
        }
      }
    } finally {
      live--;
      wake();
    }
  };

  const workers: Promise<void>[] = [];
  // Peers join as their statuses arrive: right after start-up the first status is often alone.
  const recruit = () => {
    const candidates = [target, ...helpersNow()].filter(
      (h) => h.status.headHeight >= first && !downloaders.some((d) => d.peer.equals(h.peer)),
    );
    for (const c of candidates) {
      if (downloaders.length >= (opts.parallelPeers ?? 3)) break;
      downloaders.push(c);
      for (let k = 0; k < (opts.requestsPerPeer ?? 2); k++) workers.push(download(c));
    }
  };
  recruit();
  let imported = 0;
  let prevHash = fork.hash;
  let outcome: SyncOutcome | undefined;
  for (const b of batches) {
    recruit();
    while (!b.blocks && !stopped) {
      // Keep at least one download running while batches remain: when every loop has ended
      // (failures, or helpers short of the remaining heights), the target is asked again.
      if (live === 0) {
        failedPeers.delete(targetKey);
        workers.push(download(target));
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        wakeMain = done;
        b.waiters.push(done);
      });
    }
    if (!b.blocks) {
      outcome = {
        kind: 'aborted',
        imported,
        reason: `range ${b.start}+${b.count} failed ${b.attempts} times`,
      };
      break;
    }
    const blocks = b.blocks;
    const server = b.servedBy!;
    if (!bytesEqual(blocks[0]!.header.prevHash, prevHash)) {
      // Served from another fork than the target's: fetch it again from the target itself.
      b.blocks = undefined;
      const again = await deps.requestRange(target.peer, b.start, b.count).catch(() => undefined);
      if (!again || consistent(b, again) || !bytesEqual(again[0]!.header.prevHash, prevHash)) {
        deps.penalise(target.peer, 'mid-tolerance', 'range does not continue the chain it claimed');
        outcome = {
          kind: 'aborted',
          imported,
          reason: 'target served a range that does not link',
          blame: targetKey,
        };
        break;
      }
      b.blocks = again;
      b.servedBy = target.peer;
    }
    const disagreement = await checkCheckpoints(b, deps, [target, ...helpersNow()], checkpointInterval);
    if (disagreement) {
      deps.penalise(b.servedBy!, 'mid-tolerance', disagreement);
      outcome = { kind: 'aborted', imported, reason: disagreement, blame: b.servedBy!.toString() };
      break;
    }
    await b.verified;
    const results = await deps.submit(b.blocks!, b.servedBy!.toString());
    // Blocks before an invalid one in the same batch are connected and count as imported;
    // those after it (orphans or invalid) do not.
    imported += results.filter(
      (r) => r.status === 'connected' || r.status === 'reorg' || r.status === 'side',
    ).length;
    const bad = results.find((r) => r.status === 'invalid');
    if (bad && bad.status === 'invalid') {
      deps.penalise(
        server,
        bad.error.isTransient ? 'high-tolerance' : 'low-tolerance',
        `served invalid block: ${bad.error.message}`,
      );
      outcome = {
        kind: 'aborted',
        imported,
        reason: `invalid block ${bad.hashHex}: ${bad.error.code}`,
        blame: server.toString(),
      };
      break;
    }
    prevHash = b.blocks!.at(-1)!.hash;
  }
  stopped = true;
  await Promise.allSettled(workers);
  if (outcome) return outcome;
  const claimed = toHex(target.status.headHash);
  if (!chain.tree.get(claimed as Hex)) {
    deps.penalise(target.peer, 'mid-tolerance', 'status named a head it did not serve');
  }
  return { kind: 'synced', imported, tip: chain.tip.height };
}

/**
 * Before importing a batch that contains checkpoint heights, asks other peers for their
 * hashes there. If at least two thirds of those who answer name another hash, the batch is
 * refused (the server is on a chain the network does not follow).
 */
async function checkCheckpoints(
  b: Batch,
  deps: RangeSyncDeps,
  peers: readonly SyncPeer[],
  interval: number,
): Promise<string | undefined> {
  const heights: number[] = [];
  for (let h = Math.ceil(b.start / interval) * interval; h < b.start + b.count; h += interval)
    if (h > 0) heights.push(h);
  if (!heights.length) return undefined;
  const server = b.servedBy!.toString();
  const voters = peers
    .filter((p) => p.peer.toString() !== server && p.status.headHeight >= heights.at(-1)!)
    .slice(0, 5);
  if (voters.length < 2) return undefined;
  const answers = await Promise.all(
    voters.map((v) => deps.requestHashesAt(v.peer, heights).catch(() => undefined)),
  );
  for (const h of heights) {
    const ours = toHex(b.blocks![h - b.start]!.hash);
    const votes = answers.filter((a) => a !== undefined).map((a) => a.find((r) => r.height === h));
    const counted = votes.filter((v) => v !== undefined);
    if (counted.length < 2) continue;
    const against = counted.filter((v) => toHex(v.hash) !== ours).length;
    if (against * 3 >= counted.length * 2) {
      return `checkpoint ${h}: ${against} of ${counted.length} peers name another block`;
    }
  }
  return undefined;
}
