/**
 * A per-key rate limiter after the Generic Cell Rate Algorithm (GCRA), as Lodestar's reqresp
 * `RateLimiterGRCA`: a quota of `limit` tokens per `periodMs`, with bursts up to the whole quota.
 * Each key keeps one number, its theoretical arrival time (TAT): a request of n tokens moves it
 * n emission intervals later, and is allowed while the TAT stays within one period of now.
 * Unlike a fixed window, a peer cannot spend two quotas across a window boundary. Pure apart
 * from the injected clock; memory is one number per key seen within the last period.
 */
export interface RateQuota {
  /** Tokens per period. */
  readonly limit: number;
  readonly periodMs: number;
}

export class RateLimiterGRCA<Key = string> {
  private readonly emissionMs: number;
  private readonly tat = new Map<Key, number>();
  private calls = 0;

  readonly quota: RateQuota;
  private readonly now: () => number;
  constructor(quota: RateQuota, now: () => number = () => performance.now()) {
    this.quota = quota;
    this.now = now;
    if (!(quota.limit > 0) || !(quota.periodMs > 0)) throw new Error('rate quota must be positive');
    this.emissionMs = quota.periodMs / quota.limit;
  }

  /** Takes `tokens` from `key`'s quota if they are available; returns whether it did. */
  allows(key: Key, tokens = 1): boolean {
    if (!(tokens > 0)) throw new Error(`tokens must be positive, not ${tokens}`);
    const now = this.now();
    if (++this.calls % 1024 === 0) this.prune(now);
    const newTat = Math.max(now, this.tat.get(key) ?? now) + tokens * this.emissionMs;
    if (newTat - this.quota.periodMs > now) return false;
    this.tat.set(key, newTat);
    return true;
  }

  /** Tokens `key` could take now. */
  available(key: Key): number {
    const now = this.now();
    const tat = Math.max(now, this.tat.get(key) ?? now);
    return Math.floor((now + this.quota.periodMs - tat) / this.emissionMs + 1e-9);
  }

  /** Keys tracked (bounded by the keys active within the last period). */
  get size(): number {
    return this.tat.size;
  }

  /** Forgets keys whose quota is whole again: they would start afresh anyway. */
  prune(now = this.now()): void {
    for (const [k, t] of this.tat) if (t <= now) this.tat.delete(k);
  }
}
