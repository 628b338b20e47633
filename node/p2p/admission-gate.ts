/**
 * Roster enforcement on every transport: the connection gater's checks plus the admission
 * handshake (wire format in admission-wire.ts). Depends on the membership contract
 * (`MembershipView`) only, never on the roster's implementation.
 *
 * A connection starts *pending*. The gater (which runs after encryption on TCP and
 * WebRTC-direct alike, so the remote key is known) refuses keys known revoked and non-members
 * from a banned address before any stream exists; everything else gets the handshake. Until a
 * peer is admitted nothing Cairn serves reaches it: req/resp handlers wait for the outcome (up to
 * the handshake deadline) and then serve or reset, gossip from it is rejected, and its gossipsub
 * application score keeps it out of meshes and below the publish threshold, so we neither relay
 * its messages nor send it ours. A refusal closes the connection, is counted
 * (`cairn_membership_refusals_total{code,transport}`) and costs the peer id and its address.
 * Revocations from the view close the revoked keys' connections at once and keep them refused.
 * In open mode none of this exists (node.ts builds no gate).
 *
 * Catching up (membership/catch-up.ts): a node that is behind cannot judge certificates from
 * admins added since its tip, nor ones its clock thinks are a little early. Refusing those
 * peers could leave it nobody to sync from, so while it is behind a peer refused only for
 * `unknown-issuer`, or `not-yet-valid` within the clock-skew allowance, is admitted *read-only*:
 * we may fetch from it (`whenFetchable`), but serve it nothing, answer no identify, accept none
 * of its gossip (it keeps the pending gossip score), show it not our certificate, and it costs
 * no penalty. Read-only peers are bounded (`maxReadOnlyPeers`) and judged again whenever our tip
 * moves (`rejudge`) and on the recheck timer: admitted once the roster we synced vouches for
 * them, refused once we are no longer behind and it still does not, and dropped once idle
 * (`readOnlyIdleMs` without serving a batch that connected, `served`), after which its key is
 * not taken read-only again for `readOnlyCooldownMs`. Its certificate must carry the issuer's
 * valid signature: only "issuer unknown to us", never "forged", qualifies. Any stranger can
 * self-sign one (it reads as `unknown-issuer`), so an excused refusal still charges its address,
 * at a lower weight, and an idle drop at full weight: churning keys from one host is bounded.
 */
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { Multiaddr } from '@multiformats/multiaddr';
import { Counter, Histogram, type Registry } from 'prom-client';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { Logger } from '../log.ts';
import type { AdmissionRefusal, Member, MembershipView } from '../membership/view.ts';
import { MEMBERSHIP_DEFAULTS } from '../options.ts';
import { AddressRefusals } from './address-refusals.ts';
import {
  ADMISSION_TIMEOUT_MS,
  decodeAnswer,
  encodeAnswer,
  ipOf,
  MAX_CERTIFICATE_BYTES,
  type RefusalCode,
  refusalSeverity,
  transportOf,
} from './admission-wire.ts';
import type { CairnLibp2p } from './host.ts';
import type { PeerAction } from './peer-scores.ts';

/**
 * Gossipsub application scores (weight 1, gossipsub's default thresholds: gossip −10, publish
 * −50, graylist −80). A pending peer sits between publish and graylist: never grafted, sent no
 * gossip or published messages, but its subscriptions are still read, so once admitted it
 * joins the mesh at the next heartbeat. A refused one is graylisted: its RPCs are dropped unread.
 */
export const GOSSIP_SCORE = { admitted: 0, pending: -60, 'read-only': -60, refused: -1000 } as const;

/**
 * What an excused refusal (see CATCH_UP_CODES) adds to its host's refusal count: it may be our
 * stale roster's fault, so it costs less than a plain refusal (1), but not nothing, since any
 * stranger qualifies. At 0.5 a host is banned after 40 in quick succession (banAt 20).
 */
const EXCUSED_ADDRESS_WEIGHT = 0.5;

