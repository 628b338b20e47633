import path from 'node:path';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { Counter, collectDefaultMetrics } from 'prom-client';
import { createEntry } from './chain/authoring.ts';
import { type Hex, toHex } from './chain/bytes.ts';
import { Chain, type ProcessResult } from './chain/chain.ts';
import { isModelHeadCode } from './chain/model-ledger.ts';
import { chainIdHex, type NetworkConfig } from './chain/network-config.ts';
import { CachedVerifier } from './chain/signature-cache.ts';
import type { EntryPayload, KeyValue, SealedBlock, SealedEntry } from './chain/types.ts';
import { VerifyPool } from './chain/verify-pool.ts';
import { readMembershipFile } from './cli/join.ts';
import { networkConfigToJson } from './config-file.ts';
import { type FlOptions, FlService, type FlServiceDeps } from './fl/net/service.ts';
import { flRoster } from './fl/net/trust.ts';
import {
  CAPABILITIES as ANNOUNCED_CAPABILITIES,
  type Capability,
  loadOrCreateIdentity,
  type NodeIdentity,
  type Role,
} from './identity/identity.ts';
import { createLogger, type Logger } from './log.ts';
import { bestAdmittedWork, isBehind } from './membership/catch-up.ts';
import { InvitationBook } from './membership/invitation-book.ts';
import { issueMembership } from './membership/issue-certificate.ts';
import { serveJoin } from './membership/join-protocol.ts';
import { Roster } from './membership/roster.ts';
import { isMembershipCode, MEMBER_REVOKE } from './membership/roster-state.ts';
import type { MembershipView } from './membership/view.ts';
import { EntryAdmission } from './mempool/admission.ts';
import { type AddResult, SOURCE } from './mempool/mempool.ts';
import { createMempoolMetrics } from './mempool/mempool-metrics.ts';
import { ReconcileProtocol, type ReconcileStats } from './mempool/reconcile-protocol.ts';
import { TurnGate } from './mempool/turn-gate.ts';
import { type MessagingDeps, MessagingService } from './messaging/service.ts';
import { createNodeMetrics, type NodeMetrics } from './metrics.ts';
import { Miner } from './mining/miner.ts';
import { MiningLoop } from './mining/mining-loop.ts';
import {
  GOSSIP_DEFAULTS,
  type GossipScoreOptions,
  MEMPOOL_DEFAULTS,
  P2P_DEFAULTS,
  type P2pLimits,
  type PeerBanOptions,
  type SyncLimits,
} from './options.ts';
import { AddressBans } from './p2p/address-bans.ts';
import { AddressRefusals } from './p2p/address-refusals.ts';
import { AdmissionGate, createAdmissionMetrics } from './p2p/admission-gate.ts';
import {
  ConnectionLimits,
  createConnectionLimitMetrics,
  relayIp,
  remoteIp,
} from './p2p/connection-limits.ts';
import { Gossip, gossipTopics } from './p2p/gossip.ts';
import { type CairnLibp2p, createHost, reservationRetryOf, usesWebrtc } from './p2p/host.ts';
import { addressRanges, capKey } from './p2p/ip-ranges.ts';
import type { Status } from './p2p/messages.ts';
import { DEFAULT_NODE_SERVE_BUDGET, NodeServeBudget } from './p2p/node-serve-budget.ts';
import { PeerManager } from './p2p/peer-manager.ts';
import { PeerScores } from './p2p/peer-scores.ts';
import {
  ANCESTOR,
  BLOCKS_BY_HASH,
  BLOCKS_BY_RANGE,
  forNetwork,
  HASHES_AT,
  HEADERS_BY_RANGE,
  reqRespPrefix,
} from './p2p/protocols.ts';
import { createRelayMetrics, RelayKeeper, type RelayLimits, relayGater } from './p2p/relay.ts';
import { upgradeRelayed } from './p2p/relay-upgrade.ts';
import { HandlerError, RESULT, ReqResp } from './p2p/reqresp.ts';
import { serveChainProtocols } from './p2p/serve-chain.ts';
import { ChainService } from './service/chain-service.ts';
import { type NodeStatus, nodeStatus } from './status.ts';
import { NodeStore } from './store/node-store.ts';
import { type SyncOutcome, TRUSTED_VOTER_MIN_SCORE } from './sync/range-sync.ts';
import { SyncManager } from './sync/sync-manager.ts';
import { UnknownBlockSync } from './sync/unknown-block.ts';

/** What gossip gets for an entry it must ignore without blame: a banned peer's, or past the gate. */
const PEER_REFUSED: AddResult = {
  status: 'rejected',
  reason: 'mempool-full',
  quota: 'queue',
  message: 'not admitting entries from this peer now',
};

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
const preciseNow = () => Number((performance.timeOrigin + performance.now()).toFixed(3));

