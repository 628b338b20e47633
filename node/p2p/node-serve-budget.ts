import { NodeBusyError } from './reqresp.ts';

/**
 * What all peers together take from a node's block serving (store reads and upload), beside the
 * per-peer ServeBudget. Peer ids are free, so without it a stranger's identities each took one
 * peer's budget (attack review #11, finding 5: 8 ids took 11.1 MB/s, 2.2x one).
 *
 * Two token buckets (blocks, bytes) hold the node's rate. While nobody waits, a chunk takes its
 * tokens at once: a lone reader gets the whole rate. When the buckets run dry, chunks queue and
 * are let through by fair queueing over address groups (`capKey`: one IPv4 address, one IPv6
 * /64, all of loopback), and within a group over peers: each group drawing on the budget now
 * gets an equal part of it, whatever number of identities it runs, and a group that stops
 * drawing leaves its part to the others at once. A fixed split (rate ÷ peers seen) was tried
 * and reverted: it refused a lone reader's full answer as over its share.
 *
 * Over budget a chunk waits for its turn rather than being refused; only a wait longer than
 * `maxWaitMs`, or a queue at `maxWaiting`, refuses it (NodeBusyError, no penalty: the peer kept
 * to its own budget). The caller ends an answer that has sent blocks short there instead.
 * Memory: one record per waiting chunk (at most `maxWaiting`), per group and peer with one.
 */
export interface BucketRate {
  /** Tokens added per second. */
  readonly perSec: number;
  /** Tokens the bucket holds at most (the burst a quiet node allows). */
  readonly burst: number;
}

export interface NodeServeBudgetOptions {
  readonly blocks: BucketRate;
  readonly bytes: BucketRate;
  readonly maxWaitMs: number;
  readonly maxWaiting: number;
  readonly now?: () => number;
  /** A chunk that waited, and how long (ms): for metrics. */
  readonly onWait?: (ms: number) => void;
}

/**
 * Upload: 5 MiB/s (~44 Mbit/s) for all peers together, below one peer's own budget (64 MiB per
 * 10 s), with a 12 MiB burst (one full 8 MiB answer at once on a quiet node): 8 identities
 * reading for 15 s can take 5.2 + 0.8 MB/s together. Store reads: 1,000 blocks/s, a burst of
 * 10,000 (bench:p2p: a syncing node takes ~3,400 small blocks from each peer within ~3 s).
 */
export const DEFAULT_NODE_SERVE_BUDGET: NodeServeBudgetOptions = {
  blocks: { perSec: 1_000, burst: 10_000 },
  bytes: { perSec: 5 * 1024 * 1024, burst: 12 * 1024 * 1024 },
  // Below the requester's 5 s write timeout and well inside its 20 s request deadline.
  maxWaitMs: 4_000,
  // Far above what the per-peer stream caps let connected peers have open (4 per protocol).
  maxWaiting: 1_024,
};

/** What one chunk weighs in the fair queue: its bytes plus this per block (a read's fixed cost). */
const BLOCK_WEIGHT = 1024;

class Bucket {
  private tokens: number;
  private at: number;
  private readonly perMs: number;
  readonly burst: number;
  constructor(rate: BucketRate, now: number) {
    if (!(rate.perSec > 0) || !(rate.burst > 0)) throw new Error('serve budget rates must be positive');
    this.perMs = rate.perSec / 1000;
    this.burst = rate.burst;
    this.tokens = rate.burst;
    this.at = now;
  }
  private refill(now: number): void {
    this.tokens = Math.min(this.burst, this.tokens + (now - this.at) * this.perMs);
    this.at = now;
  }
  /** Milliseconds until `n` tokens are there (0: now). A cost above the burst needs a full bucket. */
  msUntil(n: number, now: number): number {
    this.refill(now);
    const need = Math.min(n, this.burst);
    return this.tokens >= need ? 0 : (need - this.tokens) / this.perMs;
  }
  take(n: number): void {
    this.tokens -= n;
  }
}

interface Cost {
  readonly blocks: number;
  readonly bytes: number;
}

interface Waiter {
  readonly cost: Cost;
  readonly queuedAt: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
  done: () => void;
}

/** A group's or a peer's place in the fair queue: its virtual time and its waiting chunks. */
interface Lane<T> {
  vtime: number;
  readonly items: T[];
}

/**
 * Start-time fair queueing over lanes: the lane served next is the waiting one with the least
 * virtual time, which grows by what it was served. A lane that starts waiting starts at the
 * virtual time of the last one served, or later if it was served beyond that (a reader with
 * one request open empties its lane after every chunk: it must not be let off what it took).
 * A lane with nothing waiting is forgotten once the others have caught up with it, and all of
 * them when nobody waits (no contention, no debt).
 */
class FairLanes<T> {
  private readonly lanes = new Map<string, Lane<T>>();
  private vnow = 0;
  private count = 0;

  /** Items waiting in all lanes. */
  get size(): number {
    return this.count;
  }

  /** Lanes with an item waiting. */
  get lanesWaiting(): number {
    let n = 0;
    for (const l of this.lanes.values()) if (l.items.length) n++;
    return n;
  }

