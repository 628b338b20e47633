/**
 * Admission refusals per remote host, decaying, with a temporary ban once they pile up (the
 * gate's; address-bans.ts counts peers banned at an address instead). A stranger makes a new
 * key for free, so a ban on its peer id alone does not stop it; its address costs more to change.
 * Pure: the caller supplies the clock.
 *
 * The rule, explicitly:
 * - A host is what the per-IP cap counts (ip-ranges.ts `capKey`): an IPv4 address (IPv4-mapped
 *   IPv6 included), an IPv6 /64.
 *   Not an IPv4 /24: a family's LAN is one /24, and one stranger on it must cost only itself.
 * - Exempt ranges are never counted nor banned: loopback by default (every node of a test
 *   cluster or the demo shares 127.0.0.1), plus whatever the node adds: its own bootstrap
 *   addresses (the operator chose them; refusing them could cut a new device off its network).
 * - Only attempts that never passed the handshake count (the gate charges strangers, not a
 *   member revoked or expired while connected: its key answers for that).
 * - A ban refuses unauthenticated attempts only: never a key that passed the handshake before
 *   (remembered here, bounded) nor one the chain records (the gate asks the roster). Many honest
 *   devices can share one address (a NAT, a relay), and a stranger failing from their address
 *   must not lock them out.
 */
import type { Hex } from '../chain/bytes.ts';
import { P2P_DEFAULTS, PEERS_DEFAULTS } from '../options.ts';
import { capKey, ipRanges } from './ip-ranges.ts';

export interface AddressRefusalOptions {
  /** Refusals (decayed) at which the address is banned (default 20). */
  readonly banAt?: number;
  /** Half-life of the refusal count (default 60 s). */
  readonly halfLifeMs?: number;
  /** How long a ban lasts (default 5 min). */
  readonly banMs?: number;
  /** Addresses tracked at most; the least recently refused unbanned are forgotten first (default 4096). */
  readonly maxAddresses?: number;
  /** CIDR ranges never counted nor banned (default: loopback, as for the per-IP cap). */
  readonly exempt?: readonly string[];
  /** Keys remembered as having passed the handshake; the least recent go first (default 4096). */
  readonly maxAdmittedKeys?: number;
}

interface Entry {
  count: number;
  at: number;
  bannedUntil: number;
}

export class AddressRefusals {
  private readonly entries = new Map<string, Entry>();
  private readonly admittedKeys = new Set<Hex>();
  private readonly exempt: (ip: string) => boolean;
  readonly banAt: number;
  readonly halfLifeMs: number;
  readonly banMs: number;
  readonly maxAddresses: number;
  readonly maxAdmittedKeys: number;

  constructor(opts: AddressRefusalOptions = {}) {
    this.banAt = opts.banAt ?? PEERS_DEFAULTS.admissionRefusalsBanAt;
    this.halfLifeMs = opts.halfLifeMs ?? PEERS_DEFAULTS.admissionRefusalsHalfLifeMs;
    this.banMs = opts.banMs ?? PEERS_DEFAULTS.admissionRefusalsBanMs;
    this.maxAddresses = opts.maxAddresses ?? PEERS_DEFAULTS.admissionRefusalsMaxAddresses;
    this.maxAdmittedKeys = opts.maxAdmittedKeys ?? PEERS_DEFAULTS.admissionRefusalsMaxAdmittedKeys;
    this.exempt = ipRanges(opts.exempt ?? P2P_DEFAULTS.ipLimitExempt);
  }

  /**
   * Records one refusal of a never-admitted peer from `ip`, counting `weight` (less than 1 for a
   * refusal that may be our fault, such as one excused while we catch up); returns true when its
   * host is (now) banned.
   */
  refused(ip: string, now: number, weight = 1): boolean {
    if (this.exempt(ip)) return false;
    const host = capKey(ip);
    const e = this.entries.get(host) ?? { count: 0, at: now, bannedUntil: 0 };
    e.count = this.decayed(e, now) + weight;
    e.at = now;
    if (e.count >= this.banAt) e.bannedUntil = Math.max(e.bannedUntil, now + this.banMs);
    // Re-inserted last, so the map's order is least recently refused first.
    this.entries.delete(host);
    this.entries.set(host, e);
    while (this.entries.size > this.maxAddresses) this.evict(now, host);
    return e.bannedUntil > now;
  }

  /** `key` passed the handshake: no address ban refuses it from now on. */
  admitted(key: Hex): void {
    this.admittedKeys.delete(key);
    this.admittedKeys.add(key);
    if (this.admittedKeys.size > this.maxAdmittedKeys)
      this.admittedKeys.delete(this.admittedKeys.values().next().value as Hex);
  }

  /** Whether an attempt by `key` (undefined: unknown) from `ip` is refused for its address now. */
  refuses(ip: string, key: Hex | undefined, now: number): boolean {
    return this.isBanned(ip, now) && !(key !== undefined && this.admittedKeys.has(key));
  }

  isBanned(ip: string, now: number): boolean {
    if (this.exempt(ip)) return false;
    const e = this.entries.get(capKey(ip));
    return e !== undefined && e.bannedUntil > now;
  }

  /** The decayed refusal count of the host `ip` is on (0 when unknown or exempt). */
  count(ip: string, now: number): number {
    const e = this.entries.get(capKey(ip));
    return e && !this.exempt(ip) ? this.decayed(e, now) : 0;
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Forgets the least recently refused host that is not banned; only when every host is banned,
   * the least recently refused one. Never `keep`, the host just refused (else a newcomer to a
   * table full of bans could never build up to one). Refusals from many hosts (a stranger
   * holding many /64s) must not flush a ban they are too cheap to earn. At most `maxAddresses`
   * steps, only when full.
   */
  private evict(now: number, keep: string): void {
    let victim: string | undefined;
    for (const [host, e] of this.entries) {
      if (host === keep) continue;
      if (e.bannedUntil <= now) {
        victim = host;
        break;
      }
      victim ??= host;
    }
    if (victim !== undefined) this.entries.delete(victim);
  }

  private decayed(e: Entry, now: number): number {
    return now > e.at ? e.count * 0.5 ** ((now - e.at) / this.halfLifeMs) : e.count;
  }
}
