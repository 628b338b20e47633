/**
 * Admission refusals per remote IP address, decaying, with a temporary ban once they pile up
 * (the gate's; address-bans.ts counts peers banned at an address instead). A stranger
 * makes a new key for free, so a ban on its peer id alone does not stop it; its address costs
 * more to change. Pure: the caller supplies the clock.
 *
 * An address ban only refuses keys the chain does not record as members: many honest devices
 * can share one address (a NAT, a relay, every node of a loopback cluster), and a stranger
 * must not be able to lock members out by failing from their address.
 */
import { PEERS_DEFAULTS } from '../options.ts';

export interface AddressRefusalOptions {
  /** Refusals (decayed) at which the address is banned (default 20). */
  readonly banAt?: number;
  /** Half-life of the refusal count (default 60 s). */
  readonly halfLifeMs?: number;
  /** How long a ban lasts (default 5 min). */
  readonly banMs?: number;
  /** Addresses tracked at most; the least recently refused are forgotten first (default 4096). */
  readonly maxAddresses?: number;
}

interface Entry {
  count: number;
  at: number;
  bannedUntil: number;
}

export class AddressRefusals {
  private readonly entries = new Map<string, Entry>();
  readonly banAt: number;
  readonly halfLifeMs: number;
  readonly banMs: number;
  readonly maxAddresses: number;

  constructor(opts: AddressRefusalOptions = {}) {
    this.banAt = opts.banAt ?? PEERS_DEFAULTS.admissionRefusalsBanAt;
    this.halfLifeMs = opts.halfLifeMs ?? PEERS_DEFAULTS.admissionRefusalsHalfLifeMs;
    this.banMs = opts.banMs ?? PEERS_DEFAULTS.admissionRefusalsBanMs;
    this.maxAddresses = opts.maxAddresses ?? PEERS_DEFAULTS.admissionRefusalsMaxAddresses;
  }

  /** Records one refusal from `ip`; returns true when the address is (now) banned. */
  refused(ip: string, now: number): boolean {
    const e = this.entries.get(ip) ?? { count: 0, at: now, bannedUntil: 0 };
    e.count = this.decayed(e, now) + 1;
    e.at = now;
    if (e.count >= this.banAt) e.bannedUntil = Math.max(e.bannedUntil, now + this.banMs);
    // Re-inserted last, so the map's order is least recently refused first.
    this.entries.delete(ip);
    this.entries.set(ip, e);
    while (this.entries.size > this.maxAddresses) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return e.bannedUntil > now;
  }

  isBanned(ip: string, now: number): boolean {
    const e = this.entries.get(ip);
    return e !== undefined && e.bannedUntil > now;
  }

  /** The decayed refusal count of `ip` (0 when unknown). */
  count(ip: string, now: number): number {
    const e = this.entries.get(ip);
    return e ? this.decayed(e, now) : 0;
  }

  get size(): number {
    return this.entries.size;
  }

  private decayed(e: Entry, now: number): number {
    return now > e.at ? e.count * 0.5 ** ((now - e.at) / this.halfLifeMs) : e.count;
  }
}