export interface NodeOptions {
  readonly dataDir: string;
  readonly listen: readonly string[];
  readonly bootstrap: readonly string[];
  readonly mine: boolean;
  readonly mdns: boolean;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
  readonly network: NetworkConfig;
  readonly logLevel?: string;
  readonly iceServers?: readonly string[];
  /** Relays to keep a reservation on (`--relay`, with /p2p/<id>; node/p2p/relay.ts). */
  readonly relays?: readonly string[];
  /** Limits of the relay this node runs when it has the `relay` capability (defaults in options.ts). */
  readonly relayLimits?: Partial<RelayLimits>;
  /** Addresses announced besides the listen ones (`--announce`). */
  readonly announce?: readonly string[];
  /** Mempool reconciliation with a random peer every this many ms (0 = off; the job scheduler may drive it instead). */
  readonly reconcileIntervalMs?: number;
  /** Worker threads that check signatures of sync batches (default 2: sync is bound by them). */
  readonly verifyThreads?: number;
  readonly logger?: Logger;
  /** Federated learning: data slice and policy (every node serves and stores models regardless). */
  readonly fl?: FlOptions;
  /** Connection limits: total, reserved outbound, per IP, exempt ranges (defaults in options.ts). */
  readonly p2p?: Partial<P2pLimits>;
  /** Ban length, score table bound, address bans (defaults in options.ts). */
  readonly peers?: Partial<PeerBanOptions>;
  /** Range sync limits: the header pre-sync cap (defaults in options.ts SYNC_DEFAULTS). */
  readonly sync?: Partial<SyncLimits>;
  /** Gossipsub's IP-colocation penalty (defaults in options.ts). */
  readonly gossip?: Partial<GossipScoreOptions>;
  /**
   * What the admission gate judges peers by, in place of the roster derived from the chain
   * (node/membership/roster.ts): for tests of the gate's wiring with a plain-data roster.
   */
  readonly admissionView?: MembershipView;
}

/**
 * The peer id a bootstrap address names (…/p2p/<id>, in any spelling multiaddr accepts), or
 * undefined for an address without one or one that does not parse.
 */
export function bootstrapPeerId(addr: string): string | undefined {
  try {
    // The last /p2p/ component: for a relayed address (…/p2p/<relay>/p2p-circuit/p2p/<id>), the peer's.
    return multiaddr(addr)
      .getComponents()
      .findLast((c) => c.name === 'p2p')?.value;
  } catch {
    return undefined;
  }
}

/**
 * A Cairn node: identity, store, chain, p2p host with gossip and req/resp, sync, mempool
 * reconciliation and (with `mine`) a miner. Consensus never depends on anything outside it.
 */
/**
 * A peer's address group, as address bans count hosts (`capKey`: an IPv4 address, an IPv6 /64,
 * all of loopback), from its first connection with an IP; a relayed peer's is its relay's
 * (`relay:` and the relay's), and a peer with no connection now shares one group with all such
 * (`unknown`): a free id must not get a group of its own by hanging up. The node-wide serve
 * budget and the pre-sync budget give one share per group.
 */
function addressGroupOf(host: Pick<CairnLibp2p, 'getConnections'>, peer: PeerId): string {
  let relayed: string | undefined;
  for (const c of host.getConnections(peer)) {
    const ip = remoteIp(c.remoteAddr);
    if (ip) return capKey(ip);
    const relay = relayIp(c.remoteAddr);
    if (relay) relayed ??= `relay:${capKey(relay)}`;
  }
  return relayed ?? 'unknown';
}

export class CairnNode {
  private timers: NodeJS.Timeout[] = [];
  private miningLoop: MiningLoop | undefined;
  private miner: Miner | undefined;
  private stopped = false;
  private reportedDropped = 0;
  /** Federated learning: participant, model store and round coordinator (set during start). */
  fl: FlService | undefined;
  /** Direct messages: inbox, outbox and the `msg` protocols (set during start). */
  messaging: MessagingService | undefined;
  /** Keeps the reservations on configured relays (none without `--relay`; set during start). */
  relayKeeper: RelayKeeper | undefined;
  private unwireUpgrade: (() => void) | undefined;
  /** Set by the job worker: returns true while its `mempool.sync` scheduler is in charge. */
  externalReconcile: (() => boolean) | undefined;

  readonly opts: NodeOptions;
  readonly identity: NodeIdentity;
  readonly log: Logger;
  readonly metrics: NodeMetrics;
  readonly store: NodeStore;
  readonly chain: Chain;
  readonly chainService: ChainService;
  readonly host: CairnLibp2p;
  readonly reqresp: ReqResp;
  readonly peers: PeerManager;
  readonly gossip: Gossip;
  readonly reconcile: ReconcileProtocol;
  readonly sync: SyncManager;
  readonly unknownBlocks: UnknownBlockSync;
  private readonly pool: VerifyPool;
  readonly admission: EntryAdmission;
  readonly membership: Roster;
  readonly gate: AdmissionGate | undefined;
  private constructor(
    opts: NodeOptions,
    identity: NodeIdentity,
    log: Logger,
    metrics: NodeMetrics,
    store: NodeStore,
    chain: Chain,
    chainService: ChainService,
    host: CairnLibp2p,
    reqresp: ReqResp,
    peers: PeerManager,
    gossip: Gossip,
    reconcile: ReconcileProtocol,
    sync: SyncManager,
    unknownBlocks: UnknownBlockSync,
    pool: VerifyPool,
    admission: EntryAdmission,
    membership: Roster,
    /** Roster enforcement on connections (undefined in open mode). */
    gate: AdmissionGate | undefined,
  ) {
    this.opts = opts;
    this.identity = identity;
    this.log = log;
    this.metrics = metrics;
    this.store = store;
    this.chain = chain;
    this.chainService = chainService;
    this.host = host;
    this.reqresp = reqresp;
    this.peers = peers;
    this.gossip = gossip;
    this.reconcile = reconcile;
    this.sync = sync;
    this.unknownBlocks = unknownBlocks;
    this.pool = pool;
    this.admission = admission;
    this.membership = membership;
    this.gate = gate;
  }

