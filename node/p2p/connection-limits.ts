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
 * the tests and the demo run every node on 127.0.0.1. Nor the cap on upgrades in flight: exempt
 * addresses share one budget (`maxPendingExempt`, half of libp2p's pending slots), since a local
 * stranger can bind any of 127.0.0.0/8 and otherwise held every slot. Relayed connections (/p2p-circuit) carry
 * the relay's address, not the peer's, so they count toward the inbound slots only.
 *
 * Each accepted inbound connection is counted from the gater's yes until its raw connection
 * closes (upgrade failed, refused by a later gater hook, or closed after use), so pending
 * upgrades count too. Pending upgrades are also capped per IP (`maxPendingPerIp`; exempt ranges
 * together `maxPendingExempt`), and node-wide (`maxPendingTotal`): libp2p refuses every inbound
 * connection while `maxIncomingPendingConnections` sit in their upgrade, before any gater hook
 * runs, so that cap is set above ours (P2P_DEFAULTS) and ours is where a full budget evicts: 8
 * hosts x 4 silent sockets used to fill libp2p's 32 with no budget of ours full (attack review
 * of #13), locking every peer out. A connection
 * stops being pending at `denyInboundUpgradedConnection`; one that closes still pending (an idle
 * socket timed out) is counted as abandoned. It composes: a gater that also consults the roster calls these hooks
 * first and its own after.
 */

import { isIP } from 'node:net';
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
  pendingPerIp: 'pending-per-ip',
  pendingTotal: 'pending-total',
} as const;
export type RefusalCode = (typeof REFUSAL)[keyof typeof REFUSAL];

/** Why a connection was refused, typed (libp2p itself only sees "denied"). */
export class ConnectionRefusedError extends Error {
  readonly code: RefusalCode;
  readonly address: string;
  constructor(code: RefusalCode, address: string) {
    super(`connection ${code}: ${address}`);
    this.code = code;
    this.address = address;
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
  /** Upgrades in flight from one non-exempt IP (default P2P_DEFAULTS.maxPendingPerIp). */
  readonly maxPendingPerIp?: number;
  /** Upgrades in flight from all exempt addresses together (default P2P_DEFAULTS.maxPendingExempt). */
  readonly maxPendingExempt?: number;
  /** Upgrades in flight node-wide (default P2P_DEFAULTS.maxPendingTotal; libp2p's own cap sits above it). */
  readonly maxPendingTotal?: number;
  /** Age after which a pending upgrade may be evicted for a new one (P2P_DEFAULTS.pendingEvictableAfterMs). */
  readonly pendingEvictableAfterMs?: number;
  /** The same for one that has sent no byte yet (P2P_DEFAULTS.silentEvictableAfterMs). */
  readonly silentEvictableAfterMs?: number;
  /** A pending upgrade was aborted to make room (its remote address). */
  readonly onEvicted?: (remoteAddr: string) => void;
  readonly addressBans?: AddressBans;
  readonly now?: () => number;
  /** Called with every refusal (metrics, logs). */
  readonly onRefuse?: (err: ConnectionRefusedError) => void;
  /** Called when an inbound connection closes before its upgrade finished. */
  readonly onAbandoned?: (address: string) => void;
}

/** The pending-upgrade key of every exempt address: they share one budget. */
const EXEMPT_PENDING = 'exempt';

interface Tracked {
  /** The per-IP cap's key; undefined when exempt. */
  readonly ip: string | undefined;
  /** The pending cap's key (EXEMPT_PENDING for exempt addresses); undefined for non-IP ones. */
  readonly pendingKey: string | undefined;
  /** Who it counts as inside its budget for fairness (`sourceOf`); undefined for non-IP ones. */
  readonly source: string | undefined;
  readonly conn: MultiaddrConnection;
  pending: boolean;
  /** When its upgrade began (the gater's first look). */
  readonly since: number;
}

export class ConnectionLimits {
  readonly maxConnections: number;
  readonly reservedOutbound: number;
  readonly maxInboundPerIp: number;
  readonly maxPendingPerIp: number;
  readonly maxPendingExempt: number;
  readonly maxPendingTotal: number;
  private readonly exempt: (ip: string) => boolean;
  private readonly inbound = new Map<MultiaddrConnection, Tracked>();
  private readonly perIp = new Map<string, number>();
  private readonly pendingPerIp = new Map<string, number>();
  /** Upgrades in flight node-wide (all budgets, non-IP connections too). */
  private pendingTotal = 0;
  private readonly now: () => number;

