/**
 * Member relays (issue 15). A node with the `relay` capability runs libp2p's circuit relay v2
 * server; the connection gater's relay hooks let only admitted members reserve a slot on it or
 * be relayed to, so a stranger cannot use a member's bandwidth. Clients name their relays with
 * `--relay <multiaddr>`, listen on `/p2p-circuit` (one slot per configured relay) and keep the
 * reservation alive with a watchdog: js-libp2p #3601, a relay listened on by its own address
 * (`<relay>/p2p-circuit`) is reserved once and never again after the relay restarts, and that
 * form also fails the node's start while the relay is down. The `/p2p-circuit` form uses the
 * reservation store's discovery instead (a connected peer that speaks the hop protocol gets
 * reserved on, and a reservation lost with its connection is looked for again), restricted to
 * the configured relays by the discovery filter; the watchdog only has to keep them connected.
 */
import type { CircuitRelayServerInit } from '@libp2p/circuit-relay-v2';
import type { Connection, ConnectionGater, PeerId, TopologyFilter } from '@libp2p/interface';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { P2P_DEFAULTS, RELAY_DEFAULTS, type RelayLimits } from '../options.ts';
import type { PeerAction } from './peer-scores.ts';

export type { RelayLimits };

/** libp2p's relay server options from ours (0 = no per-connection limit). */
export function relayServerInit(limits: Partial<RelayLimits> = {}): CircuitRelayServerInit {
  const l = { ...RELAY_DEFAULTS, ...limits };
  const limited = l.durationLimitMs > 0 || l.dataLimitBytes > 0;
  return {
    maxInboundHopStreams: l.maxHopStreams,
    maxOutboundHopStreams: l.maxHopStreams,
    reservations: {
      maxReservations: l.maxReservations,
      reservationTtl: l.reservationTtlMs,
      // Without this flag libp2p applies 2 min / 128 KiB to every relayed connection.
      applyDefaultLimit: limited,
      // libp2p reads 0 as "none" in neither field, so an unset one gets a bound nobody reaches.
      defaultDurationLimit: l.durationLimitMs > 0 ? l.durationLimitMs : 2 ** 31 - 1,
      defaultDataLimit: BigInt(l.dataLimitBytes > 0 ? l.dataLimitBytes : Number.MAX_SAFE_INTEGER),
    },
  };
}

export type RelayRefusal = 'reservation-not-member' | 'relay-source-not-member' | 'relay-target-not-member';

export interface RelayMetrics {
  readonly refusals: Counter<'reason'>;
  readonly upgrades: Counter<'outcome'>;
  readonly connections: Gauge<'kind'>;
  readonly reservations: Gauge<'relay'>;
}

/** Registered once per registry; `cairn_connections` is read from `connections` at each scrape. */
export function createRelayMetrics(
  registry: Registry,
  connections: () => readonly Pick<Connection, 'remoteAddr'>[] = () => [],
): RelayMetrics {
  const get = <M>(name: string) => registry.getSingleMetric(name) as M | undefined;
  return {
    refusals:
      get<Counter<'reason'>>('cairn_relay_refusals_total') ??
      new Counter({
        name: 'cairn_relay_refusals_total',
        help: 'Relay requests this node refused: reservations and relayed connections of non-members',
        labelNames: ['reason'],
        registers: [registry],
      }),
    upgrades:
      get<Counter<'outcome'>>('cairn_relay_upgrades_total') ??
      new Counter({
        name: 'cairn_relay_upgrades_total',
        help: 'Relayed connections we tried to upgrade to direct WebRTC, by outcome (direct, failed)',
        labelNames: ['outcome'],
        registers: [registry],
      }),
    connections:
      get<Gauge<'kind'>>('cairn_connections') ??
      new Gauge({
        name: 'cairn_connections',
        help: 'Open connections by kind: tcp, webrtc-direct, relayed, webrtc-via-relay, other',
        labelNames: ['kind'],
        registers: [registry],
        collect() {
          for (const [kind, n] of Object.entries(countKinds(connections()))) this.set({ kind }, n);
        },
      }),
    reservations:
      get<Gauge<'relay'>>('cairn_relay_reservations') ??
      new Gauge({
        name: 'cairn_relay_reservations',
        help: 'Configured relays (by peer id) this node holds a reservation on: 1 held, 0 not',
        labelNames: ['relay'],
        registers: [registry],
      }),
  };
}

export interface RelayGaterOptions {
  /** True once the peer is admitted (roster mode: the admission gate's verdict, awaited). */
  readonly isMember: (peer: PeerId) => boolean | Promise<boolean>;
  readonly metrics: RelayMetrics;
  /** A stranger asking to use our relay costs it (peer-manager.ts). */
  readonly penalise: (peer: PeerId, action: PeerAction, reason: string) => void;
  readonly log: Logger;
}

