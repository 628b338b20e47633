/**
 * `messagingStats`: each node's messaging figures as its stats reports carry them
 * (node/messaging/delivery-stats.ts, indexed by the collector): counts, send-to-receipt latency
 * and mailbox use. Metadata only: no text and no correspondent ever reaches the index, so none
 * can be asked for here. Viewers and up: traffic volumes per node are not for anonymous callers.
 */
import { TOPICS } from '../jobs/events.ts';
import { builder } from './builder.ts';
import { verifiedRows } from './event-rows.ts';
import { NodeRef } from './nodes.ts';
import type { NodeShape } from './shapes.ts';

/** Nodes one messagingStats list returns at most (gateway/list-cost.ts counts it so). */
export const MAX_MESSAGING_NODES = 1000;

interface MailboxUseShape {
  readonly items: number;
  readonly bytes: number;
  readonly capacityBytes: number;
}

interface MessagingStatsShape {
  readonly nodeId: string;
  readonly at: Date | string;
  readonly sent: number;
  readonly delivered: number;
  readonly pending: number;
  readonly latencyP50Ms: number | null;
  readonly latencyP99Ms: number | null;
  readonly latencySamples: number;
  readonly mailbox: MailboxUseShape | null;
}

const MailboxUseRef = builder.objectRef<MailboxUseShape>('MailboxUse').implement({
  description: 'What a mailbox node holds for recipients that were unreachable (ciphertext only).',
  fields: (t) => ({
    items: t.exposeInt('items', { description: 'Envelopes held.' }),
    bytes: t.exposeFloat('bytes', { description: 'Their bytes.' }),
    capacityBytes: t.exposeFloat('capacityBytes', { description: "The mailbox's total byte quota." }),
    used: t.float({
      description: 'bytes / capacityBytes, 0..1.',
      resolve: (m) => (m.capacityBytes > 0 ? Math.min(1, m.bytes / m.capacityBytes) : 0),
    }),
  }),
});

const MessagingStatsRef = builder.objectRef<MessagingStatsShape>('MessagingStats').implement({
  description:
    "A node's messaging figures at its last stats report: counts since the node process started, " +
    'its outbox, delivery latency and mailbox use. Never text, never correspondents.',
  fields: (t) => ({
    nodeId: t.exposeID('nodeId'),
    at: t.expose('at', { type: 'DateTime', description: 'When the node last reported.' }),
    sent: t.exposeInt('sent', { description: 'Messages handed to the node to send since it started.' }),
    delivered: t.exposeInt('delivered', { description: 'Signed receipts that arrived since it started.' }),
    pending: t.exposeInt('pending', { description: 'Messages in its outbox waiting for a receipt.' }),
    latencyP50Ms: t.exposeFloat('latencyP50Ms', {
      nullable: true,
      description: 'Send-to-receipt latency, median over the last latencySamples receipts (null before one).',
    }),
    latencyP99Ms: t.exposeFloat('latencyP99Ms', {
      nullable: true,
      description: 'Likewise, 99th percentile.',
    }),
    latencySamples: t.exposeInt('latencySamples'),
    mailbox: t.field({
      type: MailboxUseRef,
      nullable: true,
      description: 'Null unless the node is a mailbox (relay or archive member).',
      resolve: (s) => s.mailbox,
    }),
  }),
});

/** The node's figures as indexed; null before a report carried them. */
export function messagingOf(n: NodeShape): MessagingStatsShape | null {
  if (n.msgSent === null || n.msgDelivered === null || n.msgPending === null) return null;
  return {
    nodeId: n.id,
    at: n.lastSeenAt,
    sent: n.msgSent,
    delivered: n.msgDelivered,
    pending: n.msgPending,
    latencyP50Ms: n.msgLatencyP50Ms,
    latencyP99Ms: n.msgLatencyP99Ms,
    latencySamples: n.msgLatencySamples ?? 0,
    mailbox:
      n.msgMailboxItems === null || n.msgMailboxBytes === null || n.msgMailboxCapacityBytes === null
        ? null
        : { items: n.msgMailboxItems, bytes: n.msgMailboxBytes, capacityBytes: n.msgMailboxCapacityBytes },
  };
}

builder.objectField(NodeRef, 'messaging', (t) =>
  t.field({
    type: MessagingStatsRef,
    nullable: true,
    authScopes: { viewer: true },
    description: "This node's messaging figures (null until a stats report carried them).",
    resolve: (n) => messagingOf(n),
  }),
);

builder.queryFields((t) => ({
  messagingStats: t.field({
    type: [MessagingStatsRef],
    authScopes: { viewer: true },
    description: `Every node's messaging figures, by node id (at most ${MAX_MESSAGING_NODES} nodes).`,
    resolve: async (_, _args, ctx) => {
      const rows = await ctx.db.node.findMany({
        where: { msgSent: { not: null } },
        orderBy: { id: 'asc' },
        take: MAX_MESSAGING_NODES,
      });
      return rows.map(messagingOf).filter((s) => s !== null);
    },
  }),
}));

/** The nodeStatus source narrowed to nodes whose report carried messaging figures. */
const nodeRows = verifiedRows<NodeShape>(TOPICS.nodeStatus);
async function* messagingRows(
  parent: unknown,
  args: unknown,
  ctx: Parameters<typeof nodeRows>[2],
): AsyncGenerator<MessagingStatsShape> {
  for await (const row of nodeRows(parent, args, ctx)) {
    const s = messagingOf(row);
    if (s) yield s;
  }
}

builder.subscriptionFields((t) => ({
  messagingStats: t.field({
    type: MessagingStatsRef,
    authScopes: { viewer: true },
    description: "A node's messaging figures after each of its stats reports that carried them.",
    subscribe: messagingRows,
    resolve: (s) => s,
  }),
}));
