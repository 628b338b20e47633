import path from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { bootstrap } from '@libp2p/bootstrap';
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { type GossipSub, gossipsub } from '@libp2p/gossipsub';
import { identify } from '@libp2p/identify';
import type { Connection, ConnectionGater } from '@libp2p/interface';
import { keychain } from '@libp2p/keychain';
import { mdns } from '@libp2p/mdns';
import { ping } from '@libp2p/ping';
import { prometheusMetrics } from '@libp2p/prometheus-metrics';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@libp2p/yamux';
import { FsDatastore } from 'datastore-fs';
import { createLibp2p, type Libp2p } from 'libp2p';
import type { Registry } from 'prom-client';
import { toHex } from '../chain/bytes.ts';
import { sha256 } from '../chain/hash.ts';
import type { NodeIdentity } from '../identity/identity.ts';
import { GOSSIP_DEFAULTS, type GossipScoreOptions, P2P_DEFAULTS, type P2pLimits } from '../options.ts';
import { readFairly } from './fair-read.ts';
import { ipColocationParams, relayedThrough } from './gossip-score.ts';
import { parseIceServer } from './ice-servers.ts';
import { servedToAdmittedOnly, type WhenAdmitted } from './identify-gate.ts';
import {
  configuredRelaysFilter,
  type RelayLimits,
  type ReservationRetry,
  relayPeerId,
  relayServerInit,
  reservationRetry,
} from './relay.ts';
import { grantYamuxWindowAtHalf } from './yamux-window.ts';

export interface HostOptions {
  readonly identity: NodeIdentity;
  readonly dataDir: string;
  /** Multiaddrs to listen on, e.g. /ip4/127.0.0.1/tcp/0 or /ip4/127.0.0.1/udp/0/webrtc-direct. */
  readonly listen: readonly string[];
  readonly bootstrap: readonly string[];
  /** Multicast DNS discovery; off unless asked for (it multicasts on the default interface). */
  readonly mdns: boolean;
  /**
   * Load WebRTC whatever the addresses say (a joining device whose inviter has WebRTC addresses,
   * a test's stranger dialling any transport); default: usesWebrtc decides.
   */
  readonly webrtc?: boolean;
  /** ICE servers for WebRTC (`--ice-server`: URL or JSON, ice-servers.ts); none unless configured. */
  readonly iceServers?: readonly string[];
  /**
   * Relays to keep a reservation on (`--relay`, each with /p2p/<id>): the host listens on one
   * `/p2p-circuit` slot per relay and on `/webrtc`, so members behind NATs can be reached
   * through them and upgrade to direct WebRTC. The watchdog (relay.ts) keeps them connected.
   */
  readonly relays?: readonly string[];
  /** Run a circuit relay v2 server (the `relay` capability) with these limits; none when absent. */
  readonly relayServer?: Partial<RelayLimits>;
  /** Addresses announced besides the listen ones (`--announce`: a reachable node's public address). */
  readonly announce?: readonly string[];
  /** Connection limits (the per-IP cap and slot split are enforced by the gater: connection-limits.ts). */
  readonly limits?: Partial<Pick<P2pLimits, 'maxConnections'>>;
  /** Gossipsub's IP-colocation penalty (gossip-score.ts). */
  readonly gossipScore?: Partial<GossipScoreOptions>;
  /** Service tag that keeps mDNS discovery to nodes of one chain. */
  readonly networkTag: string;
  readonly gater: Pick<
    ConnectionGater,
    | 'denyDialPeer'
    | 'denyInboundConnection'
    | 'denyOutboundConnection'
    | 'denyInboundEncryptedConnection'
    | 'denyOutboundEncryptedConnection'
    | 'denyInboundUpgradedConnection'
    | 'denyInboundRelayReservation'
    | 'denyOutboundRelayedConnection'
  >;
  /**
   * Gossipsub's application-specific score per peer id (weight 1): how roster mode keeps peers
   * not (yet) admitted out of meshes and publishing (admission-gate.ts). None: every peer 0.
   */
  readonly appScore?: (peerId: string) => number;
  /**
   * Roster mode: identify is answered only once this says the peer is admitted, so a stranger
   * learns none of our addresses and protocols while its handshake is pending (identify-gate.ts).
   */
  readonly admitted?: WhenAdmitted;
  /** Largest gossip message accepted or sent (must stay well below gossipsub's 4 MiB frame limit). */
  readonly maxGossipBytes: number;
  /** Registry for libp2p's own metrics (connections, streams, gossipsub); none when absent. */
  readonly metricsRegistry?: Registry;
}

