/**
 * `flPrivacy`: each node's record-level privacy spend as its stats reports carry it (the node's
 * ledger, node/fl/net/privacy-gate.ts, indexed by the collector): ε spent against its budget at
 * δ, rounds charged, and the same over time from the node's snapshots — what the console plots.
 */
import { builder } from './builder.ts';
import { NodeRef } from './nodes.ts';
import { checkPageSize } from './pagination.ts';
import type { NodeShape } from './shapes.ts';

/** Nodes one flPrivacy list returns at most (gateway/list-cost.ts counts it so). */
export const MAX_FL_PRIVACY_NODES = 1000;
const MAX_POINTS = 1000;

interface FlPrivacyShape {
  readonly nodeId: string;
  readonly mode: string;
  readonly epsilon: number;
  readonly budget: number;
  readonly delta: number;
  readonly rounds: number;
}

interface FlPrivacyPointShape {
  readonly at: Date;
  readonly epsilon: number;
  readonly budget: number;
  readonly rounds: number;
}

const FlPrivacyPointRef = builder.objectRef<FlPrivacyPointShape>('FlPrivacyPoint').implement({
  description: "A node's privacy ledger at one stats report.",
  fields: (t) => ({
    at: t.expose('at', { type: 'DateTime' }),
    epsilon: t.exposeFloat('epsilon', { description: 'ε spent so far.' }),
    budget: t.exposeFloat('budget'),
    rounds: t.exposeInt('rounds', { description: 'Record-level rounds charged so far.' }),
  }),
});

const FlPrivacyRef = builder.objectRef<FlPrivacyShape>('FlPrivacy').implement({
  description:
    "A node's record-level privacy ledger: ε spent over everything it contributed (RDP composed over " +
    'its rounds) against its budget, at δ. A node declines rounds its budget cannot afford.',
  fields: (t) => ({
    nodeId: t.exposeID('nodeId'),
    mode: t.exposeString('mode', {
      description: "'record' (DP-SGD on every participant) | 'update' (whole updates; protects no record)",
    }),
    epsilon: t.exposeFloat('epsilon', { description: 'ε spent, at `delta`.' }),
    budget: t.exposeFloat('budget'),
    remaining: t.float({ resolve: (p) => Math.max(0, p.budget - p.epsilon) }),
    delta: t.exposeFloat('delta'),
    rounds: t.exposeInt('rounds'),
    history: t.field({
      type: [FlPrivacyPointRef],
      description: `ε and budget at the node's last N stats reports, ascending (N ≤ ${MAX_POINTS}).`,
      args: { last: t.arg.int({ defaultValue: 60 }) },
      resolve: async (p, { last }, ctx) => {
        checkPageSize('last', last, MAX_POINTS);
        const rows = await ctx.db.nodeStatsSnapshot.findMany({
          where: { nodeId: p.nodeId, flEpsilon: { not: null } },
          orderBy: [{ at: 'desc' }, { seq: 'desc' }],
          take: last ?? 60,
          select: { at: true, flEpsilon: true, flBudget: true, flRounds: true },
        });
        return rows.reverse().map((r) => ({
          at: r.at,
          epsilon: r.flEpsilon!,
          budget: r.flBudget ?? 0,
          rounds: r.flRounds ?? 0,
        }));
      },
    }),
  }),
});

/** The node's ledger as indexed; null before a report carried one. */
const privacyOf = (
  n: Pick<NodeShape, 'id' | 'flMode' | 'flEpsilon' | 'flBudget' | 'flDelta' | 'flRounds'>,
) =>
  n.flEpsilon === null || n.flBudget === null
    ? null
    : {
        nodeId: n.id,
        mode: n.flMode ?? 'record',
        epsilon: n.flEpsilon,
        budget: n.flBudget,
        delta: n.flDelta ?? 0,
        rounds: n.flRounds ?? 0,
      };

builder.objectField(NodeRef, 'flPrivacy', (t) =>
  t.field({
    type: FlPrivacyRef,
    nullable: true,
    description: "This node's privacy ledger (null until a stats report carried it).",
    resolve: (n) => privacyOf(n),
  }),
);

builder.queryFields((t) => ({
  flPrivacy: t.field({
    type: [FlPrivacyRef],
    description: `Every node's privacy ledger, by node id (at most ${MAX_FL_PRIVACY_NODES} nodes).`,
    resolve: async (_, _args, ctx) => {
      const rows = await ctx.db.node.findMany({
        where: { flEpsilon: { not: null } },
        orderBy: { id: 'asc' },
        take: MAX_FL_PRIVACY_NODES,
      });
      return rows.map(privacyOf).filter((p) => p !== null);
    },
  }),
}));
