/**
 * Bans by address. A peer id costs nothing to mint, so a banned peer can come back under a new
 * one from the same machine; each ban of a peer seen at an IP adds one to that IP's count, the
 * count halves every half-life, and while it exceeds `threshold − 1` the IP itself is refused
 * (so the threshold-th ban in quick succession bans it). A single ban (an honest node behind a
 * NAT shared with a bad one) does not block the address by default; two in a row do, for about
 * a half-life, three for log2(3) ≈ 1.6 half-lives, and so on. Exempt ranges
 * (loopback by default: every test and demo node shares 127.0.0.1) are never banned. Pure: the
 * caller supplies the clock. The table is bounded; the weakest entries go first. IPv6 addresses
 * count by their /64 (`capKey`, as the per-IP caps do): one host usually holds a whole /64 and
 * can pick a new address in it for every connection.
 */
import { P2P_DEFAULTS, PEERS_DEFAULTS } from '../options.ts';
import { capKey, ipRanges } from './ip-ranges.ts';

export interface AddressBanOptions {
  readonly threshold?: number;
  readonly halfLifeMs?: number;
  readonly maxEntries?: number;
  /** CIDR ranges never banned. */
  readonly exempt?: readonly string[];
}

interface Entry {
  weight: number;
  at: number;
}

export class AddressBans {
  private readonly entries = new Map<string, Entry>();
  readonly threshold: number;
  readonly halfLifeMs: number;
  readonly maxEntries: number;
  /** The decayed count above which the address is refused. */
  private readonly level: number;
  private readonly exempt: (ip: string) => boolean;

  constructor(o: AddressBanOptions = {}) {
    this.threshold = o.threshold ?? PEERS_DEFAULTS.addressBanThreshold;
    this.halfLifeMs = o.halfLifeMs ?? PEERS_DEFAULTS.addressBanHalfLifeMs;
    this.maxEntries = o.maxEntries ?? PEERS_DEFAULTS.maxBannedAddresses;
    this.exempt = ipRanges(o.exempt ?? P2P_DEFAULTS.ipLimitExempt);
    // With a threshold of 1 a single ban holds the address for one half-life.
    this.level = Math.max(this.threshold - 1, 0.5);
  }

  /**
   * A peer seen at `ip` was banned. Returns true if the address is banned now. `count` above 1
   * weighs one ban as several (a ban the peer's id could not be held for bans the address).
   */
  record(ip: string, now: number, count = 1): boolean {
    if (this.exempt(ip)) return false;
    const weight = this.weight(ip, now) + count;
    const key = capKey(ip);
    this.entries.delete(key); // re-inserted last: the map's order is least recently banned first
    this.entries.set(key, { weight, at: now });
    if (this.entries.size > this.maxEntries) this.prune(now);
    return weight > this.level;
  }

  isBanned(ip: string, now: number): boolean {
    return this.weight(ip, now) > this.level;
  }

  /** The decayed ban count of an address (of its /64 for IPv6). */
  weight(ip: string, now: number): number {
    return this.weightOf(capKey(ip), now);
  }

  private weightOf(key: string, now: number): number {
    const e = this.entries.get(key);
    if (!e) return 0;
    return e.weight * 0.5 ** (Math.max(0, now - e.at) / this.halfLifeMs);
  }

  /** When a banned address is admitted again, if nothing else happens (ms since the epoch). */
  bannedUntil(ip: string, now: number): number | undefined {
    return this.bannedUntilOf(capKey(ip), now);
  }

  private bannedUntilOf(key: string, now: number): number | undefined {
    const e = this.entries.get(key);
    if (!e || !(this.weightOf(key, now) > this.level)) return undefined;
    return Math.ceil(e.at + this.halfLifeMs * Math.log2(e.weight / this.level));
  }

  get size(): number {
    return this.entries.size;
  }

  /** Addresses banned now (an IPv6 one as its /64), with the time each ban ends. */
  banned(now: number): { address: string; until: number }[] {
    const out: { address: string; until: number }[] = [];
    for (const ip of this.entries.keys()) {
      const until = this.bannedUntilOf(ip, now);
      if (until !== undefined) out.push({ address: ip, until });
    }
    return out;
  }

  /**
   * Drops entries that have decayed below a tenth of a ban, then, while over the bound, the
   * entries that are not banned, and last the banned ones nearest their end.
   */
  prune(now: number): void {
    for (const [key] of this.entries) if (this.weightOf(key, now) < 0.1) this.entries.delete(key);
    if (this.entries.size <= this.maxEntries) return;
    const ranked = [...this.entries.keys()].sort((a, b) => this.weightOf(a, now) - this.weightOf(b, now));
    for (const ip of ranked.slice(0, this.entries.size - this.maxEntries)) this.entries.delete(ip);
  }
}