/** The gater's relay hooks: members only, each refusal counted and charged to the asker. */
export function relayGater(
  o: RelayGaterOptions,
): Required<Pick<ConnectionGater, 'denyInboundRelayReservation' | 'denyOutboundRelayedConnection'>> {
  const refuse = (reason: RelayRefusal, peer: PeerId, blame: PeerId): true => {
    o.metrics.refusals.inc({ reason });
    o.penalise(blame, 'low-tolerance', `relay: ${reason}`);
    o.log.debug({ reason, peer: peer.toString() }, 'relay request refused');
    return true;
  };
  return {
    denyInboundRelayReservation: async (source) =>
      (await o.isMember(source)) ? false : refuse('reservation-not-member', source, source),
    // Both ends must be members: the target holds a reservation, but it may have been revoked since.
    denyOutboundRelayedConnection: async (source, target) => {
      if (!(await o.isMember(source))) return refuse('relay-source-not-member', source, source);
      if (!(await o.isMember(target))) return refuse('relay-target-not-member', target, source);
      return false;
    },
  };
}

export type ConnectionKind = 'tcp' | 'webrtc-direct' | 'relayed' | 'webrtc-via-relay' | 'other';
export const CONNECTION_KINDS: readonly ConnectionKind[] = [
  'tcp',
  'webrtc-direct',
  'relayed',
  'webrtc-via-relay',
  'other',
];

/**
 * What a connection runs over, from its remote address: a private-to-private WebRTC connection
 * is `<relay>/p2p-circuit/webrtc/p2p/<peer>` (the relay only carried its signalling; the data
 * goes direct or through TURN), a relayed one `<relay>/p2p-circuit/p2p/<peer>`.
 */
export function connectionKind(remoteAddr: Multiaddr | string): ConnectionKind {
  const names = (typeof remoteAddr === 'string' ? multiaddr(remoteAddr) : remoteAddr)
    .getComponents()
    .map((c) => c.name);
  if (names.includes('webrtc')) return 'webrtc-via-relay';
  if (names.includes('p2p-circuit')) return 'relayed';
  if (names.includes('webrtc-direct')) return 'webrtc-direct';
  if (names.includes('tcp')) return 'tcp';
  return 'other';
}

/** Open connections counted by kind (every kind present, zero included). */
export function countKinds(conns: readonly Pick<Connection, 'remoteAddr'>[]): Record<ConnectionKind, number> {
  const out = Object.fromEntries(CONNECTION_KINDS.map((k) => [k, 0])) as Record<ConnectionKind, number>;
  for (const c of conns) out[connectionKind(c.remoteAddr)]++;
  return out;
}

/** The relay's peer id of `--relay` value; throws on one without /p2p/<id>. */
export function relayPeerId(addr: string): string {
  const id = multiaddr(addr)
    .getComponents()
    .findLast((c) => c.name === 'p2p')?.value;
  if (!id) throw new Error(`--relay ${addr} needs /p2p/<peer id>`);
  return id;
}

/**
 * The relay transport's discovery filter: only configured relays are reserved on when they
 * connect (any member may run a relay, but the operator chose these). Otherwise a plain peer
 * filter: each relay is offered once per connection (the registrar removes it on disconnect).
 */
export function configuredRelaysFilter(relayIds: ReadonlySet<string>): TopologyFilter {
  const seen = new Set<string>();
  return {
    has: (p) => !relayIds.has(p.toString()) || seen.has(p.toString()),
    add: (p) => void seen.add(p.toString()),
    remove: (p) => void seen.delete(p.toString()),
  };
}

/** Asks the relay transport for a reservation on a connected relay now. */
export type ReservationRetry = (relay: PeerId) => Promise<void>;

/**
 * js-libp2p #3601 and its cousin: a relay that could not be dialled while it was down goes into
 * the reservation store's "previously invalid" filter, which is cleared only when a reservation
 * is removed, so a relay that comes back is never reserved on again. The store is reached on
 * the transport instance (circuit-relay-v2 4.2.x: `reservationStore.relayFilter`, `addRelay`);
 * when that shape is missing (another version) this returns undefined and the watchdog falls
 * back to reconnecting, which works whenever the filter did not catch the relay.
 */
export function reservationRetry(transport: unknown): ReservationRetry | undefined {
  const store = (transport as { reservationStore?: unknown } | undefined)?.reservationStore as
    | {
        relayFilter?: { remove?: (b: Uint8Array) => boolean };
        addRelay?: (p: PeerId, type: 'discovered' | 'configured') => Promise<unknown>;
        hasReservation?: (p: PeerId) => boolean;
      }
    | undefined;
  if (typeof store?.addRelay !== 'function' || typeof store.relayFilter?.remove !== 'function')
    return undefined;
  return async (relay) => {
    if (store.hasReservation?.(relay)) return;
    store.relayFilter!.remove!(relay.toMultihash().bytes);
    await store.addRelay!(relay, 'discovered');
  };
}

