import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { PeerId } from '@libp2p/interface';
import { bytesEqual, type Hex, toHex } from '../chain/bytes.ts';
import type { Chain, ProcessResult } from '../chain/chain.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { SealedHeader } from '../chain/validation.ts';
import { SYNC_DEFAULTS } from '../options.ts';
import type { BlockRef } from '../p2p/messages.ts';
import { MAX_BLOCKS_PER_REQUEST } from '../p2p/messages.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import type { Batch } from './batch.ts';
import { HeaderPresync, type PresyncFailure, presyncHeaders } from './header-presync.ts';
import type { PresyncRefusal } from './presync-budget.ts';
import type { ProgressFloorOptions } from './progress-floor.ts';
import { type DownloaderDeps, RangeDownloader, type SyncPeer } from './range-downloader.ts';

/** What range sync needs from the network and the node; injected so the algorithm stays testable. */
export interface RangeSyncDeps extends DownloaderDeps {
  readonly chain: Chain;
  requestAncestor(peer: PeerId, locator: Uint8Array[]): Promise<BlockRef>;
  /** Main-chain headers of a peer by height (headers-first pre-sync of deep forks). */
  requestHeaders(peer: PeerId, startHeight: number, count: number): Promise<SealedHeader[]>;
  submit(blocks: readonly SealedBlock[], from: string): Promise<ProcessResult[]>;
  /** Starts checking a downloaded batch's signatures (off the main thread) before its turn to import. */
  preverify?(blocks: readonly SealedBlock[]): Promise<void>;
  /**
   * Whether a peer's word counts in the checkpoint vote: only peers with an established good
   * score (a stranger's identity is free, so fresh or penalised peers never vote). Without it
   * nobody votes, as in Lodestar. The vote is advisory: it is reported, never acted on.
   */
  isTrustedVoter?(peer: PeerId): boolean;
  /** Trusted peers named other blocks at a checkpoint height than the chain being imported. */
  onCheckpointDisagreement?(info: CheckpointDisagreement): void;
  /**
   * Takes a pre-sync for the target from the node's pre-sync budget (presync-budget.ts), or says
   * why none may start now: the sync then ends before any header is read, nobody blamed.
   */
  takePresync?(peer: PeerId): PresyncRefusal | undefined;
  /** A pre-sync ended: `proven`, or the code of its failure; `headers` read. */
  onPresync?(outcome: 'proven' | PresyncFailure['code'], headers: number): void;
  /** A peer served a batch that imported: useful service raises its score. */
  reward?(peer: PeerId): void;
  onSplit?(info: { peer: string; forkHeight: number; ourHeight: number; theirHeight: number }): void;
}

export type { SyncPeer } from './range-downloader.ts';

export interface RangeSyncOptions {
  readonly batchSize?: number;
  /** How many peers download batches in parallel. */
  readonly parallelPeers?: number;
  /** Requests in flight per downloading peer. */
  readonly requestsPerPeer?: number;
  /** Batches downloaded ahead of the import at most (Lodestar's BATCH_BUFFER_SIZE). */
  readonly bufferBatches?: number;
  /** Bytes of downloaded blocks held ahead of the import at most (the next batch always fits). */
  readonly maxBufferedBytes?: number;
  /** Heights that are multiples of this are checked against other peers before import. */
  readonly checkpointInterval?: number;
  /** A fork deeper than this on reconnecting is reported as a healed network split. */
  readonly splitDepth?: number;
  /** Called for every batch object created (tests count them; the window bounds them). */
  readonly onBatchCreated?: (b: Batch<PeerId>) => void;
  /** Headers one pre-sync reads at most (default MAX_PRESYNC_HEADERS). */
  readonly maxPresyncHeaders?: number;
  /** The pace of each batch download and of a pre-sync (default SYNC_DEFAULTS.progress). */
  readonly progress?: ProgressFloorOptions;
  /** The clock that pace is judged by (default performance.now; tests inject one). */
  readonly clock?: () => number;
  /**
   * The target's answer to our locator, when it was asked already (the sync manager probes
   * several claimants at once to find one whose chain connects near our tip); judged as if
   * asked here.
   */
  readonly fork?: BlockRef;
}

/**
 * What a target's fork point says about its claim: `bad` (not a block of our main chain: its
 * answer to our locator named a block not in it), `near` (within the side-chain margin: its
 * blocks are validated, work and all, as they arrive) or `deep` (its headers must prove the work
 * first: a pre-sync, which a stranger's claim can make as long as the cap allows).
 */
