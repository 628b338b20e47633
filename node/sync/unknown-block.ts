/**
 * Fetching the missing ancestors of orphans (blocks whose parent we do not know), after
 * Lodestar's sync/unknownBlock.ts: the parent is asked of the peer that sent the orphan, one
 * block at a time down to a known block, within fixed bounds on how many chains are pending,
 * how many fetches run at once (and one per peer), and how deep one chain may go (range sync
 * takes over beyond). A peer that sent an orphan but does not serve its parent is penalised and
 * its orphans are dropped: it implied having a block it does not have. Pure logic around the
 * injected deps; no libp2p here.
 */
import type { Hex } from '../chain/bytes.ts';
import type { ProcessResult } from '../chain/chain.ts';
import type { SealedBlock } from '../chain/types.ts';
import { ignoredPenalty } from '../p2p/gossip.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';

/** What the fetcher needs from the node; peers are named by their id strings. */
export interface UnknownBlockDeps {
  /** Blocks-by-hash for one hash from `peer` (rejects on timeout or a broken stream). */
  fetchBlock(peer: string, hashHex: Hex): Promise<readonly SealedBlock[]>;
  /** Processes fetched blocks as unrequested ones (they pass the side-chain work margin). */
  submit(blocks: readonly SealedBlock[], peer: string): Promise<readonly ProcessResult[]>;
  /** Drops the orphans `peer` sent; resolves with how many. */
  dropOrphansFrom(peer: string): Promise<number>;
  penalise(peer: string, action: PeerAction, reason: string): void;
  /** Asks range sync to run (it fetches chains too far behind for one-by-one fetching). */
  pokeSync(): void;
  /** Counts an outcome (a Prometheus counter in the node). */
  count?(outcome: UnknownBlockOutcome): void;
}

export type UnknownBlockOutcome =
  /** The chain reached a known block and was processed. */
  | 'resolved'
  /** Deeper than maxDepth: range sync was poked instead. */
  | 'too-deep'
  /** The peer answered without the block asked for. */
  | 'unserved'
  /** The peer served a block whose processing failed or was not kept. */
  | 'bad-block'
  /** The request failed (timeout, closed stream). */
  | 'failed'
  /** Not queued: too many chains pending already. */
  | 'queue-full';

export interface UnknownBlockOptions {
  /** Missing ancestors waiting or being fetched at most (default 32). */
  readonly maxPending?: number;
  /** Fetches running at once (default 2, as Lodestar). */
  readonly maxConcurrent?: number;
  /**
   * Blocks fetched for one chain at most before range sync takes over (default 24: within the
   * orphan pool's per-peer quota, since every fetched ancestor waits there as an orphan of the
   * same peer until the chain connects, and one past the quota would evict the chain's top).
   */
  readonly maxDepth?: number;
  /** Range sync is poked for far-ahead orphans at most this often (default 1 s). */
  readonly pokeIntervalMs?: number;
  readonly now?: () => number;
}

interface Job {
  readonly missing: Hex;
  /**
   * Senders of orphans waiting for it, in arrival order, asked one after the other: a liar
   * that sent an orphan first cannot leave an honest sender's orphan unresolved.
   */
  readonly peers: string[];
}

/** Senders remembered per missing block (the first is asked; the others if it fails). */
const MAX_PEERS_PER_JOB = 4;

/** Outcomes that blame the peer asked, not the block: the next sender is asked. */
const TRY_NEXT: ReadonlySet<UnknownBlockOutcome> = new Set(['unserved', 'failed', 'bad-block']);

export class UnknownBlockSync {
  private readonly pending = new Map<Hex, Job>();
  private readonly active = new Set<Hex>();
  private readonly busyPeers = new Set<string>();
  private readonly maxPending: number;
  private readonly maxConcurrent: number;
  private readonly maxDepth: number;
  private readonly pokeIntervalMs: number;
  private readonly now: () => number;
  private lastPoke = Number.NEGATIVE_INFINITY;
  private stopped = false;
  private readonly running = new Set<Promise<void>>();

