/**
 * Per-caller token buckets: each bearer token (by its configured name) and, when enabled, each
 * anonymous client address gets `perSecond` requests a second with bursts up to `burst`. Over
 * the limit a request gets 429 with Retry-After before anything is parsed. The buckets of
 * anonymous addresses are bounded (oldest dropped), so a stranger cycling addresses holds at
 * most `maxKeys` of them.
 */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export interface RateLimiterOptions {
  /** Per token; undefined = no limit. */
  readonly token?: RateLimit;
  /** Per anonymous client address; undefined = no limit. */
  readonly anonymous?: RateLimit;
  readonly maxKeys?: number;
  readonly now?: () => number;
}

/** 50 requests a second with bursts of 100, per token: a dashboard polls far less. */
export const DEFAULT_TOKEN_RATE: RateLimit = { perSecond: 50, burst: 100 };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(private readonly o: RateLimiterOptions) {
    this.maxKeys = o.maxKeys ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  /** Takes one request for `key`: 0 when allowed, else the seconds until one would be. */
  take(kind: 'token' | 'anonymous', key: string): number {
    const limit = kind === 'token' ? this.o.token : this.o.anonymous;
    if (!limit) return 0;
    const id = `${kind}:${key}`;
    const now = this.now();
    let b = this.buckets.get(id);
    if (b) {
      b.tokens = Math.min(limit.burst, b.tokens + ((now - b.at) / 1000) * limit.perSecond);
      b.at = now;
      // Re-inserted: the map's order is last use, so the bound drops the longest idle.
      this.buckets.delete(id);
    } else {
      b = { tokens: limit.burst, at: now };
      while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(id, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / limit.perSecond);
  }
}