export function judgeFork(chain: Chain, fork: BlockRef): 'bad' | 'near' | 'deep' {
  const ours = chain.tree.mainAt(fork.height);
  if (!ours || !bytesEqual(ours.hash, fork.hash)) return 'bad';
  return ours.chainWork < chain.sideChainWorkFloor() ? 'deep' : 'near';
}

/** The penalty reason of a `bad` fork point. */
export const BAD_FORK_POINT = 'answered a locator with a block not in it';

export interface CheckpointDisagreement {
  readonly height: number;
  /** The peer whose block at that height is being imported. */
  readonly server: string;
  readonly against: number;
  readonly counted: number;
}

/**
 * The score from which a peer's word counts in the checkpoint vote: ten imported batches
 * (0.5 each) net of penalties, within the score's half-life. Fresh identities start at 0.
 */
export const TRUSTED_VOTER_MIN_SCORE = 5;

/** Batches ahead of the import: 8 × 128 blocks, a few seconds of download at LAN speed. */
export const BATCH_BUFFER_SIZE = 8;
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/**
 * How the target's status fared, when the sync could not finish: `lie` when its own answers
 * contradicted it (a short, garbled or unlinked range below the head it claimed), `unserved`
 * when it did not deliver a batch it claimed (errors or timeouts, penalised where they occur).
 */
export type Disproval = 'lie' | 'unserved';

export type SyncOutcome =
  | { readonly kind: 'synced'; readonly imported: number; readonly tip: number }
  | {
      readonly kind: 'aborted';
      readonly imported: number;
      readonly reason: string;
      readonly blame?: string;
      readonly disproved?: Disproval;
      /** The sync ended in the target's pre-sync: its claim of a deep fork was not proven. */
      readonly presync?: PresyncFailure['code'];
      /** The target's claim needs a pre-sync and the budget had none for it (nothing was read). */
      readonly presyncRefused?: PresyncRefusal;
    };

/**
 * Catches up with the best peer: finds the fork point with a block locator; if the fork starts
 * further down than the side-chain margin, proves from the target's headers that the fork has
 * the work a stored side chain needs (HeaderPresync) before fetching any of its blocks; then
 * downloads the range in a bounded window of batches from up to three peers in parallel
 * (RangeDownloader), and imports batches strictly in order, one store transaction per batch,
 * yielding to the event loop between batches. Before each import: a batch must be the chain the
 * headers proved, and one served by a helper must link to the chain being imported (else it is
 * fetched again from the target). Checkpoint heights are put to an advisory vote of trusted
 * peers. A target whose answers disprove its status is blamed (`disproved`).
 */
