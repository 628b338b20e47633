import { builder } from './builder.ts';
import type { NetworkConfigShape } from './shapes.ts';

const NetworkConfigRef = builder.objectRef<NetworkConfigShape>('NetworkConfig').implement({
  description: 'The network configuration as the nodes report it.',
  fields: (t) => ({
    chainId: t.exposeString('chainId'),
    genesisHash: t.exposeString('genesisHash'),
    config: t.exposeString('config', {
      description: 'The configuration as JSON (bigints as decimal strings).',
    }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

builder.queryField('networkConfig', (t) =>
  t.field({
    type: NetworkConfigRef,
    nullable: true,
    description: 'The most recently reported network configuration.',
    resolve: (_, __, ctx) => ctx.db.networkConfig.findFirst({ orderBy: { updatedAt: 'desc' } }),
  }),
);
