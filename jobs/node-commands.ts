import { UnrecoverableError } from 'bullmq';
import type { z } from 'zod';
import { ControlError, type NodeControl } from '../node/control.ts';
import { AdminPayload, type AdminResults, formatIssues, isoOfMs } from './payloads.ts';
import type { AdminCommand } from './queues.ts';

/** Refuses a payload that does not parse: retrying it could never succeed. */
export function parsePayload<S extends z.ZodType>(schema: S, data: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(data);
  if (!r.success) throw new UnrecoverableError(`invalid ${what} payload: ${formatIssues(r.error.issues)}`);
  return r.data;
}

/** A request the node cannot carry out fails the job for good: retrying would fail the same way. */
async function unrecoverable<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ControlError) throw new UnrecoverableError(err.message);
    throw err;
  }
}

/**
 * Runs an admin command through the node's operator surface after parsing its (verified, see
 * command-verifier.ts) args; `reportStats` is supplied by the worker.
 */
export function runAdminCommand(
  node: NodeControl,
  command: AdminCommand,
  data: unknown,
  reportStats: () => number,
): Promise<AdminResults[AdminCommand]> {
  return unrecoverable(async (): Promise<AdminResults[AdminCommand]> => {
    switch (command) {
      case 'admin.syncMempool':
        return node.reconcile(parsePayload(AdminPayload['admin.syncMempool'], data, command).peerId);
      case 'admin.syncChain':
        parsePayload(AdminPayload['admin.syncChain'], data, command);
        return node.syncChain();
      case 'admin.reportStats':
        parsePayload(AdminPayload['admin.reportStats'], data, command);
        return { seq: reportStats() };
      case 'admin.blockPeers':
        return node.blockPeers(parsePayload(AdminPayload['admin.blockPeers'], data, command).peerIds);
      case 'admin.unblockPeers':
        return node.unblockPeers(parsePayload(AdminPayload['admin.unblockPeers'], data, command).peerIds);
      case 'admin.submitEntry': {
        const p = parsePayload(AdminPayload['admin.submitEntry'], data, command);
        return node.submit(
          p.content,
          p.metadata.map((m) => [m.key, m.value] as const),
        );
      }
      case 'admin.inviteDevice': {
        const issued = await node.invite(parsePayload(AdminPayload['admin.inviteDevice'], data, command));
        return {
          invitation: issued.invitation,
          expiresAt: isoOfMs(issued.expiresAtMs),
          memberUntil: isoOfMs(issued.memberUntilMs),
        };
      }
      case 'admin.revokeDevice':
        return node.revoke(parsePayload(AdminPayload['admin.revokeDevice'], data, command).publicKey);
      case 'admin.members': {
        parsePayload(AdminPayload['admin.members'], data, command);
        const { mode, members } = node.members();
        return {
          mode,
          members: members.map((m) => ({
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
      case 'admin.sendMessage': {
        // Only reached where the verifier took it (--allow-operator-messages, node-jobs.ts).
        const p = parsePayload(AdminPayload['admin.sendMessage'], data, command);
        return node.sendMessage(p.to, p.text);
      }
      case 'fl.startRound':
        // Scheduled, not awaited: the rounds run in the background and report as they go.
        return node.startRounds(parsePayload(AdminPayload['fl.startRound'], data, command));
      default:
        throw new UnrecoverableError(`unknown command ${command}`);
    }
  });
}
