import { builder } from './builder.ts';
import { cached } from './cache.ts';

interface MetaShape {
  height: number;
  headHash: string | null;
  nodes: number;
  updatedAt: Date | null;
}

const MetaRef = builder.objectRef<MetaShape>('Meta').implement({
  description: "The index's view of the canonical head.",
  fields: (t) => ({
    height: t.exposeInt('height', {
      description: 'Height of the canonical head; -1 while the index is empty.',
    }),
    headHash: t.exposeString('headHash', { nullable: true }),
    nodes: t.exposeInt('nodes', { description: 'Number of nodes that have reported.' }),
    updatedAt: t.expose('updatedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the head block was received or network stats last recomputed, whichever is later.',
    }),
  }),
});

builder.queryField('_meta', (t) =>
  t.field({
    type: MetaRef,
    resolve: (_, __, ctx) =>
      cached(ctx.cache, 'meta', async () => {
        const [head, nodes, stats] = await Promise.all([
          ctx.db.block.findFirst({ where: { canonical: true }, orderBy: { height: 'desc' } }),
          ctx.db.node.count(),
          ctx.db.networkStats.findFirst({ orderBy: [{ at: 'desc' }, { id: 'desc' }], select: { at: true } }),
        ]);
        const times = [head?.receivedAt, stats?.at].filter((d): d is Date => d instanceof Date);
        return {
          height: head?.height ?? -1,
          headHash: head?.hash ?? null,
          nodes,
          updatedAt: times.length ? new Date(Math.max(...times.map((d) => d.getTime()))) : null,
        };
      }),
  }),
);