  static async start(startOpts: NodeOptions): Promise<CairnNode> {
    let opts = startOpts;
    const identity = await loadOrCreateIdentity(opts.dataDir);
    const log =
      opts.logger ?? createLogger(opts.logLevel ?? 'info', { node: identity.peerId.toString().slice(-8) });
    const metrics = createNodeMetrics();
    collectDefaultMetrics({ register: metrics.registry });
    const chainIdHexValue = chainIdHex(opts.network);
    const verifier = new CachedVerifier();
    let store: NodeStore | undefined;
    const chain = new Chain({
      config: opts.network,
      verifier,
      loadBlock: (h) => store!.loadBlock(h),
      entryIndex: { holders: (ids) => store!.holders(ids) },
      headers: {
        storedHeader: (h) => store!.storedHeader(h),
        mainHeader: (h) => store!.mainHeader(h),
        mainHeaders: (from, to) => store!.mainHeaders(from, to),
      },
    });
    store = await NodeStore.open({
      file: path.join(opts.dataDir, 'chain.db'),
      chainIdHex: chainIdHexValue,
      genesisHashHex: chain.genesis.hashHex,
      genesisTarget: chain.genesis.header.target,
    });
    // At the head with a window of recent headers: start-up does not grow with the chain.
    chain.restore(await store.load({ window: chain.windowSize }));
    const membership = new Roster(
      { mode: opts.network.membership, chainId: chain.chainId, tipRoster: () => chain.tipRoster },
      // The certificate a joined device received (membership.json); genesis members and admins have
      // none. Refusals are counted by the admission gate, which knows the transport.
      { certificate: await readMembershipFile(opts.dataDir) },
    );
    if (opts.network.membership === 'roster') {
      // On a roster network the certificate (or the genesis roster) decides, not the flags.
      const own =
        membership.memberAt(identity.publicKeyHex, Date.now()) ??
        membership.admit(identity.publicKeyHex, membership.ownCertificate(), Date.now());
      const member = 'ok' in own ? (own.ok ? own.member : undefined) : own;
      opts = {
        ...opts,
        role: member?.role ?? 'observer',
        capabilities: ANNOUNCED_CAPABILITIES.filter((c) => member?.capabilities.has(c)),
      };
      log.info(
        { role: opts.role, capabilities: [...(member?.capabilities ?? [])], admin: member?.admin ?? false },
        member ? 'roster member' : 'not a member of this roster network: syncing and reading only',
      );
    }
    const pool = new VerifyPool(opts.verifyThreads ?? 2);
    const chainService = new ChainService(
      chain,
      store,
      verifier,
      pool,
      metrics,
      log.child({ part: 'chain' }),
    );
    chainService.on('head', () => membership.refresh(Date.now()));

    const scores = new PeerScores({
      banMs: opts.peers?.banMs,
      maxPeers: opts.peers?.maxScoredPeers,
      maxBans: opts.peers?.maxBannedPeers,
    });
    new Counter({
      name: 'cairn_peer_bans_unrecorded_total',
      help: 'Ban verdicts not remembered because the ban store was full (the address is banned instead)',
      registers: [metrics.registry],
      collect() {
        this.reset();
        this.inc(scores.bansUnrecorded);
      },
    });
    // Our own bootstrap addresses are never banned: the operator chose them, and a new device
    // knows no other way into its network.
    const neverBanned = [
      ...(opts.p2p?.ipLimitExempt ?? P2P_DEFAULTS.ipLimitExempt),
      ...addressRanges(opts.bootstrap),
    ];
    const addressBans = new AddressBans({
      threshold: opts.peers?.addressBanThreshold,
      halfLifeMs: opts.peers?.addressBanHalfLifeMs,
      exempt: neverBanned,
    });
    const limitMetrics = createConnectionLimitMetrics(metrics.registry);
    // No peer id is known yet when these refuse (before noise): refusals are counted, not scored.
    const limits = new ConnectionLimits({
      ...opts.p2p,
      addressBans,
      onRefuse: (err) => {
        limitMetrics.onRefuse(err);
        log.debug({ code: err.code, address: err.address }, 'connection refused');
      },
      onAbandoned: limitMetrics.onAbandoned,
      onEvicted: limitMetrics.onEvicted,
    });
    let peers: PeerManager | undefined;
    const refuse = async (p: PeerId) => peers?.refuses(p) ?? false;
    const chainTag = chainIdHexValue.slice(0, 16);
    // Set once gossip exists; the gate only reports state changes after the host has started.
    let gossipRef: Gossip | undefined;
    // In roster mode every connection passes the admission handshake before anything is served
    // or gossiped (p2p/admission-gate.ts), judged by the roster at our tip.
    const admissionView = opts.admissionView ?? membership;
    const bootstrapPeerIds = new Set(opts.bootstrap.flatMap((a) => bootstrapPeerId(a) ?? []));
    const gate: AdmissionGate | undefined =
      admissionView.mode === 'roster'
        ? new AdmissionGate({
            view: admissionView,
            protocolId: `${reqRespPrefix(chainIdHexValue)}/admission/1`,
            // A refusal bans the key at most, never its address (peer-manager.ts `chargeAddress`).
            penalise: (p, action, reason) => peers?.penalise(p, action, reason, { chargeAddress: false }),
            metrics: createAdmissionMetrics(metrics.registry),
            log: log.child({ part: 'admission' }),
            onStateChange: (p) => gossipRef?.rescore(p),
            addressRefusals: new AddressRefusals({ exempt: neverBanned }),
            // Only peers we chose may serve us read-only: anyone can self-sign a certificate.
            readOnlySource: (p) => bootstrapPeerIds.has(p.toString()),
            // A new device knows only genesis: peers it cannot judge yet may serve it read-only.
            // Only admitted peers' statuses count (membership/catch-up.ts): a read-only stranger's
            // claim of more work must not keep us behind.
            behind: (): boolean => {
              const now = Date.now();
              return isBehind({
                tipTimestampMs: chain.tip.header.timestamp,
                tipWork: chain.tip.chainWork,
                bestAdmittedWork: bestAdmittedWork(peers?.book.syncable(now) ?? [], (p): boolean =>
                  gate!.isAdmitted(p),
                ),
                admittedPeers: gate!.admittedCount(),
                nowMs: now,
              });
            },
          })
        : undefined;
    // Serving, gossip and identify: admitted peers only.
    const admitted = gate ? (p: PeerId) => gate.whenAdmitted(p) : undefined;
    if (gate) chainService.on('head', () => gate.rejudge());
    const relayMetrics = createRelayMetrics(metrics.registry, () => hostRef?.getConnections() ?? []);
    let hostRef: CairnLibp2p | undefined;
    const host = await createHost({
      identity,
      dataDir: opts.dataDir,
      listen: opts.listen,
      bootstrap: opts.bootstrap,
      mdns: opts.mdns,
      iceServers: opts.iceServers,
      relays: opts.relays,
      announce: opts.announce,
      // Members only: the relay hooks below refuse everyone the roster does not admit.
      relayServer: opts.capabilities.includes('relay') ? (opts.relayLimits ?? {}) : undefined,
      networkTag: `cairn-${chainTag}`,
      gater: {
        // Roster mode: members only (awaiting a pending peer's verdict); open mode: any peer.
        ...relayGater({
          isMember: gate ? (p) => gate.whenAdmitted(p) : () => true,
          metrics: relayMetrics,
          penalise: (p, action, reason) => peers?.penalise(p, action, reason),
          log: log.child({ part: 'relay' }),
        }),
        // Per-IP cap, inbound slots, address bans: before any crypto runs.
        denyInboundConnection: limits.denyInboundConnection,
        denyOutboundConnection: limits.denyOutboundConnection,
        denyInboundUpgradedConnection: limits.denyInboundUpgradedConnection,
        // Bans and blocks, then (roster mode) the roster: after noise, on every transport.
        ...(gate
          ? {
              denyDialPeer: async (p: PeerId) => (await refuse(p)) || gate.denyDialPeer(p),
              denyInboundEncryptedConnection: async (
                p: PeerId,
                c: Parameters<AdmissionGate['denyInboundEncryptedConnection']>[1],
              ) => (await refuse(p)) || gate.denyInboundEncryptedConnection(p, c),
              denyOutboundEncryptedConnection: async (
                p: PeerId,
                c: Parameters<AdmissionGate['denyOutboundEncryptedConnection']>[1],
              ) => (await refuse(p)) || gate.denyOutboundEncryptedConnection(p, c),
            }
          : {
              denyDialPeer: refuse,
              denyInboundEncryptedConnection: refuse,
              denyOutboundEncryptedConnection: refuse,
            }),
      },
      appScore: gate ? (p) => gate.gossipScore(p) : undefined,
      admitted,
      maxGossipBytes: opts.network.maxBlockBytes,
      metricsRegistry: metrics.registry,
      limits: { maxConnections: limits.maxConnections },
      gossipScore: opts.gossip,
    });
    hostRef = host;
    const penalise = (p: PeerId, action: Parameters<PeerManager['penalise']>[1], reason: string) =>
      peers?.penalise(p, action, reason);
    const reqresp = new ReqResp(
      host,
      reqRespPrefix(chainIdHexValue),
      {
        penalise,
        observe: (protocol, direction, outcome, ms) =>
          metrics.reqresp.observe({ protocol, direction, outcome }, ms / 1000),
        // Read-only peers (admitted while we catch up) are served nothing, but we fetch from them.
        refuses: (p) => (peers?.refuses(p) ?? false) || (gate?.isReadOnly(p) ?? false),
        admitted: gate ? (p) => gate.whenFetchable(p) : undefined,
      },
      log.child({ part: 'reqresp' }),
    );
    const ourStatus = (): Status => ({
      chainId: chain.chainId,
      genesisHash: chain.genesis.hash,
      headHash: chain.tip.hash,
      headHeight: chain.tip.height,
      totalWork: chain.tip.chainWork,
      role: opts.role,
      capabilities: opts.capabilities,
    });
    let sync: SyncManager | undefined;
    peers = new PeerManager({
      host,
      reqresp,
      scores,
      ourStatus,
      metrics,
      log: log.child({ part: 'peers' }),
      onStatus: () => sync?.poke(),
      maxConnections: limits.maxConnections,
      addressBans,
      // Bootstrap peers are the operator's choice (a new device knows no members yet); mDNS
      // finds anyone on the LAN, so only keys the chain records as members are dialled.
      mayDial: gate ? (p) => bootstrapPeerIds.has(p.toString()) || gate.mayDial(p) : undefined,
      // Only an admitted peer's ban counts against its address (attack finding B, issue 12).
      addressAnswersFor: gate ? (p) => gate.isAdmitted(p) : undefined,
    });
    // Entries from peers and the API: per-peer rate, then batched commits (one transaction each).
    const mempoolMetrics = createMempoolMetrics(metrics.registry, chain.mempool);
    const admission = new EntryAdmission({
      commit: (items) => chainService.submitEntries(items),
      penalise: (p, action, reason) => penalise(peerIdFromString(p), action, reason),
      observe: (outcome) => mempoolMetrics.admissions.inc({ outcome }),
    });
    const entryGate = new TurnGate();
    let node: CairnNode | undefined;
    const gossip = new Gossip(
      host.services.pubsub,
      gossipTopics(chainTag),
      opts.network.maxBlockBytes,
      GOSSIP_DEFAULTS.maxEntryBytes,
      {
        onBlock: (block, from) => node!.receiveGossipBlock(block, from),
        // The rates first, before decoding: a flood over them is refused (and its sender
        // penalised) as it arrives, not after the backlog ahead of it.
        preadmitEntry: (from) => admission.ticket(from.toString()),
        onEntry: async (entry, from) => {
          // A burst is spread over event-loop turns; a banned peer's backlog costs nothing more.
          if (!(await entryGate.enter()) || peers?.refuses(from)) return PEER_REFUSED;
          return admission.enqueue(entry, from.toString());
        },
        penalise,
        refuses: (p) => peers?.refuses(p) ?? false,
        admitted,
      },
      metrics,
    );
    gossipRef = gossip;
    const reconcile = new ReconcileProtocol({
      host,
      protocolId: reqresp.protocolId('mempool-reconcile'),
      entries: () => chain.mempool.all(),
      accept: async (entries, from) => {
        // Entries we asked for: over the rate they wait for the next round, unblamed.
        const results = await admission.submitMany(entries, from.toString(), false);
        return results.filter(
          (r) =>
            r.status === 'rejected' &&
            r.reason !== 'already-included' &&
            r.reason !== 'mempool-full' &&
            r.reason !== 'entry-timestamp-in-future' &&
            !isMembershipCode(r.reason) &&
            !isModelHeadCode(r.reason),
        ).length;
      },
      penalise,
      refuses: (p) => (peers?.refuses(p) ?? false) || (gate !== undefined && !gate.isAdmitted(p)),
      log: log.child({ part: 'reconcile' }),
    });
    const blocksByRange = forNetwork(BLOCKS_BY_RANGE, opts.network.maxBlockBytes);
    const blocksByHash = forNetwork(BLOCKS_BY_HASH, opts.network.maxBlockBytes);
    sync = new SyncManager(
      chain,
      peers.book,
      {
        chain,
        requestRange: (p, start, count) => reqresp.request(p, blocksByRange, { startHeight: start, count }),
        requestAncestor: async (p, locator) => {
          const [ref] = await reqresp.request(p, ANCESTOR, locator);
          if (!ref) {
            // Every node has at least genesis in common with us: an empty answer is a refusal,
            // and unpunished it would keep a peer that claims the most work our sync target.
            penalise(p, 'mid-tolerance', 'ancestor: empty answer');
            throw new Error('no ancestor in answer');
          }
          return ref;
        },
        requestHashesAt: (p, heights) => reqresp.request(p, HASHES_AT, heights),
        requestHeaders: (p, start, count) =>
          reqresp.request(p, HEADERS_BY_RANGE, { startHeight: start, count }),
        submit: (blocks, from) => chainService.submitBlocks(blocks, 'sync', from),
        preverify: (blocks) => chainService.preverify(blocks),
        penalise: (p, a, r) => penalise(p, a, r),
        // Only peers with an established good score vote at checkpoints; serving imported batches
        // earns it. The vote is advisory: it is counted and logged, never acted on.
        isTrustedVoter: (p) => scores.score(p.toString(), Date.now()) >= TRUSTED_VOTER_MIN_SCORE,
        onCheckpointDisagreement: () => metrics.checkpointDisagreements.inc(),
        onPresync: (outcome, headers) => {
          metrics.presyncs.inc({ outcome });
          metrics.presyncHeaders.inc(headers);
        },
        // A batch that connected: it also extends a read-only server's stay (admission-gate.ts).
        reward: (p) => {
          scores.reward(p.toString(), Date.now());
          gate?.served(p);
        },
        onSplit: (info) => {
          metrics.splits.inc();
          log.warn(info, 'network split detected: a peer followed another chain for more than 6 blocks');
        },
        log: log.child({ part: 'sync' }),
      },
      metrics,
      log.child({ part: 'sync' }),
      {
        ...(opts.sync?.maxPresyncHeaders !== undefined
          ? { maxPresyncHeaders: opts.sync.maxPresyncHeaders }
          : {}),
        groupOf: (p) => addressGroupOf(host, p),
      },
    );
    const unknownBlocks = new UnknownBlockSync({
      fetchBlock: (p, hashHex) =>
        reqresp.request(peerIdFromString(p), blocksByHash, [Buffer.from(hashHex, 'hex')]),
      submit: (blocks, p) => chainService.submitBlocks(blocks, 'ancestor', p),
      dropOrphansFrom: (p) => chainService.dropOrphansFrom(p),
      penalise: (p, a, r) => penalise(peerIdFromString(p), a, r),
      pokeSync: () => sync?.poke(),
      count: (outcome) => metrics.unknownBlockFetches.inc({ outcome }),
    });
    chainService.on('events', (events) => {
      for (const e of events)
        if (e.type === 'orphan-dropped') metrics.orphansDropped.inc({ reason: e.reason });
      const expired = events.flatMap((e) =>
        e.type === 'orphan-dropped' && e.reason === 'orphan-expired' ? [e.from] : [],
      );
      if (expired.length) unknownBlocks.onOrphansExpired(expired);
    });
    node = new CairnNode(
      opts,
      identity,
      log,
      metrics,
      store,
      chain,
      chainService,
      host,
      reqresp,
      peers,
      gossip,
      reconcile,
      sync,
      unknownBlocks,
      pool,
      admission,
      membership,
      gate,
    );
    // Entries a reorg returned: retried as room frees up, and gossiped again once back in the pool.
    chainService.on('events', () => void node!.readmitReturned());
    await node.registerProtocols();
    // Listeners first: bootstrap dials and identify can complete while the host starts.
    // A relayed bootstrap connection opens during start: the upgrade must already listen.
    // Only a WebRTC node can dial `/p2p-circuit/webrtc` (host.ts usesWebrtc); a TCP-only one
    // stays relayed with a peer behind NAT (`--listen /webrtc` loads WebRTC for it).
    if (usesWebrtc(opts))
      node.unwireUpgrade = upgradeRelayed(host, log.child({ part: 'relay' }), relayMetrics);
    peers.start();
    await host.start();
    gossip.start();
    sync.start();
    // After start: a relay that is down only delays the reservation, never the node.
    if (opts.relays?.length) {
      node.relayKeeper = new RelayKeeper({
        host,
        relays: opts.relays,
        metrics: relayMetrics,
        log: log.child({ part: 'relay' }),
        retry: reservationRetryOf(host),
      });
      node.relayKeeper.start();
    }
    await node.startBackground();
    return node;
  }