const RESERVATION_RETRY = new WeakMap<object, ReservationRetry>();

/** The relay watchdog's way to ask for a reservation again (relay.ts `reservationRetry`). */
export function reservationRetryOf(host: object): ReservationRetry | undefined {
  return RESERVATION_RETRY.get(host);
}

export type CairnLibp2p = Libp2p<{ identify: unknown; ping: unknown; pubsub: GossipSub; keychain: unknown }>;

/**
 * The libp2p host: TCP and WebRTC-direct, noise, yamux, identify, ping, gossipsub, bootstrap
 * and (opt-in) mDNS. No UPnP, no relays, no public bootstrap list, no STUN unless configured.
 * Peer store, keychain and the WebRTC certificate persist in the data dir, so a restarted
 * node keeps its addresses (certhash included) and remembers its peers.
 */
/**
 * Whether the host loads WebRTC (node-datachannel): only a node that listens on a WebRTC
 * address (`/webrtc-direct`, or `/webrtc` to answer and dial private-to-private WebRTC), has a
 * WebRTC bootstrap address, keeps reservations on relays, or has ICE servers configured. The module alone costs ~55 MB of RSS
 * (measured: importing `@libp2p/webrtc` takes a Node 24 process from 42 to 97 MB), a third
 * of a Raspberry Pi node's budget, and a node reached over TCP on a LAN never uses it.
 */
export function usesWebrtc(
  opts: Pick<HostOptions, 'listen' | 'bootstrap' | 'relays' | 'iceServers' | 'webrtc'>,
): boolean {
  if (opts.webrtc !== undefined) return opts.webrtc;
  return (
    opts.listen.some((a) => a.includes('/webrtc')) ||
    // A bootstrap peer reachable only over WebRTC must stay reachable.
    opts.bootstrap.some((a) => a.includes('/webrtc')) ||
    (opts.relays?.length ?? 0) > 0 ||
    (opts.iceServers?.length ?? 0) > 0
  );
}

