/**
 * The node's status: one shape (`NodeStatus`), one builder (`nodeStatus`). The HTTP API's
 * `GET /status` serves it as is, the job worker's stats report is derived from it
 * (jobs/node-stats.ts) and the cluster harness types its `status()` with it, so a field added
 * or renamed here reaches every consumer through tsc instead of drifting in three copies.
 *
 * Every field is JSON-ready (strings, numbers, booleans; no bigint, Date or bytes), so what a
 * client parses off `/status` has this very type; an optional field that is undefined here is
 * absent from the JSON.
 */
import type { Hex } from './chain/bytes.ts';
import { toHex } from './chain/bytes.ts';
import type { DpMode } from './fl/dp-mode.ts';
import type { Capability, Role } from './identity/identity.ts';
import type { AdmissionRefusal, Role as MemberRole, MembershipMode } from './membership/view.ts';
import type { MessagingStats } from './messaging/delivery-stats.ts';
import type { CairnNode } from './node.ts';
import { type ConnectionKind, connectionKind, countKinds, type RelayState } from './p2p/relay.ts';
import type { StorageFailure } from './service/chain-service.ts';
import type { SyncOutcome } from './sync/range-sync.ts';
import type { SyncState } from './sync/sync-manager.ts';

/** This node's own standing in its network. */
export interface MembershipStatus {
  readonly mode: MembershipMode;
  /** Admitted by its certificate or the chain's roster (always true in open mode). */
  readonly member: boolean;
  readonly admin: boolean;
  /** Why this node is not a member, when it is not. */
  readonly refusal?: AdmissionRefusal;
}

/** A connected peer as this node sees it. */
export interface PeerStatus {
  readonly peerId: string;
  /** Last ping round trip; absent before the first. */
  readonly rttMs?: number | undefined;
  /** The head height and role from the peer's last status message; absent before the handshake. */
  readonly height?: number | undefined;
  readonly role?: Role | undefined;
  /** Roster mode: the name and role the peer was admitted as. */
  readonly member?: { readonly name: string; readonly role: MemberRole } | undefined;
  /** Its score now (decayed), two decimals. */
  readonly score: number;
  readonly remoteAddrs: string[];
  /** What each open connection runs over, in `remoteAddrs` order (node/p2p/relay.ts). */
  readonly kinds: ConnectionKind[];
}

export type StorageStatus = { readonly ok: true } | ({ readonly ok: false } & StorageFailure);

export interface NodeStatus {
  readonly peerId: string;
  readonly publicKey: Hex;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
  readonly membership: MembershipStatus;
  readonly chainId: Hex;
  readonly height: number;
  readonly headHash: Hex;
  /** Cumulative work of the tip, decimal. */
  readonly totalWork: string;
  /** The tip's difficulty target, hex without `0x` (the stats report carries it in decimal). */
  readonly difficultyTarget: string;
  readonly mempoolSize: number;
  readonly orphanCount: number;
  /** Blocks in the tree: main chain and the side-chain blocks kept. */
  readonly blockCount: number;
  readonly syncState: SyncState;
  /** How the last sync ended; absent before the first. */
  readonly lastSync?: SyncOutcome | undefined;
  /** True while this node mines: it was started with `mine` and its store has not failed. */
  readonly mining: boolean;
  readonly storage: StorageStatus;
  readonly addrs: string[];
  /** Open connections by kind: tcp, webrtc-direct, relayed, webrtc-via-relay, other. */
  readonly connectionKinds: Record<ConnectionKind, number>;
  /** Configured relays (`--relay`) and whether a reservation is held on each. */
  readonly relays: RelayState[];
  readonly peers: PeerStatus[];
  readonly banned: { readonly peer: string; readonly until: number; readonly reason?: string | undefined }[];
  readonly bannedAddresses: { readonly address: string; readonly until: number }[];
  readonly blocked: string[];
  /** Federated learning: the DP mode and this node's privacy ledger (absent while it is not loaded). */
  readonly fl?: FlStatus | undefined;
  /** Messaging counts, delivery latency and mailbox use (absent when messaging is not running). */
  readonly messaging?: MessagingStats | undefined;
}

export interface FlStatus {
  readonly mode: DpMode;
  readonly privacy?:
    | {
        /** ε spent over everything this node contributed, at `delta`. */
        readonly epsilon: number;
        readonly budget: number;
        readonly delta: number;
        readonly rounds: number;
      }
    | undefined;
}

/** The status of a running in-process node, as of `now`. */
export function nodeStatus(node: CairnNode, now: number = Date.now()): NodeStatus {
  const tip = node.chain.tip;
  const failure = node.chainService.failure;
  // A joined device is a member by its certificate before the chain records its addition.
  const own = node.membership.admit(node.identity.publicKeyHex, node.membership.ownCertificate(), now);
  return {
    peerId: node.identity.peerId.toString(),
    publicKey: node.identity.publicKeyHex,
    role: node.opts.role,
    capabilities: node.opts.capabilities,
    membership: {
      mode: node.membership.mode,
      member: own.ok,
      admin: own.ok && own.member.admin,
      ...(own.ok ? {} : { refusal: own.code }),
    },
    chainId: toHex(node.chain.chainId),
    height: tip.height,
    headHash: tip.hashHex,
    totalWork: tip.chainWork.toString(),
    difficultyTarget: tip.header.target.toString(16),
    mempoolSize: node.chain.mempool.size,
    orphanCount: node.chain.orphans.size,
    // Stored blocks and genesis: the tree holds only a window of them.
    blockCount: node.store.storedBlocks + 1,
    syncState: node.sync.state,
    lastSync: node.sync.lastOutcome,
    mining: node.opts.mine && !failure,
    storage: failure ? { ok: false, ...failure } : { ok: true },
    addrs: node.host.getMultiaddrs().map(String),
    connectionKinds: countKinds(node.host.getConnections()),
    relays: node.relayKeeper?.state() ?? [],
    peers: node.host.getPeers().map((p): PeerStatus => {
      const rec = node.peers.book.get(p);
      const member = node.gate?.member(p);
      return {
        peerId: p.toString(),
        rttMs: rec?.rttMs,
        height: rec?.status.headHeight,
        role: rec?.status.role,
        member: member ? { name: member.name, role: member.role } : undefined,
        score: Number(node.peers.scores.score(p.toString(), now).toFixed(2)),
        remoteAddrs: node.host.getConnections(p).map((c) => c.remoteAddr.toString()),
        kinds: node.host.getConnections(p).map((c) => connectionKind(c.remoteAddr)),
      };
    }),
    banned: node.peers.scores.banned(now),
    bannedAddresses: node.peers.addressBans?.banned(now) ?? [],
    blocked: node.peers.blockedPeers(),
    fl: node.fl ? flStatus(node.fl.privacy.mode, node.fl.privacyStatus()) : undefined,
    messaging: node.messaging?.stats(),
  };
}

function flStatus(mode: DpMode, p: ReturnType<NonNullable<CairnNode['fl']>['privacyStatus']>): FlStatus {
  return {
    mode,
    privacy: p && { epsilon: p.epsilonTotal, budget: p.budgetEpsilon, delta: p.delta, rounds: p.rounds },
  };
}