  private async registerProtocols(): Promise<void> {
    // First, so no connection opens before its handshake is listened for.
    await this.gate?.start(this.host);
    const m = this.metrics;
    await serveChainProtocols(this.reqresp, this.chain, this.store, this.peers, {
      nodeBudget: new NodeServeBudget({
        ...DEFAULT_NODE_SERVE_BUDGET,
        onWait: (ms) => m.serveWaits.observe(ms / 1000),
      }),
      // One share per address group, as address bans count (capKey): ids from one host share it.
      groupOf: (peer) => addressGroupOf(this.host, peer),
      onBusy: (reason, ending) => m.serveBusy.inc({ reason, ending }),
    });
    if (this.membership.mode === 'roster') await this.serveInvitations();
    await this.reconcile.start();
    this.fl = new FlService(this.flDeps(), this.opts.fl);
    await this.fl.start();
    this.messaging = new MessagingService(this.messagingDeps());
    await this.messaging.start();
  }

  /** The member a key is now: the chain's record, else the certificate it was admitted with. */
  private memberOfKey(keyHex: Hex) {
    const now = Date.now();
    if (keyHex === this.identity.publicKeyHex) {
      const own = this.membership.admit(keyHex, this.membership.ownCertificate(), now);
      return own.ok ? own.member : undefined;
    }
    const chained = this.membership.memberAt(keyHex, now);
    if (chained) return chained;
    try {
      const peer = peerIdFromPublicKey(publicKeyFromRaw(Buffer.from(keyHex, 'hex'))).toString();
      return this.gate?.member(peer);
    } catch {
      return undefined;
    }
  }