/** Keys in the read-only cooldown at most; the soonest to end go first. */
const MAX_COOLDOWN = 4096;

/** Refusals a node that is behind may owe to its own stale roster or clock (see the header). */
const CATCH_UP_CODES: ReadonlySet<RefusalCode> = new Set<AdmissionRefusal>([
  'unknown-issuer',
  'not-yet-valid',
]);

export type AdmissionHost = Pick<
  CairnLibp2p,
  'handle' | 'unhandle' | 'getConnections' | 'addEventListener' | 'removeEventListener'
>;

export interface AdmissionMetrics {
  readonly refusals: Counter<'code' | 'transport'>;
  readonly handshakes: Histogram<'outcome' | 'transport'>;
}

/** The gate's metrics, registered once per registry (the roster may register the counter too). */
export function createAdmissionMetrics(registry: Registry): AdmissionMetrics {
  const refusals =
    (registry.getSingleMetric('cairn_membership_refusals_total') as Counter<'code' | 'transport'>) ??
    new Counter({
      name: 'cairn_membership_refusals_total',
      help: 'Peers refused admission (no valid certificate, revoked, banned address) by code and transport',
      labelNames: ['code', 'transport'],
      registers: [registry],
    });
  const handshakes =
    (registry.getSingleMetric('cairn_membership_handshake_seconds') as Histogram<'outcome' | 'transport'>) ??
    new Histogram({
      name: 'cairn_membership_handshake_seconds',
      help: 'Admission handshakes by outcome, from connection open to verdict',
      labelNames: ['outcome', 'transport'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5],
      registers: [registry],
    });
  return { refusals, handshakes };
}

export interface AdmissionGateOptions {
  readonly view: MembershipView;
  /** `/cairn/<chainTag>/admission/1`. */
  readonly protocolId: string;
  readonly penalise: (peer: PeerId, action: PeerAction, reason: string) => void;
  readonly metrics: AdmissionMetrics;
  readonly log: Logger;
  /** Called when a peer's admission state changes (the gossip layer re-reads its score). */
  readonly onStateChange?: (peer: string) => void;
  readonly timeoutMs?: number;
  readonly maxCertificateBytes?: number;
  /** Admitted peers are judged again this often, so an expiring certificate ends (default 5 s). */
  readonly recheckMs?: number;
  readonly addressRefusals?: AddressRefusals;
  readonly now?: () => number;
  /** Whether this node is behind (membership/catch-up.ts): peers it cannot judge yet may serve it. */
  readonly behind?: () => boolean;
  /** How far ahead a certificate's issued-at may be for a read-only admission (default 5 min). */
  readonly clockSkewMs?: number;
  /** Read-only peers at once (default 8); beyond, they are refused (without penalty). */
  readonly maxReadOnlyPeers?: number;
  /** How long a read-only peer stays without serving a batch that connected (default 2 min). */
  readonly readOnlyIdleMs?: number;
  /** How long a key dropped for idling is not taken read-only again (default 10 min). */
  readonly readOnlyCooldownMs?: number;
  /**
   * Which peers may serve us read-only at all (default: any). The node passes its bootstrap
   * peers: ones its operator (or the invitation it joined with) chose. Anyone can sign a
   * certificate with a key of its own (`unknown-issuer`), so without this a stranger could take
   * the read-only slots, become our sync target and starve a device that is catching up.
   */
  readonly readOnlySource?: (peer: PeerId) => boolean;
}

type Status = 'pending' | 'admitted' | 'read-only' | 'refused';
type Verdict = Exclude<Status, 'pending'>;

interface PeerState {
  status: Status;
  readonly key: Hex | undefined;
  member?: Member;
  /** The certificate it presented, judged again on roster changes and expiry. */
  certificate?: Uint8Array;
  readonly waiters: ((verdict: Verdict) => void)[];
  /** Read-only: when it was taken so, and when it last served a batch that connected (gate clock). */
  readOnlyAt?: number;
  servedAt?: number;
  /** One deadline for all waiters, so a flood of requests or gossip costs no timer each. */
  deadline?: NodeJS.Timeout;
  readonly since: number;
}

