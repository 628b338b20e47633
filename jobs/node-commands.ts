import { peerIdFromString } from '@libp2p/peer-id';
import { UnrecoverableError } from 'bullmq';
import type { z } from 'zod';
import { toHex } from '../node/chain/bytes.ts';
import { InvitationBook } from '../node/membership/invitation-book.ts';
import { DEFAULT_INVITATION_VALID_MS, issueInvitation } from '../node/membership/issue-invitation.ts';
import type { CairnNode } from '../node/node.ts';
import type { SyncOutcome } from '../node/sync/range-sync.ts';
import {
  AdminPayload,
  type AdminResults,
  type ChainSyncResult,
  formatIssues,
  isoOfMs,
  type ReconcileResult,
} from './payloads.ts';
import type { AdminCommand } from './queues.ts';

/** Refuses a payload that does not parse: retrying it could never succeed. */
export function parsePayload<S extends z.ZodType>(schema: S, data: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw new UnrecoverableError(`invalid ${what} payload: ${formatIssues(r.error.issues)}`);
  return r.data;
}

const describeOutcome = (o: SyncOutcome | undefined): string | null =>
  o === undefined
    ? null
    : o.kind === 'synced'
      ? `synced ${o.imported} blocks to ${o.tip}`
      : `aborted: ${o.reason}`;

export async function syncMempool(node: CairnNode, peerId?: string): Promise<ReconcileResult> {
  let peer = peerId;
  if (!peer) {
    const all = node.peers.book.all();
    peer = all[Math.floor(Math.random() * all.length)]?.peer.toString();
    if (!peer) throw new UnrecoverableError('no connected peer to reconcile with');
  }
  let id: ReturnType<typeof peerIdFromString>;
  try {
    id = peerIdFromString(peer);
  } catch {
    throw new UnrecoverableError(`not a peer id: ${peer}`);
  }
  const s = await node.reconcileWith(id);
  return {
    peerId: peer,
    sent: s.entriesSent,
    received: s.entriesReceived,
    roundTrips: s.roundTrips,
    bytes: s.bytesSent + s.bytesReceived,
  };
}

export async function syncChain(node: CairnNode): Promise<ChainSyncResult> {
  const { outcome } = await node.syncChain();
  return {
    state: node.sync.state,
    height: node.chain.tip.height,
    headHash: node.chain.tip.hashHex,
    outcome: describeOutcome(outcome),
  };
}

const peersResult = (node: CairnNode) => ({
  peers: node.host.getPeers().map(String),
  blocked: node.peers.blockedPeers(),
});

/** Runs an admin command after parsing its payload; `reportStats` is supplied by the worker. */
export async function runAdminCommand(
  node: CairnNode,
  command: AdminCommand,
  data: unknown,
  reportStats: () => number,
): Promise<AdminResults[AdminCommand]> {
  switch (command) {
    case 'admin.syncMempool':
      return syncMempool(node, parsePayload(AdminPayload['admin.syncMempool'], data, command).peerId);
    case 'admin.syncChain':
      parsePayload(AdminPayload['admin.syncChain'], data, command);
      return syncChain(node);
    case 'admin.reportStats':
      parsePayload(AdminPayload['admin.reportStats'], data, command);
      return { seq: reportStats() };
    case 'admin.blockPeers':
      node.peers.block(parsePayload(AdminPayload['admin.blockPeers'], data, command).peerIds);
      return peersResult(node);
    case 'admin.unblockPeers':
      node.peers.unblock(parsePayload(AdminPayload['admin.unblockPeers'], data, command).peerIds);
      return peersResult(node);
    case 'admin.submitEntry': {
      const p = parsePayload(AdminPayload['admin.submitEntry'], data, command);
      const { entry, result } = await node.addKnowledge(
        p.content,
        p.metadata.map((m) => [m.key, m.value] as const),
      );
      return {
        id: entry.idHex,
        accepted: result.status !== 'rejected',
        reason: result.status === 'rejected' ? `${result.reason}: ${result.message}` : null,
      };
    }
    case 'admin.inviteDevice': {
      const p = parsePayload(AdminPayload['admin.inviteDevice'], data, command);
      const now = Date.now();
      const issued = await issueInvitation(
        new InvitationBook(node.opts.dataDir),
        {
          chainIdHex: toHex(node.chain.chainId),
          peerId: node.identity.peerId.toString(),
          addrs: node.host.getMultiaddrs().map(String),
        },
        { name: p.name, role: p.role, capabilities: p.capabilities, memberUntilMs: now + p.expiresInMs },
        p.validForMs ?? DEFAULT_INVITATION_VALID_MS,
        now,
      );
      return {
        invitation: issued.text,
        expiresAt: new Date(issued.expiresAtMs).toISOString(),
        memberUntil: new Date(issued.terms.memberUntilMs).toISOString(),
      };
    }
    case 'admin.revokeDevice': {
      const p = parsePayload(AdminPayload['admin.revokeDevice'], data, command);
      if (node.membership.mode !== 'roster')
        throw new UnrecoverableError('this network has no roster (open mode)');
      const { entry, result } = await node.revokeMember(p.publicKey);
      return {
        id: entry.idHex,
        accepted: result.status !== 'rejected',
        reason: result.status === 'rejected' ? `${result.reason}: ${result.message}` : null,
      };
    }
    case 'admin.members': {
      parsePayload(AdminPayload['admin.members'], data, command);
      return {
        mode: node.membership.mode,
        members:
          node.membership.mode === 'open'
            ? []
            : node.membership.listing(Date.now()).map((m) => ({
                publicKey: m.publicKeyHex,
                name: m.name,
                role: m.role,
                capabilities: [...m.capabilities],
                admin: m.admin,
                issuedAt: isoOfMs(m.issuedAtMs),
                expiresAt: isoOfMs(m.expiresAtMs),
                state: m.state,
              })),
      };
    }
    case 'fl.startRound': {
      const p = parsePayload(AdminPayload['fl.startRound'], data, command);
      if (!node.fl) throw new UnrecoverableError('federated learning is not running on this node');
      // Scheduled, not awaited: the rounds run in the background and report as they go.
      return node.fl.startRounds(p);
    }
    default:
      throw new UnrecoverableError(`unknown command ${command}`);
  }
}
