import { builder } from './builder.ts';
import { cached } from './cache.ts';
import { checkPageSize } from './pagination.ts';
import type { NetworkStatsShape } from './shapes.ts';

const MAX_STATS_HISTORY = 1000;

export const NetworkStatsRef = builder.objectRef<NetworkStatsShape>('NetworkStats').implement({
  description: 'Network-wide figures, recomputed by the collector after every stats report.',
  fields: (t) => ({
    at: t.expose('at', { type: 'DateTime' }),
    totalNodes: t.exposeInt('totalNodes'),
    chainLengthMin: t.exposeInt('chainLengthMin'),
    chainLengthMax: t.exposeInt('chainLengthMax'),
    chainLengthAvg: t.exposeFloat('chainLengthAvg'),
    avgPeers: t.exposeFloat('avgPeers', { description: 'Average number of peers per node.' }),
    target: t.exposeString('target', { description: "Target of the canonical head's next block, decimal." }),
    difficulty: t.exposeFloat('difficulty', {
      description: 'Expected hashes per block at the head target: 2^256 / (target + 1).',
    }),
    hashRate: t.exposeFloat('hashRate', { description: 'Estimated network hashes per second.' }),
    mempoolTotal: t.exposeInt('mempoolTotal'),
    mempoolMin: t.exposeInt('mempoolMin'),
    mempoolMax: t.exposeInt('mempoolMax'),
  }),
});

builder.queryFields((t) => ({
  networkStats: t.field({
    type: NetworkStatsRef,
    nullable: true,
    description: 'The latest network stats.',
    resolve: (_, __, ctx) =>
      cached(ctx.cache, 'networkStats', () =>
        ctx.db.networkStats.findFirst({ orderBy: [{ at: 'desc' }, { id: 'desc' }] }),
      ),
  }),
  networkStatsHistory: t.field({
    type: [NetworkStatsRef],
    description: `The last N network stats, ascending by time (N ≤ ${MAX_STATS_HISTORY}).`,
    args: { last: t.arg.int({ defaultValue: 100 }) },
    resolve: async (_, { last }, ctx) => {
      checkPageSize('last', last, MAX_STATS_HISTORY);
      const rows = await ctx.db.networkStats.findMany({
        orderBy: [{ at: 'desc' }, { id: 'desc' }],
        take: last ?? 100,
      });
      return rows.reverse();
    },
  }),
}));