export async function rangeSync(
  target: SyncPeer,
  helpersNow: () => readonly SyncPeer[],
  deps: RangeSyncDeps,
  opts: RangeSyncOptions = {},
): Promise<SyncOutcome> {
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? MAX_BLOCKS_PER_REQUEST, MAX_BLOCKS_PER_REQUEST));
  const checkpointInterval = opts.checkpointInterval ?? 512;
  const progress = opts.progress ?? SYNC_DEFAULTS.progress;
  const clock = opts.clock ?? (() => performance.now());
  const { chain } = deps;
  const targetKey = target.peer.toString();

  let fork: BlockRef;
  try {
    fork =
      opts.fork ??
      (await deps.requestAncestor(
        target.peer,
        chain.locator().map((h) => Buffer.from(h, 'hex')),
      ));
  } catch (err) {
    return { kind: 'aborted', imported: 0, reason: `ancestor request failed: ${(err as Error).message}` };
  }
  const ours = chain.tree.mainAt(fork.height);
  if (!ours || judgeFork(chain, fork) === 'bad') {
    deps.penalise(target.peer, 'mid-tolerance', BAD_FORK_POINT);
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
  // The claimed head bounds the range; nothing is built from it beyond the downloader's window.
  const last = target.status.headHeight;
  if (last < first) return { kind: 'synced', imported: 0, tip: chain.tip.height };

  // A fork from further down than the side-chain margin: its headers prove its work first, and
  // its blocks must then be the chain those headers showed (anchors at every batch end).
  let anchors: ReadonlyMap<number, Uint8Array> | undefined;
  const floor = chain.sideChainWorkFloor();
  if (judgeFork(chain, fork) === 'deep') {
    const refused = deps.takePresync?.(target.peer);
    if (refused)
      return {
        kind: 'aborted',
        imported: 0,
        reason: `pre-sync budget spent (${refused}): the deep claim waits`,
        presyncRefused: refused,
      };
    const p = new HeaderPresync({
      config: chain.config,
      chainId: chain.chainId,
      fork: { ...chain.tree.parentContext(ours), chainWork: ours.chainWork },
      threshold: floor,
      claimedHeight: last,
      anchorEvery: batchSize,
      now: chain.now,
      progress,
      clock,
      ...(opts.maxPresyncHeaders !== undefined ? { maxHeaders: opts.maxPresyncHeaders } : {}),
    });
    const status = await presyncHeaders(p, target.peer, deps.requestHeaders);
    deps.onPresync?.(status === 'Proven' ? 'proven' : p.failure!.code, p.headers);
    if (status !== 'Proven') return presyncAborted(p.failure!, target, deps);
    deps.log.debug(
      { peer: targetKey, fork: fork.height, proven: p.height, headers: p.headers },
      'fork presynced',
    );
    anchors = p.anchors;
  }

  const dl = new RangeDownloader(target, helpersNow, deps, {
    first,
    last,
    batchSize,
    bufferBatches: Math.max(1, opts.bufferBatches ?? BATCH_BUFFER_SIZE),
    maxBufferedBytes: opts.maxBufferedBytes ?? MAX_BUFFERED_BYTES,
    parallelPeers: opts.parallelPeers ?? 3,
    requestsPerPeer: opts.requestsPerPeer ?? 2,
    onBatchCreated: opts.onBatchCreated,
    progress,
    clock,
    ...(anchors ? { anchors } : {}),
  });
  let imported = 0;
  const votes: Promise<void>[] = [];
  let prevHash = fork.hash;
  let outcome: SyncOutcome | undefined;
  const abort = (reason: string, blame?: string, disproved?: Disproval): SyncOutcome => ({
    kind: 'aborted',
    imported,
    reason,
    ...(blame ? { blame } : {}),
    ...(disproved ? { disproved } : {}),
  });
  try {
    for (let i = 0; i < dl.batchCount; i++) {
      const b = await dl.ready(i);
      if (b.status === 'Failed') {
        // A batch the target claimed and did not deliver: its status is not to be believed.
        if (dl.disproved)
          outcome = abort(`the target's status was disproved: ${dl.disproved.reason}`, targetKey, 'lie');
        // Too slow to follow: not a lie, but its claim waits (a back-off) while others are tried.
        else if (dl.stalled)
          outcome = abort(`the target was too slow: ${dl.stalled.reason}`, targetKey, 'unserved');
        else if (b.failedBy(target.peer)) outcome = abort(b.failure!, targetKey, 'unserved');
        else outcome = abort(b.failure!);
        break;
      }
      if (!bytesEqual(b.blocks![0]!.header.prevHash, prevHash)) {
        // Served from another fork than the target's: fetch it again from the target itself
        // (penalties are the downloader's: a slow target, a lying one; never a helper that served
        // the chain the target named).
        const r = await dl.refetchFromTarget(b, prevHash);
        if (r.kind === 'slow') {
          outcome = abort(`the target was too slow: ${r.reason}`, targetKey, 'unserved');
          break;
        }
        // An honest reorg under the sync, the first time: no penalty, but the target is skipped a
        // while (blame without a disproval), so that repeating it cannot hold the node.
        if (r.kind === 'reorged') {
          outcome = abort(`the target's chain changed under the sync: ${r.reason}`, targetKey);
          break;
        }
        if (r.kind === 'lie') {
          outcome = abort(`the target's refetch disproved it: ${r.reason}`, targetKey, 'lie');
          break;
        }
      }
      const server = b.peer!;
      // Advisory only, and not waited for: a vote never stops, delays or blames an import.
      const vote = checkCheckpoints(b, deps, [target, ...helpersNow()], checkpointInterval);
      if (vote) votes.push(vote);
      await b.verified;
      const blocks = b.startProcessing();
      const results = await deps.submit(blocks, server.toString());
      // Blocks before an invalid one in the same batch are connected and count as imported;
      // those after it (orphans or invalid) do not.
      imported += results.filter(
        (r) => r.status === 'connected' || r.status === 'reorg' || r.status === 'side',
      ).length;
      const bad = results.find((r) => r.status === 'invalid');
      if (bad && bad.status === 'invalid') {
        b.processingFailed(bad.error.message);
        deps.penalise(
          server,
          bad.error.isTransient ? 'high-tolerance' : 'low-tolerance',
          `served invalid block: ${bad.error.message}`,
        );
        outcome = abort(`invalid block ${bad.hashHex}: ${bad.error.code}`, server.toString());
        break;
      }
      prevHash = blocks.at(-1)!.hash;
      b.processingSuccess();
      dl.release(i);
      // Trust is earned by blocks that extend our main chain, not by side-chain or duplicate
      // ones (which anyone can make cheaply and serve again and again).
      if (results.some((r) => r.status === 'connected' || r.status === 'reorg')) deps.reward?.(server);
      // Between batches the node answers its peers and its HTTP API.
      await yieldToLoop();
    }
  } finally {
    await dl.stop();
    // Each voter's answer is bounded by the request timeout.
    await Promise.allSettled(votes);
  }
  if (outcome) return outcome;
  const claimed = toHex(target.status.headHash);
  // A head it did not serve is a lie only if the work it claimed did not arrive either (an
  // honest peer may have moved to a sibling of equal work meanwhile).
  if (!chain.has(claimed as Hex) && chain.tip.chainWork < target.status.totalWork) {
    deps.penalise(target.peer, 'mid-tolerance', 'status named a head it did not serve');
  }
  return { kind: 'synced', imported, tip: chain.tip.height };
}

