import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { SealedEntry } from '../chain/types.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { RateLimiterGRCA, type RateQuota } from '../p2p/rate-limiter.ts';
import { FairShareBudget } from './fair-share.ts';
import { type AddResult, type EntrySource, type FullQuota, SOURCE } from './mempool.ts';

/**
 * The way into the mempool for entries from the network and the API. Two jobs:
 *
 * - A per-peer admission rate (GCRA): entries beyond it are refused before any signature check
 *   or queueing, as `mempool-full` with quota `peer-rate` (gossip ignores them), and every
 *   `excessPerPenalty` (10) of them costs the peer a high-tolerance penalty: 500 past the rate
 *   get it banned. Honest relays stay under it: all peers together share one admission rate of
 *   the same size, so no node relays faster than its neighbours admit. That shared rate is
 *   divided fairly among the peers using it (FairShareBudget): a relay passing on a stranger's
 *   junk within its own rate is not at fault and is not penalised, but it gets its share and
 *   what others leave, never another peer's share (refused as `share`). Local entries (this
 *   node's API and its own) are outside both rates.
 * - Batching: entries that arrive within `maxWaitMs` (50 ms) of the first are committed together (one
 *   store transaction, one fsync, for up to `maxBatch` entries). Each caller's promise resolves
 *   only after its batch is on disk, so nothing is relayed (gossip accept) before it is stored.
 *
 * Memory is bounded: at most `maxQueued` entries wait; beyond that they are refused.
 *
 * A committed batch is answered `resolvePerTurn` (32) callers per turn of the event loop: each
 * answer lets gossipsub relay the entry (an RPC, a yamux frame, a noise seal and a socket write
 * each, ~0.15 ms), and 256 of them in one chain of microtasks held the loop for 40 ms on a
 * quiet host and for seconds on a loaded one.
 */
export interface AdmissionDeps {
  /** Adds entries in one store transaction; results in order. */
  commit(items: readonly { entry: SealedEntry; source: EntrySource }[]): Promise<AddResult[]>;
  penalise(peer: string, action: PeerAction, reason: string): void;
  /** Outcomes by kind, for metrics (added, duplicate, rate-limited, full:<quota>, invalid:<reason>). */
  observe?(outcome: string): void;
}

export interface AdmissionOptions {
  /** Entries per peer and period (default 1,000 per 10 s). */
  readonly peerRate?: RateQuota;
  /**
   * Entries from all peers together (default 80% of the per-peer rate). What a node admits from
   * peers it relays, so a node never relays more than its neighbours' per-peer rate and an
   * honest relay is never penalised for a flood it passed on; a flood takes the shared budget
   * only until its sender is banned, and what other peers had refused meanwhile comes back by
   * reconciliation.
   */
  readonly globalRate?: RateQuota;
  /** Peers tracked for their share of the global rate at most (default 4,096). */
  readonly maxSharers?: number;
  readonly maxBatch?: number;
  readonly maxWaitMs?: number;
  readonly maxQueued?: number;
  readonly excessPerPenalty?: number;
  readonly resolvePerTurn?: number;
  readonly now?: () => number;
}

interface Waiting {
  readonly entry: SealedEntry;
  readonly source: EntrySource;
  resolve(r: AddResult): void;
  reject(err: unknown): void;
}

export class EntryAdmission {
  private readonly rate: RateLimiterGRCA;
  private readonly global: FairShareBudget;
  private readonly excess = new Map<string, number>();
  private queue: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  readonly maxQueued: number;
  readonly excessPerPenalty: number;
  readonly resolvePerTurn: number;
  /** Batches committed (each one store transaction). */
  batches = 0;

  private readonly deps: AdmissionDeps;
  constructor(deps: AdmissionDeps, opts: AdmissionOptions = {}) {
    this.deps = deps;
    const peerRate = opts.peerRate ?? { limit: 1_000, periodMs: 10_000 };
    this.rate = new RateLimiterGRCA(peerRate, opts.now);
    // 80% of the per-peer rate: what this node relays stays under its neighbours' per-peer rate
    // with room for its own entries and for timing jitter.
    this.global = new FairShareBudget(
      opts.globalRate ?? { limit: Math.floor(peerRate.limit * 0.8), periodMs: peerRate.periodMs },
      opts.now,
      opts.maxSharers,
    );
    this.maxBatch = opts.maxBatch ?? 256;
    this.maxWaitMs = opts.maxWaitMs ?? 50;
    this.maxQueued = opts.maxQueued ?? 4_096;
    this.excessPerPenalty = opts.excessPerPenalty ?? 10;
    this.resolvePerTurn = opts.resolvePerTurn ?? 32;
  }

