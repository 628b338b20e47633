import { builder } from './builder.ts';
import { checkPageSize, keysetConnection, MAX_PAGE_SIZE } from './pagination.ts';
import { jsonCounts, jsonStrings, type NodeShape, type NodeStatsSnapshotShape } from './shapes.ts';

const MAX_NODE_STATS = 1000;

const NodeStatsSnapshotRef = builder.objectRef<NodeStatsSnapshotShape>('NodeStatsSnapshot').implement({
  description: 'One stats report of one node.',
  fields: (t) => ({
    at: t.expose('at', { type: 'DateTime' }),
    seq: t.exposeInt('seq'),
    height: t.exposeInt('height'),
    headHash: t.exposeString('headHash'),
    totalWork: t.exposeString('totalWork', { description: "Cumulative work of the node's head, decimal." }),
    difficulty: t.exposeString('difficulty', { description: 'Target of the next block, decimal.' }),
    peerCount: t.exposeInt('peerCount'),
    mempoolSize: t.exposeInt('mempoolSize'),
    hashRate: t.exposeFloat('hashRate'),
  }),
});

const ConnectionKindCount = builder
  .objectRef<{ key: string; count: number }>('ConnectionKindCount')
  .implement({
    description: 'Open connections of one kind.',
    fields: (t) => ({
      kind: t.exposeString('key', {
        description:
          'tcp, webrtc-direct (direct WebRTC), relayed (through a relay), webrtc-via-relay (WebRTC set up over a relay), other.',
      }),
      count: t.exposeInt('count'),
    }),
  });

export const NodeRef = builder.objectRef<NodeShape>('Node').implement({
  description: 'A Cairn node that has reported at least once.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The peer id.' }),
    role: t.exposeString('role'),
    capabilities: t.stringList({
      resolve: (n) => (n.capabilities ? n.capabilities.split(',').filter(Boolean) : []),
    }),
    // Addresses and peer lists are a map for an eclipse attack: never for anonymous callers.
    addrs: t.stringList({ authScopes: { viewer: true }, resolve: (n) => jsonStrings(n.addrs) }),
    firstSeenAt: t.expose('firstSeenAt', { type: 'DateTime' }),
    lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime' }),
    height: t.exposeInt('height'),
    headHash: t.exposeString('headHash'),
    peerCount: t.exposeInt('peerCount'),
    mempoolSize: t.exposeInt('mempoolSize'),
    mining: t.exposeBoolean('mining'),
    peers: t.stringList({ authScopes: { viewer: true }, resolve: (n) => jsonStrings(n.peers) }),
    // Like peers: whether a node is reachable only through a relay is a map for an attacker.
    connections: t.field({
      type: [ConnectionKindCount],
      authScopes: { viewer: true },
      description: "The node's open connections by kind, as it last reported (kinds with none left out).",
      resolve: (n) => jsonCounts(n.connectionKinds).filter((c) => c.count > 0),
    }),
    stats: t.field({
      type: [NodeStatsSnapshotRef],
      description: `The node's last N stats reports, ascending by time (N ≤ ${MAX_NODE_STATS}).`,
      args: { last: t.arg.int({ defaultValue: 60 }) },
      resolve: async (n, { last }, ctx) => {
        checkPageSize('last', last, MAX_NODE_STATS);
        const rows = await ctx.db.nodeStatsSnapshot.findMany({
          where: { nodeId: n.id },
          orderBy: [{ at: 'desc' }, { seq: 'desc' }],
          take: last ?? 60,
        });
        return rows.reverse();
      },
    }),
  }),
});

builder.queryFields((t) => ({
  nodes: t.connection(
    {
      type: NodeRef,
      description: `Known nodes by id; pages of at most ${MAX_PAGE_SIZE}.`,
      resolve: (_, args, ctx) =>
        keysetConnection<NodeShape>(args, [{ field: 'id', desc: false, kind: 'string' }], (q) =>
          ctx.db.node.findMany(q),
        ),
    },
    { name: 'NodeConnection' },
    { name: 'NodeEdge' },
  ),
  node: t.field({
    type: NodeRef,
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_, { id }, ctx) => ctx.db.node.findUnique({ where: { id: String(id) } }),
  }),
}));
