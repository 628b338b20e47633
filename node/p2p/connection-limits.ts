/**
 * Sybil and eclipse limits on connections, as gater hooks libp2p calls before any crypto runs.
 * js-libp2p 3 has a global `maxConnections`, a cap on upgrades in flight and a per-host rate of
 * new connections, but no cap on concurrent connections per IP and no split between inbound and
 * outbound slots (go-libp2p's resource manager has both). So:
 *
 * - at most `maxInboundPerIp` inbound connections from one IP address (go-libp2p allows 8 per
 *   IPv4), so one machine cannot fill the node's slots with a crowd of fresh peer ids; an IPv6
 *   host usually owns a whole /64, so IPv6 addresses are counted per /64;
 * - inbound connections never take the last `reservedOutbound` of `maxConnections`, so the
 *   node's own dials (bootstrap peers, peers it chose) always find room: strangers who fill
 *   every inbound slot still cannot eclipse it;
 * - addresses banned by AddressBans are refused in both directions.
 *
 * Exempt ranges (loopback by default) skip the per-IP cap and address bans, not the slot limit:
 * the tests and the demo run every node on 127.0.0.1. Relayed connections (/p2p-circuit) carry
 * the relay's address, not the peer's, so they count toward the inbound slots only.
 *
 * Each accepted inbound connection is counted from the gater's yes until its raw connection
 * closes (upgrade failed, refused by a later gater hook, or closed after use), so pending
 * upgrades count too. It composes: a gater that also consults the roster calls these hooks
 * first and its own after.
 */