  /** The parts of this node messaging uses (messaging/service.ts). */
  private messagingDeps(): MessagingDeps {
    const byName = (name: string) =>
      this.membership.members(Date.now()).find((m) => m.name === name)?.publicKeyHex;
    return {
      chainId: this.chain.chainId,
      signingKey: this.identity.signingKey,
      writes: this.store.writes,
      reqresp: this.reqresp,
      penalise: (peer, action, reason) => {
        try {
          this.peers.penalise(peerIdFromString(peer), action, reason);
        } catch {}
      },
      // Open networks let anyone message; roster networks only members holding `message`.
      mayMessage: (keyHex) =>
        this.membership.mode === 'open' || (this.memberOfKey(keyHex)?.capabilities.has('message') ?? false),
      resolve: (to) => {
        if (/^[0-9a-f]{64}$/i.test(to)) return to.toLowerCase();
        const named = byName(to);
        if (named) return named;
        try {
          const raw = peerIdFromString(to).publicKey?.raw;
          return raw && raw.length === 32 ? toHex(raw) : undefined;
        } catch {
          return undefined;
        }
      },
      nameOf: (keyHex) => this.memberOfKey(keyHex)?.name,
      onPeerConnected: (listener) => {
        const on = (e: CustomEvent<PeerId>) => listener(e.detail.toString());
        this.host.addEventListener('peer:connect', on);
        return () => this.host.removeEventListener('peer:connect', on);
      },
      // Roster: members with `relay` or `archive`; open networks: what the node announces.
      isMailbox: (keyHex) => {
        if (this.membership.mode === 'open')
          return (
            keyHex === this.identity.publicKeyHex &&
            this.opts.capabilities.some((c) => c === 'relay' || c === 'archive')
          );
        const caps = this.memberOfKey(keyHex)?.capabilities;
        return caps !== undefined && (caps.has('relay') || caps.has('archive'));
      },
      connectedPeers: () => this.host.getPeers().map(String),
      registry: this.metrics.registry,
      log: this.log,
    };
  }

