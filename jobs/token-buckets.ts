/**
 * Token buckets by key, bounded in keys (the longest idle goes first): the one rate-limit
 * primitive of the gateway's callers (gateway/rate-limit.ts) and the collector's reporting nodes
 * (jobs/collector/report-rate.ts). Pure apart from the clock it is given.
 */
export interface BucketLimit {
  /** Tokens added per second, up to `burst`. */
  readonly perSecond: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(maxKeys: number, now: () => number = Date.now) {
    this.maxKeys = maxKeys;
    this.now = now;
  }

  /** 0 when a token was taken from `key`'s bucket, else the seconds until one could be. */
  take(key: string, limit: BucketLimit): number {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(limit.burst, b.tokens + ((now - b.at) / 1000) * limit.perSecond);
      b.at = now;
      // Re-inserted: the map's order is last use, so the bound drops the longest idle.
      this.buckets.delete(key);
    } else {
      b = { tokens: limit.burst, at: now };
      while (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / limit.perSecond));
  }

  get size(): number {
    return this.buckets.size;
  }
}
