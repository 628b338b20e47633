import type { SealedEntry } from '../chain/types.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { RateLimiterGRCA, type RateQuota } from '../p2p/rate-limiter.ts';
import { type AddResult, type EntrySource, type FullQuota, SOURCE } from './mempool.ts';

/**
 * The way into the mempool for entries from the network and the API. Two jobs:
 *
 * - A per-peer admission rate (GCRA): entries beyond it are refused before any signature check
 *   or queueing, as `mempool-full` with quota `peer-rate` (gossip ignores them), and every
 *   `excessPerPenalty` of them costs the peer a high-tolerance penalty, so a burst from an honest
 *   relay costs a little and a flood gets the peer banned.
 * - Batching: entries that arrive within `maxWaitMs` of each other are committed together (one
 *   store transaction, one fsync, for up to `maxBatch` entries). Each caller's promise resolves
 *   only after its batch is on disk, so nothing is relayed (gossip accept) before it is stored.
 *
 * Memory is bounded: at most `maxQueued` entries wait; beyond that they are refused.
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
  readonly maxBatch?: number;
  readonly maxWaitMs?: number;
  readonly maxQueued?: number;
  readonly excessPerPenalty?: number;
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
  private readonly excess = new Map<string, number>();
  private queue: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  readonly maxQueued: number;
  readonly excessPerPenalty: number;
  /** Batches committed (each one store transaction). */
  batches = 0;

  constructor(
    private readonly deps: AdmissionDeps,
    opts: AdmissionOptions = {},
  ) {
    this.rate = new RateLimiterGRCA(opts.peerRate ?? { limit: 1_000, periodMs: 10_000 }, opts.now);
    this.maxBatch = opts.maxBatch ?? 256;
    this.maxWaitMs = opts.maxWaitMs ?? 5;
    this.maxQueued = opts.maxQueued ?? 4_096;
    this.excessPerPenalty = opts.excessPerPenalty ?? 50;
  }

  /** Admits one entry from `source` (a peer id, or SOURCE.local). */
  submit(entry: SealedEntry, source: EntrySource = SOURCE.local): Promise<AddResult> {
    if (source !== SOURCE.local && !this.rate.allows(source)) {
      const n = (this.excess.get(source) ?? 0) + 1;
      this.excess.set(source, n % this.excessPerPenalty);
      if (n >= this.excessPerPenalty)
        this.deps.penalise(
          source,
          'high-tolerance',
          `entries over the admission rate (${this.rate.quota.limit} per ${this.rate.quota.periodMs / 1000} s)`,
        );
      if (this.excess.size > 10_000) this.excess.clear();
      return Promise.resolve(this.refuse('peer-rate', 'entries over the per-peer admission rate'));
    }
    if (this.queue.length >= this.maxQueued)
      return Promise.resolve(this.refuse('queue', 'admission queue full'));
    return new Promise((resolve, reject) => {
      this.queue.push({ entry, source, resolve, reject });
      if (this.queue.length >= this.maxBatch) this.flushSoon(0);
      else this.flushSoon(this.maxWaitMs);
    });
  }

  /** Admits several entries from one source (a reconciliation frame); results in order. */
  submitMany(entries: readonly SealedEntry[], source: EntrySource): Promise<AddResult[]> {
    return Promise.all(entries.map((e) => this.submit(e, source)));
  }

  /** Commits whatever waits now (tests, shutdown). */
  async flush(): Promise<void> {
    this.flushSoon(0);
    await this.flushing;
    while (this.queue.length) {
      this.flushSoon(0);
      await this.flushing;
    }
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
      try {
        const results = await this.deps.commit(batch);
        this.batches++;
        batch.forEach((w, i) => {
          const r = results[i]!;
          this.deps.observe?.(
            r.status === 'rejected'
              ? r.reason === 'mempool-full'
                ? `full:${r.quota ?? 'pool'}`
                : `invalid:${r.reason}`
              : r.status,
          );
          w.resolve(r);
        });
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
  }
}