  /** The parts of this node federated learning uses (fl/net/service.ts). */
  private flDeps(): FlServiceDeps {
    const self = this.identity.peerId.toString();
    // Roster mode: the member the chain records, or the one a peer was admitted as by the
    // certificate it presented (a new device before the chain records its addition).
    const member = (peer: string) => {
      const now = Date.now();
      if (peer === self) {
        const own = this.membership.admit(this.identity.publicKeyHex, this.membership.ownCertificate(), now);
        return own.ok ? own.member : undefined;
      }
      let key: Uint8Array | undefined;
      try {
        key = peerIdFromString(peer).publicKey?.raw;
      } catch {
        return undefined;
      }
      return (key && this.membership.memberAt(toHex(key), now)) ?? this.gate?.member(peer);
    };
    return {
      self,
      dataDir: this.opts.dataDir,
      registry: this.metrics.registry,
      reqresp: this.reqresp,
      peers: () => this.peers.book.all().map((r) => r.peer),
      roster: flRoster({
        mode: this.membership.mode,
        member,
        claims: (peer) =>
          peer === self ? this.opts.capabilities : (this.peers.book.get(peer)?.status.capabilities ?? []),
      }),
      chain: {
        onEvents: (listener) => {
          this.chainService.on('events', listener);
          return () => this.chainService.off('events', listener);
        },
        getBlock: (hashHex) => this.chain.getBlock(hashHex),
        modelHead: () => this.chain.tipModel,
        modelLineage: (limit) => this.chain.models.lineage(this.chain.tree.tip, limit),
      },
      addEntry: async (payload) => {
        const { entry, result } = await this.addEntry(payload);
        if (result.status === 'rejected')
          throw new Error(`model entry rejected: ${result.reason}: ${result.message}`);
        return entry.idHex;
      },
      penalise: (peer, action, reason) => {
        try {
          this.peers.penalise(peerIdFromString(peer), action, reason);
        } catch {}
      },
      sign: async (message) => this.identity.privateKey.sign(message),
      log: this.log,
    };
  }

