/**
 * One operator surface over a running node: what an operator may ask of it, whichever way the
 * request arrives (a signed admin command off the job queue, the local HTTP API, a cluster
 * test). Callers depend on this interface, not on the whole CairnNode, and every result shape is
 * built here once; `NodeStatus` (node/status.ts) is the one status shape (the HTTP API's
 * `/status`, the stats report and the cluster harness all derive from it).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { type Hex, toHex } from './chain/bytes.ts';
import type { SealedEntry } from './chain/types.ts';
import { ClassifyError } from './fl/classify.ts';
import { type Classification, Classifier, NoModelError } from './fl/net/classifier.ts';
import type { PrivacyStatus } from './fl/net/privacy-gate.ts';
import type { RoundRequest } from './fl/net/round-runner.ts';
import { RoundRequestRefused } from './fl/net/trust.ts';
import { InvitationBook } from './membership/invitation-book.ts';
import { DEFAULT_INVITATION_VALID_MS, issueInvitation } from './membership/issue-invitation.ts';
import type { RosterListing } from './membership/roster.ts';
import type { Capability, MembershipMode, Role } from './membership/view.ts';
import type { AddResult } from './mempool/mempool.ts';
import { SendRefused, type SentMessage } from './messaging/service.ts';
import type { CairnNode } from './node.ts';
import { type NodeStatus, nodeStatus } from './status.ts';
import type { SyncOutcome } from './sync/range-sync.ts';

export type { NodeStatus, PeerStatus } from './status.ts';

/**
 * Why an operator request could not be carried out: `invalid` input (retrying the same request
 * fails the same way), `too-large` input (over a stated bound), `unavailable`: nothing to act
 * on now (no peer, FL not running), or `no-model`: no model version is committed yet.
 */
export type ControlErrorCode = 'invalid' | 'too-large' | 'unavailable' | 'no-model';

export class ControlError extends Error {
  readonly code: ControlErrorCode;
  constructor(message: string, code: ControlErrorCode = 'unavailable') {
    super(message);
    this.code = code;
    this.name = 'ControlError';
  }
}

/** At most this many blocks per `blocks()` answer, and this many below the tip by default. */
export const BLOCKS_MAX_SPAN = 5000;
export const BLOCKS_DEFAULT_WINDOW = 20;

export interface EntryOutcome {
  readonly id: Hex;
  /** What the mempool did with it (`duplicate`: it held the entry already). */
  readonly status: AddResult['status'];
  readonly accepted: boolean;
  /** `<reason>: <message>` when the node refused the entry. */
  readonly reason: string | null;
}

export interface PeersOutcome {
  readonly peers: string[];
  readonly blocked: string[];
}

export interface ReconcileOutcome {
  readonly peerId: string;
  readonly sent: number;
  readonly received: number;
  readonly roundTrips: number;
  readonly bytes: number;
}

export interface ChainSyncOutcome {
  readonly state: string;
  readonly height: number;
  readonly headHash: Hex;
  readonly outcome: string | null;
}

/** A main-chain block in brief. */
export interface BlockSummary {
  readonly height: number;
  readonly hash: Hex;
  readonly entries: number;
  /** The header's timestamp, ms since the epoch. */
  readonly timestamp: number;
  readonly miner: Hex;
}

/** Where an entry is on this node (an entry is in at most one main-chain block). */
export type EntryLocation =
  | { readonly id: Hex; readonly status: 'mempool' }
  | { readonly id: Hex; readonly status: 'included'; readonly height: number; readonly block: Hex };

export interface InvitationTerms {
  readonly name: string;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
  readonly expiresInMs: number;
  readonly validForMs?: number;
}

