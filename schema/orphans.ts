import { builder } from './builder.ts';
import { keysetConnection, MAX_PAGE_SIZE } from './pagination.ts';
import type { OrphanedBlockShape } from './shapes.ts';

export const OrphanedBlockRef = builder.objectRef<OrphanedBlockShape>('OrphanedBlock').implement({
  description: 'A block that lost: waited for an unknown parent, was reorged out, or stayed on a side chain.',
  fields: (t) => ({
    hash: t.exposeString('hash'),
    reason: t.exposeString('reason', {
      description: "'unknown-parent' | 'reorged-out' | 'side-chain' | 'dropped'",
    }),
    height: t.exposeInt('height'),
    prevHash: t.exposeString('prevHash'),
    miner: t.exposeString('miner'),
    reportedBy: t.exposeString('reportedBy'),
    reorgDepth: t.exposeInt('reorgDepth', {
      nullable: true,
      description: "For 'reorged-out': how many main-chain blocks the reorg that took it out disconnected.",
    }),
    at: t.expose('at', { type: 'DateTime' }),
  }),
});

builder.queryField('orphanedBlocks', (t) =>
  t.connection(
    {
      type: OrphanedBlockRef,
      description: `Orphaned blocks, newest first; pages of at most ${MAX_PAGE_SIZE}.`,
      resolve: (_, args, ctx) =>
        keysetConnection<OrphanedBlockShape>(
          args,
          [
            { field: 'at', desc: true, kind: 'date' },
            { field: 'hash', desc: true, kind: 'string' },
            { field: 'reason', desc: true, kind: 'string' },
          ],
          (q) => ctx.db.orphanedBlock.findMany(q),
        ),
    },
    { name: 'OrphanedBlockConnection' },
    { name: 'OrphanedBlockEdge' },
  ),
);
