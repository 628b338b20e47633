import { builder } from './builder.ts';
import { cached } from './cache.ts';
import { EntryRef } from './entries.ts';
import { badInput } from './errors.ts';
import { loaders } from './loaders.ts';
import { keysetConnection, MAX_PAGE_SIZE } from './pagination.ts';
import type { BlockShape } from './shapes.ts';

export const BlockRef = builder.objectRef<BlockShape>('Block');

BlockRef.implement({
  description: 'A block of the canonical chain as the nodes reported it (or a former one: see canonical).',
  fields: (t) => ({
    hash: t.exposeString('hash'),
    height: t.exposeInt('height'),
    prevHash: t.exposeString('prevHash'),
    merkleRoot: t.exposeString('merkleRoot'),
    timestamp: t.expose('timestamp', { type: 'DateTime' }),
    target: t.exposeString('target', { description: 'Proof-of-work target, decimal.' }),
    nonce: t.exposeString('nonce', { description: 'Decimal.' }),
    miner: t.exposeString('miner', { description: 'Ed25519 public key of the miner, hex.' }),
    signature: t.exposeString('signature'),
    header: t.exposeString('header', { description: 'Canonical header encoding, hex.' }),
    entryCount: t.exposeInt('entryCount'),
    sizeBytes: t.exposeInt('sizeBytes'),
    totalWork: t.exposeString('totalWork', { description: 'Cumulative work up to this block, decimal.' }),
    canonical: t.exposeBoolean('canonical'),
    reportedBy: t.exposeString('reportedBy'),
    receivedAt: t.expose('receivedAt', { type: 'DateTime' }),
    // Loaded from the DB for query rows and subscription events alike (events carry no entries).
    entries: t.field({
      type: [EntryRef],
      resolve: (b, _, ctx) => loaders(ctx).entriesByBlock.get(b.hash),
    }),
    parent: t.field({
      type: BlockRef,
      nullable: true,
      resolve: (b, _, ctx) => ctx.db.block.findUnique({ where: { hash: b.prevHash } }),
    }),
  }),
});

builder.queryFields((t) => ({
  block: t.field({
    type: BlockRef,
    nullable: true,
    description: 'A block by hash, or the canonical block at a height. Exactly one argument.',
    args: { hash: t.arg.string(), height: t.arg.int() },
    resolve: (_, { hash, height }, ctx) => {
      if ((hash == null) === (height == null))
        throw badInput('block needs exactly one of "hash" or "height"');
      if (hash != null) return ctx.db.block.findUnique({ where: { hash } });
      return ctx.db.block.findFirst({ where: { canonical: true, height: height! } });
    },
  }),
  blocks: t.field({
    type: [BlockRef],
    description: `Canonical blocks with fromHeight ≤ height ≤ toHeight, ascending; at most ${MAX_PAGE_SIZE}.`,
    args: { fromHeight: t.arg.int({ required: true }), toHeight: t.arg.int({ required: true }) },
    resolve: (_, { fromHeight, toHeight }, ctx) => {
      if (fromHeight < 0 || toHeight < fromHeight)
        throw badInput(`invalid range: need 0 ≤ fromHeight ≤ toHeight (got ${fromHeight}..${toHeight})`);
      if (toHeight - fromHeight + 1 > MAX_PAGE_SIZE)
        throw badInput(
          `range too large: ${toHeight - fromHeight + 1} blocks requested, at most ${MAX_PAGE_SIZE} per query`,
        );
      return ctx.db.block.findMany({
        where: { canonical: true, height: { gte: fromHeight, lte: toHeight } },
        orderBy: { height: 'asc' },
      });
    },
  }),
  blockConnection: t.connection(
    {
      type: BlockRef,
      description: `Canonical blocks, newest first; pages of at most ${MAX_PAGE_SIZE}.`,
      resolve: (_, args, ctx) => {
        const run = () =>
          keysetConnection<BlockShape>(args, [{ field: 'height', desc: true, kind: 'int' }], (q) =>
            ctx.db.block.findMany({
              where: { canonical: true, ...q.where },
              orderBy: q.orderBy,
              take: q.take,
            }),
          );
        // The dashboard's "latest N blocks" is the hot read; deeper pages go to the DB.
        return args.after || args.before || args.last != null
          ? run()
          : cached(ctx.cache, `blocks:first:${args.first ?? ''}`, run);
      },
    },
    { name: 'BlockConnection' },
    { name: 'BlockEdge' },
  ),
}));
