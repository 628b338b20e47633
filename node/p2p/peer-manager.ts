import type { PeerId } from '@libp2p/interface';
import { KEEP_ALIVE } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { bytesEqual } from '../chain/bytes.ts';
import type { Logger } from '../log.ts';
import type { NodeMetrics } from '../metrics.ts';
import { P2P_DEFAULTS, PEERS_DEFAULTS } from '../options.ts';
import { PeerBook } from '../sync/peer-book.ts';
import type { AddressBans } from './address-bans.ts';
import { remoteIp } from './connection-limits.ts';
import type { CairnLibp2p } from './host.ts';
import type { Status } from './messages.ts';
import type { PeerAction, PeerScores } from './peer-scores.ts';
import { STATUS } from './protocols.ts';
import type { ReqResp } from './reqresp.ts';

export interface PeerManagerOptions {
  readonly host: CairnLibp2p;
  readonly reqresp: ReqResp;
  readonly scores: PeerScores;
  readonly ourStatus: () => Status;
  readonly metrics: NodeMetrics;
  readonly log: Logger;
  readonly heartbeatMs?: number;
  readonly statusRefreshMs?: number;
  /** Called when a peer's status arrives (after the chain checks passed). */
  readonly onStatus?: (peer: PeerId, status: Status) => void;
  readonly maxConnections?: number;
  /** A ban also counts against the addresses the peer is connected from (address-bans.ts). */
  readonly addressBans?: AddressBans;
  /**
   * Whether a discovered (mDNS) peer may be dialled; roster mode dials only keys the chain
   * records as members (admission-gate.ts `mayDial`). Default: every peer.
   */
  readonly mayDial?: (peer: PeerId) => boolean;
  /**
   * Whether a ban of the peer may count against its address; roster mode: admitted peers only
   * (admission-gate.ts `isAdmitted`). A pending or read-only peer is a stranger whose offences
   * (a status of another genesis, a bad batch) cost nothing to fabricate from an address that
   * members share, and the address ban then refuses them, and our dials to them, before noise.
   * Default: every peer (open mode).
   */
  readonly addressAnswersFor?: (peer: PeerId) => boolean;
}

/**
 * Everything about the peers themselves: the status handshake (peers of another chain are
 * refused and banned), status refresh, heartbeat pings with failure detection, reputation
 * with disconnects and timed bans, an operator block list, and keep-alive tagging so libp2p
 * redials lost peers with backoff.
 */
export class PeerManager {
  readonly book = new PeerBook();
  private readonly blocked = new Set<string>();
  private timers: NodeJS.Timeout[] = [];

  private readonly o: PeerManagerOptions;
  constructor(o: PeerManagerOptions) {
    this.o = o;
  }

  get scores(): PeerScores {
    return this.o.scores;
  }

  get addressBans(): AddressBans | undefined {
    return this.o.addressBans;
  }

  /** The connection gater consults this for every dial and inbound connection. */
  refuses(peer: PeerId | string): boolean {
    const key = peer.toString();
    return this.blocked.has(key) || this.o.scores.isBanned(key, Date.now());
  }

  start(): void {
    const { host } = this.o;
    host.addEventListener('peer:identify', (evt) => {
      const peer = evt.detail.peerId;
      if (evt.detail.protocols.includes(this.o.reqresp.protocolId(STATUS.name))) void this.handshake(peer);
    });
    // Bootstrap dials by itself; mDNS only announces, so announced peers are dialled here.
    host.addEventListener('peer:discovery', (evt) => {
      const peer = evt.detail.id;
      if (this.refuses(peer) || host.getConnections(peer).length > 0) return;
      if (this.o.mayDial && !this.o.mayDial(peer)) {
        this.o.log.debug({ peer: peer.toString() }, 'discovered peer is not a member; not dialling');
        return;
      }
      if (host.getConnections().length >= (this.o.maxConnections ?? P2P_DEFAULTS.maxConnections)) return;
      void host
        .dial(peer, { signal: AbortSignal.timeout(10_000) })
        .catch((err) =>
          this.o.log.debug(
            { peer: peer.toString(), err: (err as Error).message },
            'dial of discovered peer failed',
          ),
        );
    });
    host.addEventListener('peer:disconnect', (evt) => {
      this.book.remove(evt.detail);
      this.o.metrics.peers.set(host.getPeers().length);
    });
    host.addEventListener('peer:connect', () => this.o.metrics.peers.set(host.getPeers().length));
    this.timers.push(
      setInterval(() => void this.heartbeat(), this.o.heartbeatMs ?? PEERS_DEFAULTS.heartbeatMs),
    );
    this.timers.push(
      setInterval(() => void this.refresh(), this.o.statusRefreshMs ?? PEERS_DEFAULTS.statusRefreshMs),
    );
    // Called before the host starts (host.ts creates it with `start: false`), so no identify
    // event is missed.
    for (const t of this.timers) t.unref();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  /** Inbound status: check the peer's chain, remember it, answer with ours. */
  receiveStatus(peer: PeerId, theirs: Status): Status {
    this.accept(peer, theirs);
    return this.o.ourStatus();
  }

  async handshake(peer: PeerId): Promise<Status | undefined> {
    try {
      const [theirs] = await this.o.reqresp.request(peer, STATUS, this.o.ourStatus());
      if (!theirs) throw new Error('empty status');
      return this.accept(peer, theirs) ? theirs : undefined;
    } catch (err) {
      this.o.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'status exchange failed');
      return undefined;
    }
  }