/** Penalty and outcome of a failed pre-sync: what the target's headers showed of its status. */
function presyncAborted(f: PresyncFailure, target: SyncPeer, deps: RangeSyncDeps): SyncOutcome {
  const key = target.peer.toString();
  const reason = `presync: ${f.reason}`;
  const base = { kind: 'aborted' as const, imported: 0, reason, blame: key, presync: f.code };
  // A request that failed was penalised by the transport; its claim is not believed for a while.
  if (f.code === 'unserved') return { ...base, disproved: 'unserved' };
  // A header ahead of our clock may be honest (a clock that is ahead): a back-off, and a small
  // penalty, but not a lie that costs more each time.
  if (f.error?.isTransient) {
    deps.penalise(target.peer, 'high-tolerance', reason);
    return { ...base, disproved: 'unserved' };
  }
  // More than we read for one fork: maybe not a lie, but a claim we cannot check is treated
  // as one (attack review #11: unpunished, one identity held the only sync slot ~47% of the
  // time). The peer book backs it off, doubling; the sync manager penalises a repeat.
  if (f.code === 'too-long') return { ...base, disproved: 'lie' };
  // Slow is not malicious, but a slow peer must not hold the sync: a small penalty, and its
  // claim waits (a back-off) while another peer is followed.
  if (f.code === 'too-slow') {
    deps.penalise(target.peer, 'high-tolerance', reason);
    return { ...base, disproved: 'unserved' };
  }
  const action: PeerAction = f.code === 'bad-header' ? 'low-tolerance' : 'mid-tolerance';
  deps.penalise(target.peer, action, reason);
  return { ...base, disproved: 'lie' };
}

/**
 * Asks trusted peers for their hashes at the checkpoint heights of a batch being imported and
 * reports, through `onCheckpointDisagreement`, the heights where two thirds of those who answer
 * name another block. Advisory only: identities that earned a good score can still collude, so
 * a vote never stops an import, never penalises the server (validation decides which chain is
 * valid and fork choice which is heaviest, as in Lodestar, which takes no votes at all). Returns
 * undefined when there is nothing to ask; otherwise a promise that never rejects.
 */
function checkCheckpoints(
  b: Batch<PeerId>,
  deps: RangeSyncDeps,
  peers: readonly SyncPeer[],
  interval: number,
): Promise<void> | undefined {
  const heights: number[] = [];
  for (let h = Math.ceil(b.start / interval) * interval; h < b.start + b.count; h += interval)
    if (h > 0) heights.push(h);
  if (!heights.length || !deps.isTrustedVoter) return undefined;
  const server = b.peer!.toString();
  const seen = new Set<string>([server]);
  const voters: SyncPeer[] = [];
  for (const p of peers) {
    const key = p.peer.toString();
    if (seen.has(key) || p.status.headHeight < heights.at(-1)!) continue;
    seen.add(key);
    if (deps.isTrustedVoter(p.peer)) voters.push(p);
    if (voters.length >= 5) break;
  }
  if (voters.length < 2) return undefined;
  // The batch's blocks are released after import: the hashes asked about are taken now.
  const ours = new Map(heights.map((h) => [h, toHex(b.blocks![h - b.start]!.hash)]));
  return (async () => {
    const answers = await Promise.all(
      voters.map((v) => deps.requestHashesAt(v.peer, heights).catch(() => undefined)),
    );
    for (const h of heights) {
      const votes = answers.filter((a) => a !== undefined).map((a) => a.find((r) => r.height === h));
      const counted = votes.filter((v) => v !== undefined);
      if (counted.length < 2) continue;
      const against = counted.filter((v) => toHex(v.hash) !== ours.get(h)).length;
      if (against * 3 >= counted.length * 2) {
        deps.log.warn(
          { height: h, server, against, counted: counted.length },
          'trusted peers name another block at a checkpoint (advisory: the chain validated)',
        );
        deps.onCheckpointDisagreement?.({ height: h, server, against, counted: counted.length });
      }
    }
  })().catch(() => {});
}