/**
 * Requests and gossip messages of one pending peer that may wait for its verdict; beyond this
 * they are refused at once (a stranger cannot pile up work during its handshake deadline).
 */
const MAX_WAITERS = 128;

/** The raw Ed25519 key of a peer id (Cairn peer ids are Ed25519 keys), as the roster names keys. */
export function keyOf(peer: PeerId): Hex | undefined {
  const raw = (peer as { publicKey?: { raw?: Uint8Array } }).publicKey?.raw;
  return raw ? toHex(raw) : undefined;
}

/** Longest a connection without a handshake stays open while its peer redeems an invitation. */
const MAX_HOLD_MS = 20_000;

/** Revoked keys remembered at most (the roster is the record; this is the quick refusal). */
const MAX_REVOKED = 10_000;

export class AdmissionGate {
  readonly view: MembershipView;
  readonly addressRefusals: AddressRefusals;
  private readonly peers = new Map<string, PeerState>();
  /** Keys the view reported revoked, refused by the gater until the chain records them again. */
  private readonly revoked = new Set<Hex>();
  /** Peers redeeming an invitation now (holdOpen), by peer id: not refused for a missing handshake. */
  private readonly holds = new Map<string, number>();
  /** Inbound connections still waiting for the dialer's certificate, with their deadline timer. */
  private readonly awaiting = new Map<string, NodeJS.Timeout>();
  /** Keys dropped for idling read-only, with when they may be taken read-only again. */
  private readonly cooldown = new Map<Hex, number>();
  private host: AdmissionHost | undefined;
  private unsubscribe: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;
  private readonly maxCertificateBytes: number;
  private readonly now: () => number;
  private readonly behind: () => boolean;
  private readonly clockSkewMs: number;
  private readonly maxReadOnlyPeers: number;
  private readonly readOnlyIdleMs: number;
  private readonly readOnlyCooldownMs: number;

  private readonly o: AdmissionGateOptions;
  constructor(o: AdmissionGateOptions) {
    this.o = o;
    this.view = o.view;
    this.addressRefusals = o.addressRefusals ?? new AddressRefusals();
    this.timeoutMs = o.timeoutMs ?? ADMISSION_TIMEOUT_MS;
    this.maxCertificateBytes = o.maxCertificateBytes ?? MAX_CERTIFICATE_BYTES;
    this.now = o.now ?? Date.now;
    this.behind = o.behind ?? (() => false);
    this.clockSkewMs = o.clockSkewMs ?? MEMBERSHIP_DEFAULTS.clockSkewMs;
    this.maxReadOnlyPeers = o.maxReadOnlyPeers ?? MEMBERSHIP_DEFAULTS.maxReadOnlyPeers;
    this.readOnlyIdleMs = o.readOnlyIdleMs ?? MEMBERSHIP_DEFAULTS.readOnlyIdleMs;
    this.readOnlyCooldownMs = o.readOnlyCooldownMs ?? MEMBERSHIP_DEFAULTS.readOnlyCooldownMs;
  }

  // ---- connection gater (libp2p calls these for every connection, after encryption) ----

  /** Dials to keys known revoked are not even attempted (libp2p's redials included). */
  denyDialPeer = async (peer: PeerId): Promise<boolean> => this.knownRevoked(keyOf(peer));

  denyInboundEncryptedConnection = async (peer: PeerId, conn: { remoteAddr: Multiaddr }) =>
    this.denyEncrypted(peer, conn.remoteAddr, true);

  /** Our own dials skip the address ban: whom we dial (a bootstrap entry, say) is our choice. */
  denyOutboundEncryptedConnection = async (peer: PeerId, conn: { remoteAddr: Multiaddr }) =>
    this.denyEncrypted(peer, conn.remoteAddr, false);