export interface NodeControl {
  status(): NodeStatus;
  /** Signs `content` as a knowledge entry of this node and admits it to the mempool. */
  submit(content: string, metadata: readonly (readonly [string, string])[]): Promise<EntryOutcome>;
  /** Admits an entry signed elsewhere (an admin's config or checkpoint), checked like a gossiped one. */
  submitSigned(entry: SealedEntry): Promise<EntryOutcome>;
  mempool(): { ids: Hex[] };
  /**
   * Main-chain blocks `from`..`to` (default: the last BLOCKS_DEFAULT_WINDOW up to the tip),
   * clipped to the chain and to BLOCKS_MAX_SPAN blocks.
   */
  blocks(range: { from?: number; to?: number }): { blocks: BlockSummary[] };
  /** Where entry `id` is: undefined when neither in the mempool nor in the main chain. */
  locateEntry(id: Hex): EntryLocation | undefined;
  blockPeers(peerIds: readonly string[]): PeersOutcome;
  unblockPeers(peerIds: readonly string[]): PeersOutcome;
  syncChain(): Promise<ChainSyncOutcome>;
  /** Reconciles the mempool with `peerId`, or with a random connected peer. */
  reconcile(peerId?: string): Promise<ReconcileOutcome>;
  /** Schedules federated rounds (they run in the background and report as they go). */
  startRounds(req: RoundRequest): { roundIds: string[] };
  members(): { mode: MembershipMode; members: RosterListing[] };
  invite(terms: InvitationTerms): Promise<{ invitation: string; expiresAtMs: number; memberUntilMs: number }>;
  revoke(publicKeyHex: Hex): Promise<EntryOutcome>;
  /** The verdict of the newest committed model version on `text` (fl/net/classifier.ts). */
  classify(text: string): Promise<Classification>;
  /** This node's privacy ledger: ε spent per round and in total, budget, remaining, declines. */
  flPrivacy(): PrivacyStatus;
  /** Sets this node's privacy budget (ε at the ledger's δ); raising it lets an exhausted node train again. */
  setFlBudget(epsilon: number): Promise<PrivacyStatus>;
  /**
   * Sends a direct message as this node (to a member name, a peer id or a key). For the admin
   * command admin.sendMessage, which only nodes started with --allow-operator-messages take.
   */
  sendMessage(to: string, text: string): Promise<SentMessage>;
}

/** How each send refusal reads as a control error (the refusal's code leads its message). */
const SEND_CONTROL_CODE: Record<SendRefused['code'], ControlErrorCode> = {
  'unknown-recipient': 'invalid',
  oversized: 'too-large',
  'to-self': 'invalid',
  stopped: 'unavailable',
};

/**
 * classify() over the node's chain head and model sync: one Classifier per control, so a
 * version is decoded once however many requests use it.
 */
function classifyWith(node: CairnNode): NodeControl['classify'] {
  const classifier = new Classifier({
    head: () => node.chain.tipModel,
    load: (hash) => {
      if (!node.fl) throw new ControlError('federated learning is not running on this node');
      return node.fl.models.resolve(hash, node.fl.data.paramCount);
    },
  });
  return async (text) => {
    try {
      return await classifier.classify(text);
    } catch (err) {
      if (err instanceof NoModelError) throw new ControlError(err.message, 'no-model');
      if (err instanceof ClassifyError)
        throw new ControlError(err.message, err.code === 'text-too-long' ? 'too-large' : 'invalid');
      throw err;
    }
  };
}

const describeOutcome = (o: SyncOutcome | undefined): string | null =>
  o === undefined
    ? null
    : o.kind === 'synced'
      ? `synced ${o.imported} blocks to ${o.tip}`
      : `aborted: ${o.reason}`;