  private accept(peer: PeerId, theirs: Status): boolean {
    // A status that arrives after a ban, before its connection is closed, must not re-admit the peer.
    if (this.refuses(peer)) return false;
    const ours = this.o.ourStatus();
    if (!bytesEqual(theirs.chainId, ours.chainId) || !bytesEqual(theirs.genesisHash, ours.genesisHash)) {
      this.penalise(peer, 'fatal', 'status of another chain (chain id or genesis differ)');
      return false;
    }
    this.book.setStatus(peer, theirs, Date.now());
    // Peers on our chain are worth keeping: libp2p redials them with backoff when they drop.
    void this.o.host.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } }).catch(() => {});
    this.o.onStatus?.(peer, theirs);
    return true;
  }

  /**
   * `chargeAddress: false` bans the peer id without counting it against its address: for what a
   * stranger can fabricate for free (an admission refusal), which must not let it get an address
   * shared with members (a NAT, an office uplink, a carrier's CGNAT) refused.
   */
  penalise(peer: PeerId, action: PeerAction, reason: string, { chargeAddress = true } = {}): void {
    const now = Date.now();
    const charge = chargeAddress && (this.o.addressAnswersFor?.(peer) ?? true);
    const wasBanned = this.o.scores.isBanned(peer.toString(), now);
    const verdict = this.o.scores.apply(peer.toString(), action, reason, now);
    this.o.metrics.peerActions.inc({ action });
    this.o.log.info(
      { peer: peer.toString(), action, reason, score: this.o.scores.score(peer.toString(), now), verdict },
      'peer penalised',
    );
    if (verdict === 'ok') return;
    // A ban is counted once, when it starts (late penalties on a banned peer extend nothing).
    if (verdict === 'ban' && !wasBanned) {
      this.o.metrics.bans.inc();
      // A ban the full ban store could not hold (peer-scores.ts) bans the address outright: the
      // peer id would be admitted again at once, and forgetting an older ban would launder it.
      const unrecorded = !this.o.scores.isBanned(peer.toString(), now);
      const count = unrecorded ? (this.o.addressBans?.threshold ?? 1) : 1;
      // Before the connections go: the new peer id a banned peer comes back with meets its address.
      for (const c of charge ? this.o.host.getConnections(peer) : []) {
        const ip = remoteIp(c.remoteAddr);
        if (ip && this.o.addressBans?.record(ip, now, count))
          this.o.log.info({ peer: peer.toString(), address: ip }, 'address banned');
      }
    }
    // Either way the keep-alive tag goes: libp2p would otherwise redial a dropped peer at once.
    void this.drop(peer, true, verdict === 'ban');
  }

  /** Operator block list (also how tests partition a cluster). */
  block(peers: readonly string[]): void {
    for (const p of peers) this.blocked.add(p);
    for (const conn of this.o.host.getConnections()) {
      if (this.blocked.has(conn.remotePeer.toString())) void this.drop(conn.remotePeer, true);
    }
  }

  /** Lifts a block and reconnects to the peer if its address is known. */
  unblock(peers: readonly string[]): void {
    for (const p of peers) {
      if (!this.blocked.delete(p)) continue;
      const id = peerIdFromString(p);
      void this.o.host.peerStore
        .merge(id, { tags: { [KEEP_ALIVE]: { value: 1 } } })
        .then(() => this.o.host.dial(id, { signal: AbortSignal.timeout(10_000) }))
        .catch((err) =>
          this.o.log.debug({ peer: p, err: (err as Error).message }, 'redial after unblock failed'),
        );
    }
  }

  blockedPeers(): string[] {
    return [...this.blocked];
  }

  private async drop(peer: PeerId, forget: boolean, abort = false): Promise<void> {
    this.book.remove(peer);
    // A banned peer's connections are cut at once: a graceful close keeps reading (decrypting,
    // demultiplexing, decoding) whatever it keeps sending until its streams have closed, which
    // for a flooding peer is seconds of the event loop.
    if (abort) for (const c of this.o.host.getConnections(peer)) c.abort(new Error('peer banned'));
    if (forget) {
      await this.o.host.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: undefined } }).catch(() => {});
    }
    await this.o.host.hangUp(peer).catch(() => {});
  }

  private async heartbeat(): Promise<void> {
    const ping = (
      this.o.host.services as { ping: { ping(p: PeerId, o?: { signal?: AbortSignal }): Promise<number> } }
    ).ping;
    await Promise.all(
      this.o.host.getPeers().map(async (peer) => {
        try {
          const rtt = await ping.ping(peer, { signal: AbortSignal.timeout(4_000) });
          this.book.recordPing(peer, rtt);
        } catch {
          // Three missed heartbeats in a row: the connection is dead even if the socket is not.
          if (this.book.recordPing(peer, undefined) >= 3) {
            this.o.log.info({ peer: peer.toString() }, 'peer failed 3 heartbeats; closing');
            await this.o.host.hangUp(peer).catch(() => {});
          }
        }
      }),
    );
  }

  /** Re-exchanges statuses with connected peers whose status is older than `maxAgeMs`. */
  async refresh(maxAgeMs = this.o.statusRefreshMs ?? PEERS_DEFAULTS.statusRefreshMs): Promise<void> {
    const now = Date.now();
    const due = this.o.host.getPeers().filter((p) => {
      const r = this.book.get(p);
      return !r || now - r.statusAt >= maxAgeMs;
    });
    await Promise.all(due.map((p) => this.handshake(p)));
  }
}