  private denyEncrypted(peer: PeerId, addr: Multiaddr, inbound: boolean): boolean {
    const key = keyOf(peer);
    const now = this.now();
    let code: RefusalCode | undefined;
    if (this.knownRevoked(key)) code = 'revoked';
    else if (inbound) {
      const ip = ipOf(addr);
      // Only strangers: a key that passed a handshake before, or one the chain records, gets in.
      if (ip && this.addressRefusals.refuses(ip, key, now) && !(key && this.view.memberAt(key, now))) {
        code = 'banned-address';
      }
    }
    if (!code) return false;
    this.o.metrics.refusals.inc({ code, transport: transportOf(addr) });
    this.o.log.debug({ peer: peer.toString(), code, addr: addr.toString() }, 'connection refused by gater');
    return true;
  }

  private knownRevoked(key: Hex | undefined): boolean {
    if (!key) return false;
    const now = this.now();
    if (this.revoked.has(key)) {
      // Re-admitted on the chain since (a new certificate, or a reorg undid the revocation).
      if (!this.view.memberAt(key, now)) return true;
      this.revoked.delete(key);
      return false;
    }
    const a = this.view.admit(key, undefined, now);
    return !a.ok && a.code === 'revoked';
  }

  // ---- what the rest of the node asks ----

  isAdmitted(peer: PeerId | string): boolean {
    return this.peers.get(peer.toString())?.status === 'admitted';
  }

  /** The member a connected peer was admitted as. */
  member(peer: PeerId | string): Member | undefined {
    const s = this.peers.get(peer.toString());
    return s?.status === 'admitted' ? s.member : undefined;
  }

  /** Admitted read-only while we catch up: we may fetch from it, and serve it nothing. */
  isReadOnly(peer: PeerId | string): boolean {
    return this.peers.get(peer.toString())?.status === 'read-only';
  }

  /** Peers admitted now (read-only and pending ones not counted): membership/catch-up.ts asks. */
  admittedCount(): number {
    let n = 0;
    for (const s of this.peers.values()) if (s.status === 'admitted') n++;
    return n;
  }

  /** The peer served us a batch that connected to our chain: a read-only one stays a while longer. */
  served(peer: PeerId | string): void {
    const s = this.peers.get(peer.toString());
    if (s?.status === 'read-only') s.servedAt = this.now();
  }

  /**
   * Whether we serve the peer and take its gossip: `true` at once for an admitted peer (the
   * common case costs no await), otherwise the outcome of its handshake, which ends within the
   * handshake deadline. A read-only peer or one with no connection: false.
   */
  whenAdmitted(peer: PeerId): true | Promise<boolean> {
    return this.when(peer, 'admitted');
  }

  /** Whether we may send the peer our requests: admitted, or read-only while we catch up. */
  whenFetchable(peer: PeerId): true | Promise<boolean> {
    return this.when(peer, 'read-only');
  }