export async function createHost(opts: HostOptions): Promise<CairnLibp2p> {
  grantYamuxWindowAtHalf();
  const seed = opts.identity.signingKey.secretKey.subarray(0, 32);
  const datastore = new FsDatastore(path.join(opts.dataDir, 'p2p'));
  await datastore.open();
  const discovery = [];
  if (opts.bootstrap.length) discovery.push(bootstrap({ list: [...opts.bootstrap], timeout: 100 }));
  if (opts.mdns) discovery.push(mdns({ serviceTag: opts.networkTag, interval: 2000 }));
  // Gossipsub's score needs the host's connections; the host exists only once it is created.
  let connections: () => Connection[] = () => [];
  let relayTransport: unknown;
  // No STUN or TURN unless configured: nothing leaves the machine by default.
  const rtcConfiguration = {
    iceServers: (opts.iceServers ?? []).map((s) => ({ ...parseIceServer(s) })),
  } as RTCConfiguration;
  const relays = opts.relays ?? [];
  const relayIds = new Set(relays.map(relayPeerId));
  // One `/p2p-circuit` slot per relay (each asks the reservation store for one reservation).
  // Listen addresses the operator gave count: `--listen /p2p-circuit` alone keeps a node off TCP.
  const circuitSlots = Math.max(0, relays.length - opts.listen.filter((a) => a === '/p2p-circuit').length);
  const relayListen = relays.length
    ? [
        ...Array.from({ length: circuitSlots }, () => '/p2p-circuit'),
        ...(opts.listen.includes('/webrtc') ? [] : ['/webrtc']),
      ]
    : [];
  const webrtc = usesWebrtc(opts) ? await import('@libp2p/webrtc') : undefined;
  const node = await createLibp2p({
    // The node registers its protocols and listeners first, then starts the host.
    start: false,
    privateKey: opts.identity.privateKey,
    datastore,
    addresses: {
      listen: [...opts.listen, ...relayListen],
      // Appended, not `announce`: that would replace the transports' addresses, relay slots included.
      appendAnnounce: [...(opts.announce ?? [])],
    },
    transports: [
      tcp(),
      ...(webrtc ? [webrtc.webRTCDirect({ rtcConfiguration })] : []),
      // Every node can dial relayed addresses, and a WebRTC node private-to-private WebRTC ones;
      // only nodes with --relay listen on them. Discovery reserves on configured relays only (relay.ts).
      (components: Parameters<ReturnType<typeof circuitRelayTransport>>[0]) => {
        const t = circuitRelayTransport({ discoveryFilter: configuredRelaysFilter(relayIds) })(components);
        relayTransport = t;
        return t;
      },
      ...(webrtc ? [webrtc.webRTC({ rtcConfiguration })] : []),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: discovery,
    connectionGater: {
      // Loopback and LAN addresses are exactly what Cairn nodes use.
      denyDialMultiaddr: async () => false,
      // Not a gate: the first hook that sees each raw connection, used to pace its reads.
      denyInboundConnection: (maConn) => {
        readFairly(maConn);
        return false;
      },
      denyOutboundConnection: (_peer, maConn) => {
        readFairly(maConn);
        return false;
      },
      ...opts.gater,
    },
    connectionManager: {
      maxConnections: opts.limits?.maxConnections ?? P2P_DEFAULTS.maxConnections,
      maxIncomingPendingConnections: P2P_DEFAULTS.maxIncomingPendingConnections,
      inboundUpgradeTimeout: P2P_DEFAULTS.inboundUpgradeTimeoutMs,
      inboundConnectionThreshold: P2P_DEFAULTS.inboundConnectionThreshold,
      reconnectRetries: P2P_DEFAULTS.reconnectRetries,
      reconnectRetryInterval: P2P_DEFAULTS.reconnectRetryIntervalMs,
      reconnectBackoffFactor: P2P_DEFAULTS.reconnectBackoffFactor,
      maxPeerAddrsToDial: P2P_DEFAULTS.maxPeerAddrsToDial,
      dialTimeout: P2P_DEFAULTS.dialTimeoutMs,
    },
    metrics: opts.metricsRegistry
      ? prometheusMetrics({
          registry: opts.metricsRegistry,
          preserveExistingMetrics: true,
          collectDefaultMetrics: false,
        })
      : undefined,
    // The heartbeat (three missed pings in a row) decides when a connection is dead; the monitor
    // only measures round trips, so one slow ping on a loaded machine no longer drops a peer.
    connectionMonitor: { abortConnectionOnPingFailure: false },
    nodeInfo: { userAgent: 'cairn/0.1.0' },
    services: {
      // Roster mode: answered only once the peer is admitted (identify-gate.ts).
      identify: opts.admitted ? servedToAdmittedOnly(identify(), opts.admitted) : identify(),
      // Two pingers share the protocol: libp2p's connection monitor and the node's heartbeat
      // (peer-manager.ts). With the default of one outbound ping stream per connection, whichever
      // started second failed at once, and the monitor then aborted a healthy connection.
      ping: ping({ timeout: 5000, maxOutboundStreams: 4, maxInboundStreams: 4 }),
      keychain: keychain({ pass: toHex(sha256(new TextEncoder().encode('cairn/keychain/v1'), seed)) }),
      ...(opts.relayServer ? { relay: circuitRelayServer(relayServerInit(opts.relayServer)) } : {}),
      pubsub: gossipsub({
        // Blocks and entries carry their own signatures; message ids are content hashes,
        // so a block gossiped by ten peers is one message.
        globalSignaturePolicy: 'StrictNoSign',
        msgIdFn: (msg) => sha256(msg.data),
        asyncValidation: false,
        allowPublishToZeroTopicPeers: true,
        ignoreDuplicatePublishError: true,
        maxInboundDataLength: opts.maxGossipBytes + 4096,
        emitSelf: false,
        heartbeatInterval: GOSSIP_DEFAULTS.heartbeatMs,
        scoreParams: {
          // Loopback and relays in use are exempt from the IP-colocation penalty (gossip-score.ts).
          ...ipColocationParams(
            opts.gossipScore,
            relayedThrough(() => connections()),
          ),
          ...(opts.appScore ? { appSpecificScore: opts.appScore, appSpecificWeight: 1 } : {}),
        },
      }),
    },
  });
  connections = () => node.getConnections();
  const retry = reservationRetry(relayTransport);
  if (retry) RESERVATION_RETRY.set(node, retry);
  return node as unknown as CairnLibp2p;
}