  private readonly o: ConnectionLimitsOptions;
  constructor(o: ConnectionLimitsOptions = {}) {
    this.o = o;
    this.maxConnections = o.maxConnections ?? P2P_DEFAULTS.maxConnections;
    this.reservedOutbound = o.reservedOutbound ?? P2P_DEFAULTS.reservedOutbound;
    this.maxInboundPerIp = o.maxInboundPerIp ?? P2P_DEFAULTS.maxInboundPerIp;
    this.maxPendingPerIp = o.maxPendingPerIp ?? P2P_DEFAULTS.maxPendingPerIp;
    this.maxPendingExempt = o.maxPendingExempt ?? P2P_DEFAULTS.maxPendingExempt;
    this.maxPendingTotal = o.maxPendingTotal ?? P2P_DEFAULTS.maxPendingTotal;
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
    if (ip !== undefined) {
      const max = limited ? this.maxPendingPerIp : this.maxPendingExempt;
      if ((this.pendingPerIp.get(this.pendingKey(ip)) ?? 0) >= max) return REFUSAL.pendingPerIp;
    }
    if (this.pendingTotal >= this.maxPendingTotal) return REFUSAL.pendingTotal;
    return undefined;
  }

  /** Upgrades in flight node-wide. */
  get pendingCount(): number {
    this.sweep();
    return this.pendingTotal;
  }

  /** Upgrades in flight counted with `ip`'s (its host's; every exempt address's together). */
  pendingFrom(ip: string): number {
    this.sweep();
    return this.pendingPerIp.get(this.pendingKey(ip)) ?? 0;
  }

  private pendingKey(ip: string): string {
    return this.exempt(ip) ? EXEMPT_PENDING : capKey(ip);
  }

  /** Gater hook: true refuses. An accepted connection counts until it closes. */
  denyInboundConnection = (maConn: MultiaddrConnection): boolean => {
    let code = this.check(maConn.remoteAddr);
    if (
      code === REFUSAL.pendingPerIp &&
      this.evictLongestPending(
        this.pendingKey(remoteIp(maConn.remoteAddr)!),
        sourceOf(remoteIp(maConn.remoteAddr)!),
      )
    )
      code = this.check(maConn.remoteAddr);
    // The node-wide total is full while the newcomer's own budget has room: the budget holding
    // most gives a place up (its own, if that is the newcomer's).
    if (code === REFUSAL.pendingTotal && this.evictLongestPending(undefined))
      code = this.check(maConn.remoteAddr);
    if (code) {
      this.o.onRefuse?.(new ConnectionRefusedError(code, maConn.remoteAddr.toString()));
      return true;
    }
    const ip = remoteIp(maConn.remoteAddr);
    const key = ip !== undefined && !this.exempt(ip) ? capKey(ip) : undefined;
    const pendingKey = ip === undefined ? undefined : this.pendingKey(ip);
    const source = ip === undefined ? undefined : sourceOf(ip);
    const t: Tracked = { ip: key, pendingKey, source, conn: maConn, pending: true, since: this.now() };
    this.inbound.set(maConn, t);
    if (key) this.perIp.set(key, (this.perIp.get(key) ?? 0) + 1);
    if (pendingKey) this.pendingPerIp.set(pendingKey, (this.pendingPerIp.get(pendingKey) ?? 0) + 1);
    this.pendingTotal++;
    maConn.addEventListener('close', () => this.release(t), { once: true });
    return false;
  };