  private when(peer: PeerId, least: 'admitted' | 'read-only'): true | Promise<boolean> {
    const ok = (v: Verdict) => v === 'admitted' || (least === 'read-only' && v === 'read-only');
    const s = this.peers.get(peer.toString());
    if (s && s.status !== 'pending') return ok(s.status) ? true : Promise.resolve(false);
    const state = s ?? (this.host?.getConnections(peer).length ? this.track(peer) : undefined);
    if (!state || state.waiters.length >= MAX_WAITERS) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      state.waiters.push((v) => resolve(ok(v)));
      // Bounded even if no handshake ever concludes (both sides' streams lost).
      state.deadline ??= setTimeout(() => this.settle(state, 'refused'), this.timeoutMs + 500);
      state.deadline.unref();
    });
  }

  /** Gossipsub's application-specific score for a peer (see GOSSIP_SCORE). */
  gossipScore(peer: string): number {
    return GOSSIP_SCORE[this.peers.get(peer)?.status ?? 'pending'];
  }

  /** Discovery (mDNS) dials only keys the chain records as members. */
  mayDial(peer: PeerId): boolean {
    const key = keyOf(peer);
    return key !== undefined && this.view.memberAt(key, this.now()) !== undefined;
  }

  // ---- lifecycle ----

  async start(host: AdmissionHost): Promise<void> {
    this.host = host;
    await host.handle(this.o.protocolId, (stream, conn) => this.answer(stream, conn), {
      // One handshake per connection; a second stream is a retry at most.
      maxInboundStreams: 2,
      maxOutboundStreams: 2,
    });
    host.addEventListener('connection:open', this.onOpen);
    host.addEventListener('connection:close', this.onClose);
    host.addEventListener('peer:disconnect', this.onDisconnect);
    this.unsubscribe = this.view.onChange(({ revoked }) => this.onRosterChange(revoked));
    this.timer = setInterval(() => this.recheck(), this.o.recheckMs ?? 5_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    if (this.timer) clearInterval(this.timer);
    for (const t of this.awaiting.values()) clearTimeout(t);
    this.awaiting.clear();
    const host = this.host;
    if (!host) return;
    host.removeEventListener('connection:open', this.onOpen);
    host.removeEventListener('connection:close', this.onClose);
    host.removeEventListener('peer:disconnect', this.onDisconnect);
    // Not awaited: libp2p drops the handler at once, then updates our own peer-store record, and
    // that update has been seen never to settle while connections were being torn down (it hung a
    // test's teardown with nothing left on the event loop).
    void Promise.resolve(host.unhandle(this.o.protocolId)).catch(() => {});
    for (const s of this.peers.values()) this.settle(s, 'refused');
    this.peers.clear();
  }

  private readonly onOpen = (evt: CustomEvent<Connection>) => {
    const conn = evt.detail;
    const id = conn.remotePeer.toString();
    // A refused peer's state can outlive its last connection by a moment (peer:disconnect comes
    // later); a new attempt starts afresh, so it is judged, and counted, on its own.
    const old = this.peers.get(id);
    if (old?.status === 'refused' && !this.openElsewhere(conn)) {
      this.peers.delete(id);
      this.settle(old, 'refused');
    }
    this.track(conn.remotePeer);
    if (conn.direction === 'outbound') {
      void this.initiate(conn);
      return;
    }
    // The dialer speaks first; one that does not within the deadline is refused, unless it is
    // redeeming an invitation (holdOpen), for at most MAX_HOLD_MS.
    const opened = this.now();
    const expire = () => {
      this.awaiting.delete(conn.id);
      if (conn.status !== 'open' || this.isAdmitted(conn.remotePeer)) return;
      if ((this.holds.get(conn.remotePeer.toString()) ?? 0) > 0 && this.now() - opened < MAX_HOLD_MS) {
        const again = setTimeout(expire, this.timeoutMs);
        again.unref();
        this.awaiting.set(conn.id, again);
        return;
      }
      this.refuse(conn.remotePeer, 'handshake-timeout', conn.remoteAddr);
    };
    const t = setTimeout(expire, this.timeoutMs);
    t.unref();
    this.awaiting.set(conn.id, t);
  };

  /**
   * Keeps a peer that has not done the handshake from being refused for it while it redeems an
   * invitation (the join protocol, the one thing a non-member is served), up to MAX_HOLD_MS
   * from its connection. Returns the release.
   */
  holdOpen(peer: PeerId): () => void {
    const id = peer.toString();
    this.holds.set(id, (this.holds.get(id) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.holds.get(id) ?? 1) - 1;
      if (n > 0) this.holds.set(id, n);
      else this.holds.delete(id);
    };
  }

  private readonly onClose = (evt: CustomEvent<Connection>) => {
    const t = this.awaiting.get(evt.detail.id);
    if (t) clearTimeout(t);
    this.awaiting.delete(evt.detail.id);
  };

  private readonly onDisconnect = (evt: CustomEvent<PeerId>) => {
    const key = evt.detail.toString();
    const s = this.peers.get(key);
    // Late for a peer that has connected again meanwhile: that connection's state stays.
    if (!s || this.host?.getConnections(evt.detail).some((c) => c.status === 'open')) return;
    this.peers.delete(key);
    this.settle(s, 'refused');
  };

  private openElsewhere(conn: Connection): boolean {
    return (this.host?.getConnections(conn.remotePeer) ?? []).some(
      (c) => c.id !== conn.id && c.status === 'open',
    );
  }

  private track(peer: PeerId): PeerState {
    const id = peer.toString();
    let s = this.peers.get(id);
    if (!s) {
      s = { status: 'pending', key: keyOf(peer), waiters: [], since: performance.now() };
      this.peers.set(id, s);
    }
    return s;
  }

  // ---- the handshake ----

  /** Dialer side: present our certificate, judge the listener's answer. */
  private async initiate(conn: Connection): Promise<void> {
    const peer = conn.remotePeer;
    const signal = AbortSignal.timeout(this.timeoutMs);
    let stream: Stream | undefined;
    let code: RefusalCode;
    try {
      // The protocol name and our certificate go out in one message (no negotiation round trip
      // first); a peer that does not speak the protocol shows up as a failed read.
      stream = await conn.newStream(this.o.protocolId, { signal, negotiateFully: false });
      const lp = lpStream(stream, { maxDataLength: 1 + this.maxCertificateBytes });
      await lp.write(this.view.ownCertificate() ?? new Uint8Array(0), { signal });
      const answer = decodeAnswer((await lp.read({ signal })).subarray());
      if (!answer.ok) {
        // Their verdict on us, not misbehaviour: nothing left to do on this connection.
        this.o.log.warn({ peer: peer.toString(), code: answer.code }, 'refused admission by peer');
        conn.abort(new Error(`admission refused by peer: ${answer.code}`));
        return;
      }
      this.judge(conn, answer.certificate);
      await stream.close({ signal }).catch(() => {});
      return;
    } catch (err) {
      if (this.isAdmitted(peer) || conn.status !== 'open') return;
      code = signal.aborted ? 'handshake-timeout' : 'handshake-failed';
      this.o.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'admission handshake failed');
    }
    stream?.abort(new Error('admission failed'));
    this.refuse(peer, code, conn.remoteAddr);
  }

  /** Listener side: read the dialer's certificate, judge it, answer with ours or the refusal. */
  private async answer(stream: Stream, conn: Connection): Promise<void> {
    const t = this.awaiting.get(conn.id);
    if (t) clearTimeout(t);
    this.awaiting.delete(conn.id);
    const signal = AbortSignal.timeout(this.timeoutMs);
    const lp = lpStream(stream, { maxDataLength: this.maxCertificateBytes });
    let frame: Uint8Array;
    try {
      frame = (await lp.read({ signal })).subarray();
    } catch (err) {
      if (this.isAdmitted(conn.remotePeer)) return void stream.abort(new Error('bad admission frame'));
      const oversized = (err as Error).name.startsWith('InvalidDataLength');
      this.refuse(
        conn.remotePeer,
        oversized ? 'malformed-certificate' : signal.aborted ? 'handshake-timeout' : 'handshake-failed',
        conn.remoteAddr,
      );
      return;
    }
    const code = this.judge(conn, frame.length ? frame : undefined, false);
    // A read-only peer is one we cannot vouch for: it does not learn our name, role, capabilities.
    const ours = this.isReadOnly(conn.remotePeer) ? undefined : this.view.ownCertificate();
    try {
      await lp.write(encodeAnswer(code ? { ok: false, code } : { ok: true, certificate: ours }), { signal });
      await stream.close({ signal });
    } catch {
      stream.abort(new Error('admission answer failed'));
    }
    // Refused: the answer went out first, so the device's operator learns why.
    if (code) this.refuse(conn.remotePeer, code, conn.remoteAddr);
  }

  /**
   * Asks the view about the peer's certificate and records the verdict; returns the refusal code
   * (already acted on when `act`, else left to the caller, who answers first).
   */
  private judge(conn: Connection, certificate: Uint8Array | undefined, act = true): RefusalCode | undefined {
    const peer = conn.remotePeer;
    const s = this.track(peer);
    if (s.status === 'refused') return 'handshake-failed';
    const a = s.key
      ? this.view.admit(s.key, certificate, this.now())
      : ({ ok: false, code: 'malformed-certificate' } as const);
    if (!a.ok) {
      if (this.mayReadOnly(peer, s, certificate, a.code)) {
        this.letIn(conn, s, 'read-only', certificate);
        return undefined;
      }
      if (act) this.refuse(peer, a.code, conn.remoteAddr);
      return a.code;
    }
    this.letIn(conn, s, 'admitted', certificate, a.member);
    return undefined;
  }

  /** Records a verdict that lets the peer in (admitted, or read-only while we catch up). */
  private letIn(
    conn: Connection,
    s: PeerState,
    verdict: 'admitted' | 'read-only',
    certificate: Uint8Array | undefined,
    member?: Member,
  ): void {
    const first = s.status !== verdict;
    s.status = verdict;
    s.member = member;
    s.certificate = certificate;
    if (!first) return;
    s.readOnlyAt = verdict === 'read-only' ? this.now() : undefined;
    s.servedAt = undefined;
    if (verdict === 'admitted' && s.key) this.addressRefusals.admitted(s.key);
    this.o.metrics.handshakes.observe(
      { outcome: verdict, transport: transportOf(conn.remoteAddr) },
      (performance.now() - s.since) / 1000,
    );
    this.o.log[verdict === 'admitted' ? 'debug' : 'info'](
      { peer: conn.remotePeer.toString(), name: member?.name, role: member?.role },
      verdict === 'admitted' ? 'peer admitted' : 'peer admitted read-only while we catch up',
    );
    this.o.onStateChange?.(conn.remotePeer.toString());
    this.settle(s, verdict);
  }

  /**
   * Whether a peer refused with `code` may serve us read-only: we are behind, its certificate is
   * one our stale roster or clock cannot judge yet (issuer unknown; issued-at within the clock
   * skew), and the read-only slots are not full.
   */
  private mayReadOnly(
    peer: PeerId,
    s: PeerState,
    certificate: Uint8Array | undefined,
    code: RefusalCode,
  ): boolean {
    if (!certificate || !s.key || !CATCH_UP_CODES.has(code) || !this.behind()) return false;
    if (this.o.readOnlySource && !this.o.readOnlySource(peer)) return false;
    if (s.status !== 'read-only' && (this.cooldown.get(s.key) ?? 0) > this.now()) return false;
    if (code === 'not-yet-valid') {
      const later = this.view.admit(s.key, certificate, this.now() + this.clockSkewMs);
      if (!later.ok && later.code !== 'unknown-issuer') return false;
    }
    if (s.status === 'read-only') return true;
    let n = 0;
    for (const p of this.peers.values()) if (p.status === 'read-only') n++;
    return n < this.maxReadOnlyPeers;
  }

  /**
   * Refuses `peer` now: counted, penalised if it was ever let in, a stranger's address charged,
   * every connection closed. While
   * we are behind, a refusal our stale roster or clock may owe (unknown issuer, not yet valid)
   * costs the peer id nothing and its address less; an idle read-only peer's drop costs its id
   * the cooldown (not a penalty: it broke no rule) and its address a full refusal.
   */
  refuse(peer: PeerId, code: RefusalCode, addr: Multiaddr, abort = false): void {
    const s = this.track(peer);
    const was = s.status;
    s.status = 'refused';
    s.member = undefined;
    this.o.onStateChange?.(peer.toString());
    this.settle(s, 'refused');
    const excused = CATCH_UP_CODES.has(code) && this.behind();
    if (code === 'revoked' && s.key) this.remember(s.key);
    if (was !== 'refused') {
      const transport = transportOf(addr);
      this.o.metrics.refusals.inc({ code, transport });
      this.o.metrics.handshakes.observe({ outcome: code, transport }, (performance.now() - s.since) / 1000);
      // Only a stranger's failure charges its address (one never admitted; a read-only peer is
      // one): a member revoked or expired while connected answers with its key
      // (address-refusals.ts).
      const ip = ipOf(addr);
      if (ip && (was === 'pending' || was === 'read-only'))
        this.addressRefusals.refused(ip, this.now(), excused ? EXCUSED_ADDRESS_WEIGHT : 1);
      this.o.log.info({ peer: peer.toString(), code, transport, excused }, 'peer refused admission');
      // A stranger never admitted gets no score record: ids cost it nothing, and a table it could
      // fill would evict members' bans (peer-scores.ts). Its address answers for it instead
      // (above), as does `revoked` for a known-revoked key. Only a peer we let in (read-only, or
      // admitted then found wanting) is scored.
      if (!excused && code !== 'read-only-idle' && was !== 'pending')
        this.o.penalise(peer, refusalSeverity(code), `admission refused: ${code}`);
    }
    const conns = this.host?.getConnections(peer) ?? [];
    for (const c of conns) {
      // A revoked device is cut at once; a refused stranger's connection closes after our answer.
      if (abort) c.abort(new Error(`membership: ${code}`));
      else void c.close({ signal: AbortSignal.timeout(500) }).catch(() => c.abort(new Error(code)));
    }
    // Gone already (it hung up while we judged): no peer:disconnect will come to forget it.
    if (conns.length === 0) this.peers.delete(peer.toString());
  }

  /** A read-only peer that served nothing that connected for `readOnlyIdleMs` gives its slot up. */
  private dropIdle(conn: Connection, key: Hex, now: number): void {
    this.cooldown.delete(key);
    this.cooldown.set(key, now + this.readOnlyCooldownMs);
    // Every entry has the same cooldown, so insertion order is the order they end in.
    while (this.cooldown.size > MAX_COOLDOWN) this.cooldown.delete(this.cooldown.keys().next().value as Hex);
    this.refuse(conn.remotePeer, 'read-only-idle', conn.remoteAddr, true);
  }

  private settle(s: PeerState, verdict: Verdict): void {
    if (s.deadline) clearTimeout(s.deadline);
    s.deadline = undefined;
    for (const w of s.waiters.splice(0)) w(verdict);
  }

  private remember(key: Hex): void {
    this.revoked.delete(key);
    this.revoked.add(key);
    if (this.revoked.size > MAX_REVOKED) this.revoked.delete(this.revoked.values().next().value as Hex);
  }

  // ---- roster changes and expiry ----

  private onRosterChange(revoked: readonly Hex[]): void {
    for (const k of revoked) this.remember(k);
    const lost = new Set(revoked);
    this.recheck(lost);
  }

  /** Call when our tip moved: read-only peers may be vouched for now, or we may have caught up. */
  rejudge(): void {
    this.recheck();
  }

  /**
   * Judges every admitted and read-only peer again; those in `revoked` or whose certificate no
   * longer holds go, read-only ones the roster now vouches for are admitted.
   */
  private recheck(revoked: ReadonlySet<Hex> = new Set()): void {
    const now = this.now();
    for (const conn of this.host?.getConnections() ?? []) {
      const s = this.peers.get(conn.remotePeer.toString());
      if (!s?.key || s.status === 'refused') continue;
      if (revoked.has(s.key)) {
        this.refuse(conn.remotePeer, 'revoked', conn.remoteAddr, true);
        continue;
      }
      if (s.status === 'pending') continue;
      const a = this.view.admit(s.key, s.certificate, now);
      if (a.ok) this.letIn(conn, s, 'admitted', s.certificate, a.member);
      else if (s.status === 'read-only' && now - (s.servedAt ?? s.readOnlyAt ?? now) > this.readOnlyIdleMs)
        this.dropIdle(conn, s.key, now);
      else if (!(s.status === 'read-only' && this.mayReadOnly(conn.remotePeer, s, s.certificate, a.code)))
        this.refuse(conn.remotePeer, a.code, conn.remoteAddr, true);
    }
  }
}