  /**
   * The inviter's side of `join`: redeems an invitation from this node's book and, if this node
   * is an admin at its tip, signs the device's certificate and submits its `member.add` entry.
   */
  private async serveInvitations(): Promise<void> {
    const book = new InvitationBook(this.opts.dataDir);
    const outcomes = new Counter({
      name: 'cairn_invitations_redeemed_total',
      help: 'Invitations presented to this node by outcome: issued, or why they were refused',
      labelNames: ['outcome'],
      registers: [this.metrics.registry],
    });
    await serveJoin(this.reqresp, {
      redeem: async (secret, key) => {
        // Checked before the invitation is burnt: a non-admin cannot sign what it redeems.
        if (!this.membership.memberAt(this.identity.publicKeyHex, Date.now())?.admin)
          throw new HandlerError(RESULT.unavailable, 'this node is not an admin of its network');
        return book.redeem(secret, key);
      },
      issue: async (terms, key) => {
        const { certificate, addition } = issueMembership(
          this.chain.chainId,
          terms,
          key,
          this.identity.signingKey,
        );
        const r = await this.submitSignedEntry(addition);
        if (r.status === 'rejected')
          throw new Error(`the member.add entry was refused: ${r.reason}: ${r.message}`);
        // Known at once: until the entry is mined, the certificate is all that says this key may
        // mine (a non-admin's revocation of it is refused, jobs/command-verifier.ts).
        if (this.membership instanceof Roster) this.membership.noteCertificate(certificate);
        this.log.info(
          { member: key, name: terms.name, role: terms.role, entry: addition.idHex },
          'invitation redeemed',
        );
        return certificate.encoded;
      },
      networkConfigJson: networkConfigToJson(this.opts.network),
      publicKeyOf: (peer) => toHex(peer.publicKey!.raw),
      count: (outcome) => outcomes.inc({ outcome }),
      holdOpen: this.gate ? (peer) => this.gate!.holdOpen(peer) : undefined,
    });
  }

  /** Revokes a member: an admin-signed `member.revoke` entry, mined like any other. */
  async revokeMember(publicKeyHex: Hex): Promise<{ entry: SealedEntry; result: AddResult }> {
    const entry = createEntry(
      { kind: 'config', changes: [[MEMBER_REVOKE, publicKeyHex.toLowerCase()]] },
      this.identity.signingKey,
      Date.now(),
    );
    return { entry, result: await this.submitSignedEntry(entry) };
  }