/** What the watchdog needs of the host. */
export interface RelayHost {
  getMultiaddrs(): Multiaddr[];
  getConnections(peer?: PeerId): Connection[];
  dial(addr: Multiaddr, options?: { signal?: AbortSignal }): Promise<Connection>;
}

export interface RelayKeeperOptions {
  readonly host: RelayHost;
  /** `--relay` values, each with /p2p/<relay id>. */
  readonly relays: readonly string[];
  readonly metrics: RelayMetrics;
  readonly log: Logger;
  readonly intervalMs?: number;
  readonly reserveGraceMs?: number;
  readonly dialTimeoutMs?: number;
  /** The transport's own retry (see reservationRetry); reconnecting only when absent. */
  readonly retry?: ReservationRetry;
}

export interface RelayState {
  readonly relay: string;
  readonly peerId: string;
  readonly reserved: boolean;
  readonly connected: boolean;
}

/**
 * The watchdog: every `intervalMs` each configured relay is checked. Reserved: nothing to do.
 * Not connected: dialled (its identify then offers it to the reservation store). Connected
 * without a reservation for `reserveGraceMs`: the connection is closed and dialled again, so
 * discovery sees it anew (a relay that restarted while we kept a stale connection).
 */
export class RelayKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly since = new Map<string, number>();
  private readonly relays: readonly { addr: Multiaddr; id: string }[];
  private wasReserved = new Set<string>();

  private readonly o: RelayKeeperOptions;
  constructor(o: RelayKeeperOptions) {
    this.o = o;
    this.relays = o.relays.map((a) => ({ addr: multiaddr(a), id: relayPeerId(a) }));
  }

  start(): void {
    if (!this.relays.length || this.timer) return;
    this.timer = setInterval(() => void this.check(), this.o.intervalMs ?? RELAY_DEFAULTS.watchdogMs);
    this.timer.unref();
    void this.check();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Configured relays and whether we hold a reservation on each. */
  state(): RelayState[] {
    const addrs = this.o.host.getMultiaddrs().map(String);
    return this.relays.map(({ addr, id }) => ({
      relay: addr.toString(),
      peerId: id,
      reserved: addrs.some((a) => a.includes(`/p2p/${id}/p2p-circuit`)),
      connected: this.o.host
        .getConnections()
        .some((c) => c.remotePeer.toString() === id && c.status === 'open'),
    }));
  }

  /** One round of the watchdog (the timer runs it; tests may call it). */
  async check(now = Date.now()): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await Promise.all(this.state().map((s) => this.checkOne(s, now)));
    } finally {
      this.running = false;
    }
  }

  private async checkOne(s: RelayState, now: number): Promise<void> {
    this.o.metrics.reservations.set({ relay: s.peerId }, s.reserved ? 1 : 0);
    if (s.reserved) {
      if (!this.wasReserved.has(s.peerId)) this.o.log.info({ relay: s.relay }, 'relay reservation held');
      this.wasReserved.add(s.peerId);
      this.since.delete(s.peerId);
      return;
    }
    if (this.wasReserved.delete(s.peerId)) this.o.log.warn({ relay: s.relay }, 'relay reservation lost');
    const relay = this.relays.find((r) => r.id === s.peerId)!;
    const timeoutMs = this.o.dialTimeoutMs ?? P2P_DEFAULTS.dialTimeoutMs;
    if (s.connected) {
      const first = this.since.get(s.peerId) ?? now;
      this.since.set(s.peerId, first);
      const conn = this.o.host.getConnections().find((c) => c.remotePeer.toString() === s.peerId);
      if (this.o.retry && conn) {
        try {
          await this.o.retry(conn.remotePeer);
          return;
        } catch (err) {
          this.o.log.debug({ relay: s.relay, err: (err as Error).message }, 'relay reservation refused');
        }
      }
      if (now - first < (this.o.reserveGraceMs ?? RELAY_DEFAULTS.reserveGraceMs)) return;
      this.o.log.info({ relay: s.relay }, 'connected to the relay without a reservation: reconnecting');
      await Promise.all(
        this.o.host
          .getConnections()
          .filter((c) => c.remotePeer.toString() === s.peerId)
          .map((c) => c.close().catch(() => c.abort(new Error('relay reconnect')))),
      );
    }
    this.since.delete(s.peerId);
    try {
      await this.o.host.dial(relay.addr, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      // A relay that is down is expected (it restarts, the laptop is offline): try again next round.
      this.o.log.debug({ relay: s.relay, err: (err as Error).message }, 'relay not reachable');
    }
  }
}