  /**
   * Admits one entry from `source` (a peer id, or SOURCE.local). `blame` (default true) says
   * the peer chose to send it: gossip. Entries a reconciliation brings are ones we asked for
   * (the set difference), so going over the rate there refuses them without a penalty.
   */
  submit(entry: SealedEntry, source: EntrySource = SOURCE.local, blame = true): Promise<AddResult> {
    const refused = this.ticket(source, blame);
    return refused ? Promise.resolve(refused) : this.enqueue(entry, source);
  }

  /**
   * The rates alone, taken before anything else about an entry is known: gossip asks here before
   * it decodes a message or queues its validation, so a flood over the rate costs a counter
   * each, and its sender is banned after the 500th however far behind the event loop is.
   * Returns the refusal, or undefined when the entry may be `enqueue`d (its share is taken).
   */
  ticket(source: EntrySource, blame = true): AddResult | undefined {
    if (source !== SOURCE.local && !this.rate.allows(source)) {
      const n = blame ? (this.excess.get(source) ?? 0) + 1 : 0;
      if (blame) this.excess.set(source, n % this.excessPerPenalty);
      if (n >= this.excessPerPenalty)
        this.deps.penalise(
          source,
          'high-tolerance',
          `entries over the admission rate (${this.rate.quota.limit} per ${this.rate.quota.periodMs / 1000} s)`,
        );
      if (this.excess.size > 10_000) this.excess.clear();
      return this.refuse('peer-rate', 'entries over the per-peer admission rate');
    }
    if (source === SOURCE.local) return undefined;
    const refused = this.global.take(source);
    if (refused === 'rate') return this.refuse('rate', 'entries over the admission rate for all peers');
    if (refused === 'share')
      return this.refuse('share', "entries over this peer's share of the admission rate for all peers");
    return undefined;
  }

  /** Queues an entry that got its `ticket` for the next batch; resolves once that is stored. */
  enqueue(entry: SealedEntry, source: EntrySource): Promise<AddResult> {
    if (this.queue.length >= this.maxQueued)
      return Promise.resolve(this.refuse('queue', 'admission queue full'));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, source, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.maxWaitMs);
    });
  }

  /** Admits several entries from one source (a reconciliation frame); results in order. */
  submitMany(entries: readonly SealedEntry[], source: EntrySource, blame = true): Promise<AddResult[]> {
    return Promise.all(entries.map((e) => this.submit(e, source, blame)));
  }

  /**
   * Commits whatever waits now (tests, shutdown). Directly, not through a timer: awaiting the
   * previous commit while re-arming a zero timeout spun in microtasks and never let it fire.
   */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(() => this.commitBatches());
    await this.flushing;
  }

  private refuse(quota: FullQuota, message: string): AddResult {
    this.deps.observe?.(`full:${quota}`);
    return { status: 'rejected', reason: 'mempool-full', message, quota };
  }

  private flushSoon(ms: number): void {
    if (this.timer && ms > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flushing = this.flushing.then(() => this.commitBatches());
    }, ms);
  }

  private async commitBatches(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.maxBatch);
      let results: AddResult[];
      try {
        results = await this.deps.commit(batch);
      } catch (err) {
        for (const w of batch) w.reject(err);
        continue;
      }
      this.batches++;
      for (let i = 0; i < batch.length; i++) {
        if (i > 0 && i % this.resolvePerTurn === 0) await yieldToLoop();
        const r = results[i]!;
        this.deps.observe?.(
          r.status === 'rejected'
            ? r.reason === 'mempool-full'
              ? `full:${r.quota ?? 'pool'}`
              : `invalid:${r.reason}`
            : r.status,
        );
        batch[i]!.resolve(r);
      }
    }
  }
}
