import { RateLimiterGRCA, type RateQuota } from '../p2p/rate-limiter.ts';

/**
 * One admission budget that all peers share (`limit` entries per `periodMs`), divided fairly
 * among the peers using it. A single bucket alone is first come, first served: an honest relay
 * passing on a stranger's junk within its own per-peer rate is never at fault, yet it can take
 * the whole budget every period, and an honest peer's entries behind it are all refused.
 *
 * Here a take must leave a reserve in the bucket. Every take leaves the share a peer not yet
 * seen would get (limit ÷ (active sources + 1)), so a newcomer finds tokens even right after a
 * burst. A source over its fair share (limit ÷ active sources, used within the last period)
 * must also leave the part of their share the others have not used: it borrows only what
 * nobody else is owed, and refills go first to those below their share (max-min fairness over
 * a period). Sources within their share are not held to each other's unused shares, or equal
 * peers would each block the other from its own. A lone sender still gets the whole rate
 * sustained; only its burst is kept to what leaves a newcomer its share. Several flooding peers
 * get their shares between them, never the share of an honest one.
 *
 * Use per source is a sliding-window count over one period. Memory: one record per source that
 * took tokens within the last two periods, at most `maxSources` (a peer beyond them is refused
 * until older ones expire; there are far fewer connections).
 */
export type ShareRefusal = 'rate' | 'share';

interface Use {
  /** Index of the period `current` counts (now ÷ periodMs). */
  window: number;
  previous: number;
  current: number;
}

export class FairShareBudget {
  private readonly bucket: RateLimiterGRCA<'all'>;
  private readonly uses = new Map<string, Use>();
  private takes = 0;

  readonly quota: RateQuota;
  private readonly now: () => number;
  readonly maxSources;
  constructor(quota: RateQuota, now: () => number = () => performance.now(), maxSources = 4_096) {
    this.quota = quota;
    this.now = now;
    this.maxSources = maxSources;
    this.bucket = new RateLimiterGRCA(quota, now);
  }

  /** Sources that took tokens within the last period. */
  get activeSources(): number {
    const now = this.now();
    let n = 0;
    for (const u of this.uses.values()) if (this.used(u, now) > 0) n++;
    return n;
  }

  /** Tokens `source` took within the last period (sliding window). */
  usage(source: string): number {
    const u = this.uses.get(source);
    return u ? this.used(u, this.now()) : 0;
  }

  /**
   * Takes one token for `source` if the bucket has one beyond the others' reserve. Refusals:
   * `rate` when the bucket is empty, `share` when what is left is owed to other sources.
   */
  take(source: string): ShareRefusal | undefined {
    const now = this.now();
    if (++this.takes % 1024 === 0) this.prune(now);
    const available = this.bucket.available('all');
    if (available < 1) return 'rate';
    let others = 0;
    const otherUses: number[] = [];
    for (const [s, u] of this.uses) {
      if (s === source) continue;
      const used = this.used(u, now);
      if (used > 0) {
        others++;
        otherUses.push(used);
      }
    }
    const share = this.quota.limit / (others + 1);
    let reserve = this.quota.limit / (others + 2);
    let u = this.uses.get(source);
    if ((u ? this.used(u, now) : 0) + 1 > share)
      for (const used of otherUses) reserve += Math.max(0, share - used);
    if (available - 1 < reserve) return 'share';
    if (!u) {
      if (this.uses.size >= this.maxSources) this.prune(now);
      if (this.uses.size >= this.maxSources) return 'share';
      u = { window: this.windowOf(now), previous: 0, current: 0 };
      this.uses.set(source, u);
    }
    if (!this.bucket.allows('all')) return 'rate';
    this.roll(u, now);
    u.current++;
    return undefined;
  }

  private windowOf(now: number): number {
    return Math.floor(now / this.quota.periodMs);
  }

  /** Moves `u` to the period `now` falls in. */
  private roll(u: Use, now: number): void {
    const w = this.windowOf(now);
    if (w === u.window) return;
    u.previous = w === u.window + 1 ? u.current : 0;
    u.current = 0;
    u.window = w;
  }

  /** The count of the last period: all of this period's, and the previous one's pro rata. */
  private used(u: Use, now: number): number {
    this.roll(u, now);
    const elapsed = (now % this.quota.periodMs) / this.quota.periodMs;
    return u.current + u.previous * (1 - elapsed);
  }

  private prune(now: number): void {
    for (const [s, u] of this.uses) if (this.used(u, now) === 0) this.uses.delete(s);
  }
}