  /** Gater hook (never refuses): the connection finished noise and yamux, so it is no longer pending. */
  denyInboundUpgradedConnection = (_peer: PeerId, maConn: MultiaddrConnection): boolean => {
    const t = this.inbound.get(maConn);
    if (t) this.settle(t);
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

  /**
   * Makes room in a full pending budget (`key`'s, or node-wide when undefined) by aborting one
   * pending upgrade. Only one past its age may go (young upgrades are honest ones still in their
   * handshake): pendingEvictableAfterMs, or silentEvictableAfterMs for a socket that has sent no
   * byte, since a dialer sends its multistream-select header with its first packet. A stranger
   * replacing each silent socket just past 500 ms kept all 16 loopback places young (1 of 10
   * honest dials, attack review of #13); past 200 ms most of its places are fair game. Node-wide,
   * the place comes from the budget holding most upgrades (one host's silent sockets before
   * another's lone dial); then silent before talking, then the oldest. True when one was evicted.
   */
  private evictLongestPending(key: string | undefined, newcomer?: string): boolean {
    const after = this.o.pendingEvictableAfterMs ?? P2P_DEFAULTS.pendingEvictableAfterMs;
    const silentAfter = this.o.silentEvictableAfterMs ?? P2P_DEFAULTS.silentEvictableAfterMs;
    const now = this.now();
    if (key !== undefined && newcomer !== undefined && this.evictUnfair(key, newcomer)) return true;
    let oldest: Tracked | undefined;
    let rank: readonly [number, number] = [0, 0];
    for (const t of this.inbound.values()) {
      if (!t.pending || (key !== undefined && t.pendingKey !== key)) continue;
      const silent = bytesRead(t.conn) === 0;
      if (now - t.since < (silent ? silentAfter : after)) continue;
      const held =
        key === undefined && t.pendingKey !== undefined ? (this.pendingPerIp.get(t.pendingKey) ?? 0) : 0;
      const r = [held, silent ? 1 : 0] as const;
      const better =
        !oldest ||
        r[0] > rank[0] ||
        (r[0] === rank[0] && (r[1] > rank[1] || (r[1] === rank[1] && t.since < oldest.since)));
      if (better) {
        oldest = t;
        rank = r;
      }
    }
    if (!oldest) return false;
    this.evict(oldest);
    return true;
  }

  /**
   * Inside one shared budget (all of loopback's), the sources (`sourceOf`: a /24 of 127/8) take
   * places fairly: a newcomer whose source holds fewer than another's by two or more takes the
   * oldest silent place of the source holding most, whatever its age. A local stranger's sockets
   * from one /24 thus cannot keep out a peer dialling from another, however it times them; what
   * is left to it is a race it shares its own source with.
   */
  private evictUnfair(key: string, newcomer: string): boolean {
    const held = new Map<string, number>();
    for (const t of this.inbound.values())
      if (t.pending && t.pendingKey === key && t.source !== undefined)
        held.set(t.source, (held.get(t.source) ?? 0) + 1);
    if (held.size === 0) return false;
    const mine = held.get(newcomer) ?? 0;
    let most: string | undefined;
    for (const [src, n] of held) if (n > mine + 1 && (most === undefined || n > held.get(most)!)) most = src;
    if (most === undefined) return false;
    let oldest: Tracked | undefined;
    for (const t of this.inbound.values())
      if (t.pending && t.pendingKey === key && t.source === most && bytesRead(t.conn) === 0)
        if (!oldest || t.since < oldest.since) oldest = t;
    if (!oldest) return false;
    this.evict(oldest);
    return true;
  }

  private evict(t: Tracked): void {
    this.o.onEvicted?.(t.conn.remoteAddr.toString());
    // Counted as evicted, not abandoned: released before the close event arrives.
    this.inbound.delete(t.conn);
    this.settle(t);
    if (t.ip !== undefined) decrement(this.perIp, t.ip);
    t.conn.abort(new Error('pending upgrade evicted: its place went to a newer connection'));
  }

  private settle(t: Tracked): void {
    if (!t.pending) return;
    t.pending = false;
    this.pendingTotal--;
    if (t.pendingKey !== undefined) decrement(this.pendingPerIp, t.pendingKey);
  }

  private release(t: Tracked): void {
    if (this.inbound.get(t.conn) !== t) return;
    this.inbound.delete(t.conn);
    if (t.pending) this.o.onAbandoned?.(t.conn.remoteAddr.toString());
    this.settle(t);
    if (t.ip !== undefined) decrement(this.perIp, t.ip);
  }

  /** A raw connection that closed without its event reaching us (seen with WebRTC) is released here. */
  private sweep(): void {
    for (const t of this.inbound.values()) if (t.conn.status !== 'open') this.release(t);
  }
}

/**
 * The source an upgrade counts as inside its pending budget: an IPv4 address's /24 (for the
 * shared exempt budget: a local stranger can bind every address of 127/8, rarely worth more
 * than its own /24 to one honest dialler from 127.0.0.1), an IPv6 one's /64.
 */
function sourceOf(ip: string): string {
  const plain = plainIp(ip);
  if (isIP(plain) === 4) return `${plain.slice(0, plain.lastIndexOf('.'))}.0/24`;
  return plain === '::1' ? plain : capKey(plain);
}

/** Bytes read so far from a TCP connection's socket (@libp2p/tcp's maConn.socket); undefined when not TCP. */
function bytesRead(conn: MultiaddrConnection): number | undefined {
  const socket = (conn as { socket?: { bytesRead?: unknown } }).socket;
  return typeof socket?.bytesRead === 'number' ? socket.bytesRead : undefined;
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 1) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

/**
 * `cairn_p2p_connections_refused_total{reason}`, `cairn_p2p_upgrades_abandoned_total` and
 * `cairn_p2p_upgrades_evicted_total`, fed by ConnectionLimits' onRefuse, onAbandoned and onEvicted.
 */
export function createConnectionLimitMetrics(registry: Registry) {
  const refused = new Counter({
    name: 'cairn_p2p_connections_refused_total',
    help: 'Connections refused by the per-IP caps, the inbound slot limit or an address ban',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const abandoned = new Counter({
    name: 'cairn_p2p_upgrades_abandoned_total',
    help: 'Inbound connections closed before finishing their upgrade (noise, yamux): idle or failed handshakes',
    registers: [registry],
  });
  const evicted = new Counter({
    name: 'cairn_p2p_upgrades_evicted_total',
    help: 'Pending inbound upgrades aborted to make room for a newer connection (held past pendingEvictableAfterMs)',
    registers: [registry],
  });
  return {
    refused,
    abandoned,
    evicted,
    onRefuse: (err: ConnectionRefusedError) => refused.inc({ reason: err.code }),
    onAbandoned: () => abandoned.inc(),
    onEvicted: () => evicted.inc(),
  };
}