  push(key: string, item: T): void {
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = { vtime: this.vnow, items: [] };
      this.lanes.set(key, lane);
    } else if (!lane.items.length) lane.vtime = Math.max(lane.vtime, this.vnow);
    lane.items.push(item);
    this.count++;
  }

  /** The key of the waiting lane served next. */
  next(): string | undefined {
    let best: string | undefined;
    let min = Number.POSITIVE_INFINITY;
    for (const [k, l] of this.lanes) {
      if (!l.items.length) {
        if (l.vtime <= this.vnow) this.lanes.delete(k);
      } else if (l.vtime < min) {
        min = l.vtime;
        best = k;
      }
    }
    return best;
  }

  head(key: string): T | undefined {
    return this.lanes.get(key)?.items[0];
  }

  /** Takes the head of `key`'s lane, charging the lane `weight`. */
  shift(key: string, weight: number): T | undefined {
    const lane = this.lanes.get(key);
    const item = lane?.items.shift();
    if (!lane || item === undefined) return undefined;
    this.count--;
    this.vnow = lane.vtime;
    lane.vtime += weight;
    if (!this.count) this.lanes.clear();
    return item;
  }

  remove(key: string, item: T): boolean {
    const lane = this.lanes.get(key);
    const i = lane ? lane.items.indexOf(item) : -1;
    if (!lane || i < 0) return false;
    lane.items.splice(i, 1);
    this.count--;
    if (!this.count) this.lanes.clear();
    return true;
  }
}

export class NodeServeBudget {
  private readonly blocks: Bucket;
  private readonly bytes: Bucket;
  /**
   * Two levels of fair queueing: a group's lane holds a mark per chunk waiting in it, and its
   * peers' lanes the chunks themselves.
   */
  private readonly groups = new FairLanes<true>();
  private readonly peersOf = new Map<string, FairLanes<Waiter>>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  private readonly o: NodeServeBudgetOptions;
  private readonly now: () => number;
  constructor(o: NodeServeBudgetOptions = DEFAULT_NODE_SERVE_BUDGET) {
    this.o = o;
    this.now = o.now ?? (() => performance.now());
    this.blocks = new Bucket(o.blocks, this.now());
    this.bytes = new Bucket(o.bytes, this.now());
  }

  /** Chunks waiting for their turn now. */
  get queued(): number {
    return this.groups.size;
  }

  /** Address groups with a chunk waiting now. */
  get groupsWaiting(): number {
    return this.groups.lanesWaiting;
  }

  /**
   * Takes one chunk's cost (`blocks`, `bytes`) for `peer` of address group `group`: undefined
   * when taken at once, else a promise that resolves at its turn. Refused with NodeBusyError
   * when the queue is full or the turn does not come within `maxWaitMs`; rejected with the
   * signal's reason when it aborts first.
   */
  take(group: string, peer: string, cost: Cost, signal?: AbortSignal): Promise<void> | undefined {
    if (this.groups.size === 0 && this.wait(cost) === 0) {
      this.charge(cost);
      return undefined;
    }
    if (this.groups.size >= this.o.maxWaiting)
      throw new NodeBusyError(
        'queue-full',
        `node-wide serve queue full (${this.groups.size} chunks waiting)`,
      );
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { cost, queuedAt: this.now(), resolve, reject, done: () => {} };
      const timeout = setTimeout(() => {
        if (this.drop(group, peer, w))
          reject(new NodeBusyError('wait', `node-wide serve budget: no turn within ${this.o.maxWaitMs} ms`));
      }, this.o.maxWaitMs);
      const onAbort = () => {
        if (this.drop(group, peer, w)) reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      w.done = () => {
        clearTimeout(timeout);
        signal?.removeEventListener('abort', onAbort);
      };
      let peers = this.peersOf.get(group);
      if (!peers) {
        peers = new FairLanes<Waiter>();
        this.peersOf.set(group, peers);
      }
      peers.push(peer, w);
      this.groups.push(group, true);
      this.pump();
    });
  }

  private wait(cost: Cost): number {
    const now = this.now();
    return Math.max(this.blocks.msUntil(cost.blocks, now), this.bytes.msUntil(cost.bytes, now));
  }

  private charge(cost: Cost): void {
    this.blocks.take(cost.blocks);
    this.bytes.take(cost.bytes);
  }

  /** Removes a waiter that gave up; false if it was already served. */
  private drop(group: string, peer: string, w: Waiter): boolean {
    const peers = this.peersOf.get(group);
    if (!peers?.remove(peer, w)) return false;
    this.groups.remove(group, true);
    if (!peers.size) this.peersOf.delete(group);
    w.done();
    this.pump();
    return true;
  }

  /** Lets waiting chunks through in fair order while the buckets allow; then waits for a refill. */
  private pump(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (;;) {
      const group = this.groups.next();
      if (group === undefined) return;
      const peers = this.peersOf.get(group)!;
      const peer = peers.next()!;
      const w = peers.head(peer)!;
      const ms = this.wait(w.cost);
      if (ms > 0) {
        this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(ms)));
        return;
      }
      this.charge(w.cost);
      const weight = w.cost.bytes + BLOCK_WEIGHT * w.cost.blocks;
      peers.shift(peer, weight);
      this.groups.shift(group, weight);
      // A group's peer lanes (and their debts) last while it has chunks waiting.
      if (!peers.size) this.peersOf.delete(group);
      w.done();
      this.o.onWait?.(this.now() - w.queuedAt);
      w.resolve();
    }
  }
}