/** The NodeControl of an in-process node. */
export function nodeControl(node: CairnNode): NodeControl {
  const peers = (): PeersOutcome => ({
    peers: node.host.getPeers().map(String),
    blocked: node.peers.blockedPeers(),
  });
  const outcome = (id: Hex, result: AddResult): EntryOutcome => ({
    id,
    status: result.status,
    accepted: result.status !== 'rejected',
    reason: result.status === 'rejected' ? `${result.reason}: ${result.message}` : null,
  });
  const entry = async (p: Promise<{ entry: { idHex: Hex }; result: AddResult }>): Promise<EntryOutcome> => {
    const { entry, result } = await p;
    return outcome(entry.idHex, result);
  };
  return {
    status: () => nodeStatus(node),
    classify: classifyWith(node),
    submit: async (content, metadata) => {
      try {
        return await entry(node.addKnowledge(content, metadata));
      } catch (err) {
        // The entry codec's bounds (content or metadata too large, keys not unique).
        if (err instanceof RangeError) throw new ControlError(err.message, 'invalid');
        throw err;
      }
    },
    submitSigned: async (e) => outcome(e.idHex, await node.submitSignedEntry(e)),
    mempool: () => ({ ids: node.chain.mempool.ids() }),
    blocks: (range) => {
      const tip = node.chain.tip.height;
      const from = Math.max(0, range.from ?? tip - BLOCKS_DEFAULT_WINDOW);
      const to = Math.min(tip, range.to ?? tip, from + BLOCKS_MAX_SPAN - 1);
      const blocks: BlockSummary[] = [];
      for (let h = from; h <= to; h++) {
        const b = node.chain.tree.mainAt(h);
        if (!b) break;
        blocks.push({
          height: h,
          hash: b.hashHex,
          entries: b.entryIds.length,
          timestamp: b.header.timestamp,
          miner: toHex(b.header.miner),
        });
      }
      return { blocks };
    },
    locateEntry: (id) => {
      if (node.chain.mempool.has(id)) return { id, status: 'mempool' };
      const b = node.chain.mainBlockOf(id);
      return b ? { id, status: 'included', height: b.height, block: b.hashHex } : undefined;
    },
    blockPeers: (ids) => {
      node.peers.block(ids);
      return peers();
    },
    unblockPeers: (ids) => {
      node.peers.unblock(ids);
      return peers();
    },
    syncChain: async () => {
      const { outcome } = await node.syncChain();
      return {
        state: node.sync.state,
        height: node.chain.tip.height,
        headHash: node.chain.tip.hashHex,
        outcome: describeOutcome(outcome),
      };
    },
    reconcile: async (peerId) => {
      let peer = peerId;
      if (!peer) {
        const all = node.peers.book.all();
        peer = all[Math.floor(Math.random() * all.length)]?.peer.toString();
        if (!peer) throw new ControlError('no connected peer to reconcile with');
      }
      let id: ReturnType<typeof peerIdFromString>;
      try {
        id = peerIdFromString(peer);
      } catch {
        throw new ControlError(`not a peer id: ${peer}`, 'invalid');
      }
      const s = await node.reconcileWith(id);
      return {
        peerId: peer,
        sent: s.entriesSent,
        received: s.entriesReceived,
        roundTrips: s.roundTrips,
        bytes: s.bytesSent + s.bytesReceived,
      };
    },
    startRounds: (req) => {
      if (!node.fl) throw new ControlError('federated learning is not running on this node');
      try {
        return node.fl.startRounds(req);
      } catch (err) {
        // Named participants are the caller's input (400); a node that may not coordinate is
        // the wrong node to ask (409).
        if (err instanceof RoundRequestRefused)
          throw new ControlError(
            `${err.code}: ${err.message}`,
            err.code === 'bad-peer-id' || err.code === 'not-a-trainer' ? 'invalid' : 'unavailable',
          );
        throw err;
      }
    },
    sendMessage: async (to, text) => {
      if (!node.messaging) throw new ControlError('messaging is not running on this node', 'unavailable');
      try {
        return await node.messaging.send(to, text);
      } catch (err) {
        if (err instanceof SendRefused)
          throw new ControlError(`${err.code}: ${err.message}`, SEND_CONTROL_CODE[err.code]);
        throw err;
      }
    },
    flPrivacy: () => {
      const s = node.fl?.privacyStatus();
      if (!s) throw new ControlError('the privacy ledger is not loaded (see the node log)', 'unavailable');
      return s;
    },
    setFlBudget: async (epsilon) => {
      if (!Number.isFinite(epsilon) || epsilon < 0)
        throw new ControlError('epsilon must be a finite number ≥ 0', 'invalid');
      if (!node.fl?.privacyStatus())
        throw new ControlError('the privacy ledger is not loaded (see the node log)', 'unavailable');
      return node.fl.setBudget(epsilon);
    },
    members: () => ({
      mode: node.membership.mode,
      members: node.membership.mode === 'open' ? [] : node.membership.listing(Date.now()),
    }),
    invite: async (terms) => {
      const now = Date.now();
      const issued = await issueInvitation(
        new InvitationBook(node.opts.dataDir),
        {
          chainIdHex: toHex(node.chain.chainId),
          peerId: node.identity.peerId.toString(),
          addrs: node.host.getMultiaddrs().map(String),
        },
        {
          name: terms.name,
          role: terms.role,
          capabilities: [...terms.capabilities],
          memberUntilMs: now + terms.expiresInMs,
        },
        terms.validForMs ?? DEFAULT_INVITATION_VALID_MS,
        now,
      );
      return {
        invitation: issued.text,
        expiresAtMs: issued.expiresAtMs,
        memberUntilMs: issued.terms.memberUntilMs,
      };
    },
    revoke: (publicKeyHex) => {
      if (node.membership.mode !== 'roster') throw new ControlError('this network has no roster (open mode)');
      return entry(node.revokeMember(publicKeyHex));
    },
  };
}
