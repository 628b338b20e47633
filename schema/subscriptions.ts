import { TOPICS } from '../jobs/events.ts';
import { BlockRef } from './blocks.ts';
import { builder } from './builder.ts';
import { ModelVersionRef } from './models.ts';
import { NodeRef } from './nodes.ts';
import { OrphanedBlockRef } from './orphans.ts';
import { NetworkStatsRef } from './stats.ts';

// Events arrive from Redis as the rows' JSON (ISO dates); the object types accept that shape, so
// each field resolves to its payload as is. Authorization (the Subscription type's reader scope,
// schema/builder.ts) runs once, when the subscription starts.
builder.subscriptionFields((t) => ({
  newBlock: t.field({
    type: BlockRef,
    description: 'Every block the collector indexes, as it is indexed.',
    subscribe: (_, __, ctx) => ctx.pubsub.subscribe(TOPICS.newBlock),
    resolve: (ev) => ev,
  }),
  orphanedBlock: t.field({
    type: OrphanedBlockRef,
    subscribe: (_, __, ctx) => ctx.pubsub.subscribe(TOPICS.orphanedBlock),
    resolve: (ev) => ev,
  }),
  networkStats: t.field({
    type: NetworkStatsRef,
    subscribe: (_, __, ctx) => ctx.pubsub.subscribe(TOPICS.networkStats),
    resolve: (ev) => ev,
  }),
  nodeStatus: t.field({
    type: NodeRef,
    description: "A node's latest status after each of its stats reports.",
    subscribe: (_, __, ctx) => ctx.pubsub.subscribe(TOPICS.nodeStatus),
    resolve: (ev) => ev,
  }),
  modelVersion: t.field({
    type: ModelVersionRef,
    subscribe: (_, __, ctx) => ctx.pubsub.subscribe(TOPICS.modelVersion),
    resolve: (ev) => ev,
  }),
}));