import type { MultiaddrConnection, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { Counter, type Registry } from 'prom-client';
import { P2P_DEFAULTS, type P2pLimits } from '../options.ts';
import type { AddressBans } from './address-bans.ts';
import { capKey, ipRanges, plainIp } from './ip-ranges.ts';

export const REFUSAL = {
  perIpCap: 'per-ip-cap',
  inboundSlotsFull: 'inbound-slots-full',
  addressBanned: 'address-banned',
} as const;
export type RefusalCode = (typeof REFUSAL)[keyof typeof REFUSAL];

/** Why a connection was refused, typed (libp2p itself only sees "denied"). */
export class ConnectionRefusedError extends Error {
  constructor(
    readonly code: RefusalCode,
    readonly address: string,
  ) {
    super(`connection ${code}: ${address}`);
    this.name = 'ConnectionRefusedError';
  }
}

const CODE_IP4 = 4;
const CODE_IP6 = 41;
const CODE_CIRCUIT = 290;

/** The IP a connection comes from, or undefined for relayed and non-IP connections. */
export function remoteIp(addr: Multiaddr): string | undefined {
  const parts = addr.getComponents();
  if (parts.some((c) => c.code === CODE_CIRCUIT)) return undefined;
  const first = parts[0];
  // IPv4-mapped IPv6 as plain IPv4 (ip-ranges.ts `plainIp`): what address bans are keyed by.
  return first?.value !== undefined && (first.code === CODE_IP4 || first.code === CODE_IP6)
    ? plainIp(first.value)
    : undefined;
}

/** The relay's IP of a relayed connection (/ip4/<relay>/…/p2p-circuit/…), else undefined. */
export function relayIp(addr: Multiaddr): string | undefined {
  const parts = addr.getComponents();
  if (!parts.some((c) => c.code === CODE_CIRCUIT)) return undefined;
  const first = parts[0];
  return first && (first.code === CODE_IP4 || first.code === CODE_IP6) ? first.value : undefined;
}

/** What the per-IP cap counts by (ip-ranges.ts; re-exported for the cap's callers). */
export { capKey };

export interface ConnectionLimitsOptions extends Partial<P2pLimits> {
  readonly addressBans?: AddressBans;
  readonly now?: () => number;
  /** Called with every refusal (metrics, logs). */
  readonly onRefuse?: (err: ConnectionRefusedError) => void;
}

interface Tracked {
  readonly ip: string | undefined;
  readonly conn: MultiaddrConnection;
}

export class ConnectionLimits {
  readonly maxConnections: number;
  readonly reservedOutbound: number;
  readonly maxInboundPerIp: number;
  private readonly exempt: (ip: string) => boolean;
  private readonly inbound = new Set<Tracked>();
  private readonly perIp = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: ConnectionLimitsOptions = {}) {
    this.maxConnections = o.maxConnections ?? P2P_DEFAULTS.maxConnections;
    this.reservedOutbound = o.reservedOutbound ?? P2P_DEFAULTS.reservedOutbound;
    this.maxInboundPerIp = o.maxInboundPerIp ?? P2P_DEFAULTS.maxInboundPerIp;
    if (this.reservedOutbound >= this.maxConnections)
      throw new RangeError('reservedOutbound must leave some connection slots to inbound connections');
    this.exempt = ipRanges(o.ipLimitExempt ?? P2P_DEFAULTS.ipLimitExempt);
    this.now = o.now ?? Date.now;
  }

  /** Inbound slots: all but the reserved outbound ones. */
  get maxInbound(): number {
    return this.maxConnections - this.reservedOutbound;
  }

  /** Inbound connections counted now (pending upgrades included). */
  get inboundCount(): number {
    this.sweep();
    return this.inbound.size;
  }

  /** Inbound connections counted against the cap of `ip` (its /64 for IPv6). */
  inboundFrom(ip: string): number {
    this.sweep();
    return this.perIp.get(capKey(ip)) ?? 0;
  }

  /** Why an inbound connection from `addr` would be refused now, or undefined. */
  check(addr: Multiaddr): RefusalCode | undefined {
    this.sweep();
    const ip = remoteIp(addr);
    const limited = ip !== undefined && !this.exempt(ip);
    if (limited && this.o.addressBans?.isBanned(ip, this.now())) return REFUSAL.addressBanned;
    if (this.inbound.size >= this.maxInbound) return REFUSAL.inboundSlotsFull;
    if (limited && (this.perIp.get(capKey(ip)) ?? 0) >= this.maxInboundPerIp) return REFUSAL.perIpCap;
    return undefined;
  }

  /** Gater hook: true refuses. An accepted connection counts until it closes. */
  denyInboundConnection = (maConn: MultiaddrConnection): boolean => {
    const code = this.check(maConn.remoteAddr);
    if (code) {
      this.o.onRefuse?.(new ConnectionRefusedError(code, maConn.remoteAddr.toString()));
      return true;
    }
    const ip = remoteIp(maConn.remoteAddr);
    const key = ip !== undefined && !this.exempt(ip) ? capKey(ip) : undefined;
    const t: Tracked = { ip: key, conn: maConn };
    this.inbound.add(t);
    if (key) this.perIp.set(key, (this.perIp.get(key) ?? 0) + 1);
    maConn.addEventListener('close', () => this.release(t), { once: true });
    return false;
  };

  /** Gater hook: true refuses dialling out to a banned address. */
  denyOutboundConnection = (_peer: PeerId, maConn: MultiaddrConnection): boolean => {
    const ip = remoteIp(maConn.remoteAddr);
    if (ip === undefined || this.exempt(ip) || !this.o.addressBans?.isBanned(ip, this.now())) return false;
    this.o.onRefuse?.(new ConnectionRefusedError(REFUSAL.addressBanned, maConn.remoteAddr.toString()));
    return true;
  };

  /** Whether the node may open one more outbound connection, with `open` connections in all. */
  canDialOut(open: number): boolean {
    return open < this.maxConnections;
  }

  private release(t: Tracked): void {
    if (!this.inbound.delete(t)) return;
    if (t.ip === undefined) return;
    const n = (this.perIp.get(t.ip) ?? 1) - 1;
    if (n > 0) this.perIp.set(t.ip, n);
    else this.perIp.delete(t.ip);
  }

  /** A raw connection that closed without its event reaching us (seen with WebRTC) is released here. */
  private sweep(): void {
    for (const t of this.inbound) if (t.conn.status !== 'open') this.release(t);
  }
}

/** `cairn_p2p_connections_refused_total{reason}`, fed by ConnectionLimits' onRefuse. */
export function createConnectionLimitMetrics(registry: Registry) {
  const refused = new Counter({
    name: 'cairn_p2p_connections_refused_total',
    help: 'Connections refused by the per-IP cap, the inbound slot limit or an address ban',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  return { refused, onRefuse: (err: ConnectionRefusedError) => refused.inc({ reason: err.code }) };
}
