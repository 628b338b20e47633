import { TOPICS } from '../jobs/events.ts';
import { BlockRef } from './blocks.ts';
import { builder } from './builder.ts';
import { verifiedRows } from './event-rows.ts';
import { ModelVersionRef } from './models.ts';
import { NodeRef } from './nodes.ts';
import { OrphanedBlockRef } from './orphans.ts';
import type {
  BlockShape,
  ModelVersionShape,
  NetworkStatsShape,
  NodeShape,
  OrphanedBlockShape,
} from './shapes.ts';
import { NetworkStatsRef } from './stats.ts';

// Events from Redis carry only a row's key and may be forged (a bare PUBLISH): verifiedRows
// replaces each by the row the index holds, and drops it when there is none. Authorization (the Subscription type's reader scope,
// schema/builder.ts) runs once, when the subscription starts.
builder.subscriptionFields((t) => ({
  newBlock: t.field({
    type: BlockRef,
    description: 'Every block the collector indexes, as it is indexed.',
    subscribe: verifiedRows<BlockShape>(TOPICS.newBlock),
    resolve: (row) => row,
  }),
  orphanedBlock: t.field({
    type: OrphanedBlockRef,
    subscribe: verifiedRows<OrphanedBlockShape>(TOPICS.orphanedBlock),
    resolve: (row) => row,
  }),
  networkStats: t.field({
    type: NetworkStatsRef,
    subscribe: verifiedRows<NetworkStatsShape>(TOPICS.networkStats),
    resolve: (row) => row,
  }),
  nodeStatus: t.field({
    type: NodeRef,
    description: "A node's latest status after each of its stats reports.",
    subscribe: verifiedRows<NodeShape>(TOPICS.nodeStatus),
    resolve: (row) => row,
  }),
  modelVersion: t.field({
    type: ModelVersionRef,
    subscribe: verifiedRows<ModelVersionShape>(TOPICS.modelVersion),
    resolve: (row) => row,
  }),
}));
