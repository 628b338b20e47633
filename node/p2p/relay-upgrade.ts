/**
 * From relayed to direct (issue 15). DCUtR cannot punch from Node (js-libp2p #2620), so the
 * upgrade is libp2p's private-to-private WebRTC: the dialer of a relayed connection dials the
 * same peer at `<relay>/p2p-circuit/webrtc/p2p/<peer>`; the SDP offer and answer travel over the
 * relayed connection, then ICE finds a direct path (STUN for the NATs' mappings, TURN where a NAT
 * is symmetric). Once any non-relayed connection to a peer is open, its relayed ones are closed,
 * so the relay carries nothing more between them. A node whose every peer (its relays aside) is
 * reached only relayed says so once in its log: that is the slow, relay-bound case an operator
 * wants to know about (no ICE server configured, or a symmetric NAT without TURN).
 */
import type { Connection, Libp2pEvents, PeerId, TypedEventTarget } from '@libp2p/interface';
import { type Multiaddr, multiaddr } from '@multiformats/multiaddr';
import type { Logger } from '../log.ts';
import { connectionKind, type RelayMetrics } from './relay.ts';

export interface UpgradeHost
  extends Pick<TypedEventTarget<Libp2pEvents>, 'addEventListener' | 'removeEventListener'> {
  getConnections(peer?: PeerId): Connection[];
  dial(addr: Multiaddr, options?: { signal?: AbortSignal; force?: boolean }): Promise<Connection>;
}

export const UPGRADE_DEFAULTS = Object.freeze({
  /** Tries per relayed connection; ICE can miss a first time while a NAT mapping is new. */
  attempts: 3,
  /** Before the first try (the admission handshake on the relayed connection goes first). */
  firstDelayMs: 250,
  retryDelayMs: 1_000,
  dialTimeoutMs: 10_000,
  /** How long every peer must stay relay-only before the log says so. */
  onlyRelayedAfterMs: 5_000,
});

/** The private-to-private WebRTC address of the peer a relayed connection reaches. */
export function webrtcAddrOf(relayed: Multiaddr, peer: PeerId | string): Multiaddr {
  const s = relayed.toString();
  const at = s.indexOf('/p2p-circuit');
  if (at < 0) throw new Error(`not a relayed address: ${s}`);
  return multiaddr(`${s.slice(0, at)}/p2p-circuit/webrtc/p2p/${peer.toString()}`);
}

/** The relay's peer id in a relayed address (the /p2p/ before /p2p-circuit). */
function relayOf(addr: Multiaddr): string | undefined {
  const names = addr.getComponents();
  const at = names.findIndex((c) => c.name === 'p2p-circuit');
  return at < 0 ? undefined : names.slice(0, at).findLast((c) => c.name === 'p2p')?.value;
}

/** Wires the upgrade and the "only relayed" log line to the host; returns the unwiring. */
export function upgradeRelayed(
  host: UpgradeHost,
  log: Logger,
  metrics?: Pick<RelayMetrics, 'upgrades'>,
  o: Partial<typeof UPGRADE_DEFAULTS> = {},
): () => void {
  const cfg = { ...UPGRADE_DEFAULTS, ...o };
  let stopped = false;
  let onlyRelayed = false;
  const direct = (peer: PeerId) =>
    host.getConnections(peer).some((c) => c.status === 'open' && connectionKind(c.remoteAddr) !== 'relayed');

  const closeRelayed = (peer: PeerId) => {
    for (const c of host.getConnections(peer))
      if (connectionKind(c.remoteAddr) === 'relayed')
        void c.close().catch(() => c.abort(new Error('replaced by a direct connection')));
  };

  const tryUpgrade = async (conn: Connection) => {
    const target = webrtcAddrOf(conn.remoteAddr, conn.remotePeer);
    for (let i = 0; i < cfg.attempts && !stopped; i++) {
      await new Promise((r) => setTimeout(r, i === 0 ? cfg.firstDelayMs : cfg.retryDelayMs * i));
      if (stopped || direct(conn.remotePeer)) return;
      if (conn.status !== 'open') return;
      const t0 = Date.now();
      try {
        await host.dial(target, { force: true, signal: AbortSignal.timeout(cfg.dialTimeoutMs) });
        metrics?.upgrades.inc({ outcome: 'direct' });
        log.info(
          { peer: conn.remotePeer.toString(), ms: Date.now() - t0 },
          'relayed connection upgraded to WebRTC',
        );
        return;
      } catch (err) {
        log.info(
          { peer: conn.remotePeer.toString(), attempt: i + 1, err: (err as Error).message },
          'WebRTC upgrade failed',
        );
      }
    }
    if (!stopped) metrics?.upgrades.inc({ outcome: 'failed' });
  };

  let pendingWarn: NodeJS.Timeout | undefined;
  const checkOnlyRelayed = (settled = false) => {
    const conns = host.getConnections().filter((c) => c.status === 'open');
    const relays = new Set(conns.flatMap((c) => relayOf(c.remoteAddr) ?? []));
    const byPeer = new Map<string, boolean>();
    for (const c of conns) {
      const p = c.remotePeer.toString();
      if (relays.has(p)) continue;
      byPeer.set(p, (byPeer.get(p) ?? false) || connectionKind(c.remoteAddr) !== 'relayed');
    }
    const now = byPeer.size > 0 && [...byPeer.values()].every((d) => !d);
    // Every upgrade starts relayed: say so only if it is still the case a while later.
    if (now && !onlyRelayed && !settled) {
      if (!pendingWarn && !stopped)
        pendingWarn = setTimeout(() => {
          pendingWarn = undefined;
          checkOnlyRelayed(true);
        }, cfg.onlyRelayedAfterMs).unref();
      return;
    }
    if (now && !onlyRelayed)
      log.warn(
        { peers: byPeer.size, relays: [...relays] },
        'only relayed connectivity: every peer is reached through a relay (no direct or WebRTC path; check --ice-server and the NAT)',
      );
    else if (!now && onlyRelayed) log.info('direct connectivity again: not every peer is relayed');
    onlyRelayed = now;
  };

  const onOpen = (evt: CustomEvent<Connection>) => {
    const conn = evt.detail;
    if (connectionKind(conn.remoteAddr) === 'relayed') {
      if (conn.direction === 'outbound' && !direct(conn.remotePeer)) void tryUpgrade(conn);
    } else closeRelayed(conn.remotePeer);
    checkOnlyRelayed();
  };
  const onClose = () => checkOnlyRelayed();
  host.addEventListener('connection:open', onOpen);
  host.addEventListener('connection:close', onClose);
  return () => {
    stopped = true;
    clearTimeout(pendingWarn);
    host.removeEventListener('connection:open', onOpen);
    host.removeEventListener('connection:close', onClose);
  };
}