  private async startBackground(): Promise<void> {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const t = setInterval(
        () =>
          void fn().catch((err) => this.log.warn({ err: (err as Error).message }, 'background task failed')),
        ms,
      );
      t.unref();
      this.timers.push(t);
    };
    // A failed commit leaves the chain in memory ahead of the store: nothing may be built on it.
    this.chainService.once('storage-failed', () => void this.miningLoop?.stop());
    every(30_000, () => this.chainService.maintenance());
    const reconcileMs = this.opts.reconcileIntervalMs ?? MEMPOOL_DEFAULTS.reconcileIntervalMs;
    // The job scheduler drives reconciliation while Redis is up; this timer covers the rest.
    if (reconcileMs > 0)
      every(reconcileMs, async () => {
        if (!this.externalReconcile?.()) await this.reconcileWithRandomPeer();
      });
    if (this.opts.mine) {
      this.miner = new Miner();
      this.miningLoop = new MiningLoop({
        chain: this.chain,
        miner: this.miner,
        key: this.identity.signingKey,
        submit: (block) => this.submitMinedBlock(block),
        onStopped: (err) =>
          this.log.error({ err: err.message }, 'mining stopped: a mined block could not be submitted'),
      });
      this.chainService.on('head', () => this.miningLoop?.headChanged());
      let lastHashes = 0;
      every(2_000, async () => {
        const h = this.miner?.hashes ?? 0;
        this.metrics.hashes.inc(h - lastHashes);
        lastHashes = h;
      });
      this.miningLoop.start();
    }
  }

  private async submitMinedBlock(block: SealedBlock): Promise<void> {
    const minedAt = preciseNow();
    const [r] = await this.chainService.submitBlocks([block], 'mined');
    if (r?.status === 'connected' || r?.status === 'reorg') {
      this.metrics.blocksMined.inc();
      this.log.info(
        { height: block.header.height, hash: block.hashHex, entries: block.entries.length, atMs: minedAt },
        'mined block',
      );
      await this.gossip
        .publishBlock(block)
        .catch((err) => this.log.warn({ err: (err as Error).message }, 'publish failed'));
    }
  }

  /** A gossiped block: process it; if its parent is unknown, the unknown-block fetcher takes over. */
  private async receiveGossipBlock(block: SealedBlock, from: PeerId): Promise<ProcessResult> {
    const [r] = await this.chainService.submitBlocks([block], 'gossip', from.toString());
    if (r?.status === 'connected' || r?.status === 'reorg' || r?.status === 'side') {
      this.log.info(
        {
          height: block.header.height,
          hash: block.hashHex,
          from: from.toString(),
          status: r.status,
          atMs: preciseNow(),
        },
        'block received',
      );
    }
    if (r?.status === 'orphan') this.unknownBlocks.onOrphan(from.toString(), r.missingParent);
    if (r?.status === 'ignored' && r.reason === 'orphan-too-far-ahead') this.unknownBlocks.onFarAhead();
    return r!;
  }

  private async readmitReturned(): Promise<void> {
    try {
      const back = await this.chainService.readmitHeld();
      for (const e of back) await this.gossip.publishEntry(e).catch(() => {});
      const { dropped } = this.chain.mempool.returned.counts;
      if (dropped > this.reportedDropped) {
        this.log.warn(
          { dropped: dropped - this.reportedDropped, held: this.chain.mempool.returned.size },
          'entries returned by a reorg dropped: their hold is over its bound',
        );
        this.reportedDropped = dropped;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'readmitting returned entries failed');
    }
  }

  async reconcileWithRandomPeer(): Promise<ReconcileStats | undefined> {
    const candidates = this.peers.book.all();
    const pick = candidates[Math.floor(Math.random() * candidates.length)];
    if (!pick) return undefined;
    return this.reconcileWith(pick.peer);
  }

  async reconcileWith(peer: PeerId): Promise<ReconcileStats> {
    try {
      const stats = await this.reconcile.reconcileWith(peer);
      this.metrics.reconciliations.inc({ outcome: 'ok' });
      return stats;
    } catch (err) {
      this.metrics.reconciliations.inc({ outcome: 'failed' });
      throw err;
    }
  }

  /** Creates a knowledge entry signed by this node, adds it to the mempool and gossips it. */
  async addKnowledge(
    content: string,
    metadata: readonly KeyValue[] = [],
  ): Promise<{ entry: SealedEntry; result: AddResult }> {
    const sorted = [...metadata].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return this.addEntry({ kind: 'knowledge', content, metadata: sorted });
  }

  /** Signs an entry with this node's key, adds it to the mempool and gossips it. */
  async addEntry(payload: EntryPayload): Promise<{ entry: SealedEntry; result: AddResult }> {
    const entry = createEntry(payload, this.identity.signingKey);
    const result = await this.admission.submit(entry, SOURCE.local);
    if (result.status === 'added') await this.gossip.publishEntry(entry).catch(() => {});
    return { entry, result };
  }

  /** Adds an entry someone else signed (an admin's config entry) to the mempool and gossips it. */
  async submitSignedEntry(entry: SealedEntry): Promise<AddResult> {
    const result = await this.chainService.submitEntry(entry);
    if (result.status === 'added') await this.gossip.publishEntry(entry).catch(() => {});
    return result;
  }

  /** Fresh statuses from every connected peer, then a sync if one of them has more work. */
  async syncChain(): Promise<{ outcome: SyncOutcome | undefined }> {
    await this.peers.refresh(0);
    return { outcome: await this.sync.syncNow() };
  }

  /** Re-exchanges statuses with all peers and redials bootstrap peers that are not connected. */
  async refreshPeers(): Promise<{ peers: string[] }> {
    await this.peers.refresh(0);
    const connected = new Set(this.host.getPeers().map(String));
    await Promise.all(
      this.opts.bootstrap.map(async (addr) => {
        const ma = multiaddr(addr);
        const id = bootstrapPeerId(addr);
        if (id && (connected.has(id) || this.peers.refuses(id))) return;
        await this.host.dial(ma, { signal: AbortSignal.timeout(10_000) }).catch(() => {});
      }),
    );
    return { peers: this.host.getPeers().map(String) };
  }

  /** Hashes computed by this node's miner since start (0 when it does not mine). */
  get minerHashes(): number {
    return this.miner?.hashes ?? 0;
  }

  /** The node's status (node/status.ts builds it; `/status` and the stats report serve it). */
  status(): NodeStatus {
    return nodeStatus(this);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.relayKeeper?.stop();
    this.unwireUpgrade?.();
    await this.fl?.stop();
    await this.messaging?.stop();
    await this.miningLoop?.stop();
    await this.miner?.close();
    await this.sync.stop();
    await this.unknownBlocks.stop();
    this.peers.stop();
    this.gossip.stop();
    await this.gate?.stop();
    // Let a running commit finish, then close the store before the network stack: a crash while
    // libp2p tears down (node-datachannel's UDP mux has been seen to abort) then loses nothing.
    await this.chainService.maintenance().catch(() => {});
    await this.store.close();
    await this.pool.close();
    // After a failed commit the disk is likely full: libp2p's stop writes the peer store to the
    // data dir and an ENOSPC there escapes as an unhandled rejection (seen in the disk-full test).
    // Connections are closed and the sockets left to the process exit that follows.
    if (this.listensOnWebrtc() || this.chainService.failure) {
      // node-datachannel 0.33 aborts the process when a STUN request reaches its UDP mux while
      // the listener is torn down (IceUdpMuxListener::UnhandledStunRequestCallback), and peers
      // redial at once. So a WebRTC node closes its connections and leaves the sockets to the
      // process exit that follows (main.ts); everything durable is already closed above.
      await Promise.all(
        this.host.getConnections().map((c) => c.close().catch(() => c.abort(new Error('stopping')))),
      );
      return;
    }
    await this.host.stop();
  }

  private listensOnWebrtc(): boolean {
    // WebRTC-direct and private-to-private WebRTC (`/webrtc`) both run on node-datachannel.
    return this.host.getMultiaddrs().some((a) => a.toString().includes('/webrtc'));
  }
}