  private readonly deps: UnknownBlockDeps;
  constructor(deps: UnknownBlockDeps, opts: UnknownBlockOptions = {}) {
    this.deps = deps;
    this.maxPending = opts.maxPending ?? 32;
    this.maxConcurrent = opts.maxConcurrent ?? 2;
    this.maxDepth = opts.maxDepth ?? 24;
    this.pokeIntervalMs = opts.pokeIntervalMs ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /** Missing ancestors queued or being fetched. */
  get size(): number {
    return this.pending.size;
  }

  /** Fetches currently running. */
  get inFlight(): number {
    return this.active.size;
  }

  /** An orphan from `peer` waits for `missing`: queue its fetch (once per missing block). */
  onOrphan(peer: string, missing: Hex): void {
    if (this.stopped) return;
    const job = this.pending.get(missing);
    if (job) {
      if (!job.peers.includes(peer) && job.peers.length < MAX_PEERS_PER_JOB) job.peers.push(peer);
      return;
    }
    if (this.pending.size >= this.maxPending) {
      this.deps.count?.('queue-full');
      // The orphan waits in the pool anyway; a sync may bring its parent.
      this.deps.pokeSync();
      return;
    }
    this.pending.set(missing, { missing, peers: [peer] });
    this.pump();
  }

  /**
   * A block far above our tip arrived (not kept: range sync fetches such chains). Pokes range
   * sync, at most once per interval however many arrive: whether to sync, and from whom, is
   * its decision, by peer statuses.
   */
  onFarAhead(): void {
    const now = this.now();
    if (this.stopped || now - this.lastPoke < this.pokeIntervalMs) return;
    this.lastPoke = now;
    this.deps.pokeSync();
  }

  /**
   * Orphans that expired without their ancestors ever arriving: each sender is penalised once
   * per call, however many of its orphans expired together.
   */
  onOrphansExpired(senders: readonly (string | undefined)[]): void {
    for (const peer of new Set(senders)) {
      if (peer !== undefined) this.deps.penalise(peer, 'mid-tolerance', 'its orphans never connected');
    }
  }

  /** Stops starting fetches and waits for those running. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pending.clear();
    await Promise.allSettled([...this.running]);
  }

  private pump(): void {
    if (this.stopped) return;
    for (const job of this.pending.values()) {
      if (this.active.size >= this.maxConcurrent) return;
      const peer = job.peers[0]!;
      if (this.active.has(job.missing) || this.busyPeers.has(peer)) continue;
      this.active.add(job.missing);
      this.busyPeers.add(peer);
      let outcome: UnknownBlockOutcome = 'failed';
      const run = this.fetchChain(job.missing, peer)
        .then(
          (o) => {
            outcome = o;
          },
          () => {},
        )
        .finally(() => {
          this.deps.count?.(outcome);
          this.active.delete(job.missing);
          this.busyPeers.delete(peer);
          job.peers.shift();
          if (!TRY_NEXT.has(outcome) || job.peers.length === 0) this.pending.delete(job.missing);
          this.running.delete(run);
          this.pump();
        });
      this.running.add(run);
    }
  }

  /** Walks down from `missing` until a fetched block connects (or is settled otherwise). */
  private async fetchChain(missing: Hex, peer: string): Promise<UnknownBlockOutcome> {
    let want: Hex = missing;
    for (let depth = 0; depth < this.maxDepth; depth++) {
      if (this.stopped) return 'failed';
      let blocks: readonly SealedBlock[];
      try {
        blocks = await this.deps.fetchBlock(peer, want);
      } catch {
        // It sent a block naming this parent: a request it lets time out costs as much as an
        // answer without it (attack review #11: at −1 per 10 s timeout, 100 orphans never
        // connecting cost their sender 4 points).
        this.deps.penalise(peer, 'mid-tolerance', `ancestor ${want} request failed`);
        this.deps.pokeSync();
        return 'failed';
      }
      const block = blocks.find((b) => b.hashHex === want);
      if (!block) {
        this.deps.penalise(peer, 'mid-tolerance', `did not serve ${want}, the parent of its orphan`);
        await this.deps.dropOrphansFrom(peer);
        return 'unserved';
      }
      const [r] = await this.deps.submit([block], peer);
      if (!r) return 'failed';
      switch (r.status) {
        case 'orphan':
          want = r.missingParent;
          continue;
        case 'connected':
        case 'reorg':
        case 'side':
        case 'duplicate':
          return 'resolved';
        case 'ignored': {
          const action = ignoredPenalty(r);
          if (action) this.deps.penalise(peer, action, `ancestor ignored: ${r.reason}`);
          if (r.reason === 'orphan-too-far-ahead') this.deps.pokeSync();
          await this.deps.dropOrphansFrom(peer);
          return 'bad-block';
        }
        case 'invalid':
          if (r.error.isTransient) return 'failed';
          this.deps.penalise(peer, 'low-tolerance', `served invalid ancestor: ${r.error.message}`);
          await this.deps.dropOrphansFrom(peer);
          return 'bad-block';
      }
    }
    // Too far behind for one-by-one fetching: let range sync take over.
    this.deps.pokeSync();
    return 'too-deep';
  }
}
