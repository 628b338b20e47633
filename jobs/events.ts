/**
 * Subscription events: the collector publishes them on Redis pub/sub (through
 * @graphql-yoga/redis-event-target), every gateway instance relays them to its subscribers.
 * Payloads cross Redis as JSON, so dates are ISO strings and big numbers decimal strings.
 */
import type {
  Block,
  ModelVersion,
  NetworkStats,
  Node,
  OrphanedBlock,
} from './index-db/generated/sqlite/client.ts';

export const TOPICS = {
  newBlock: 'cairn.newBlock',
  orphanedBlock: 'cairn.orphanedBlock',
  networkStats: 'cairn.networkStats',
  nodeStatus: 'cairn.nodeStatus',
  modelVersion: 'cairn.modelVersion',
} as const;

/** A row as it crosses Redis as JSON: Dates become ISO strings. */
export type Jsonified<T> = { readonly [K in keyof T]: T[K] extends Date ? string : T[K] };

export type BlockEvent = Jsonified<Block>;
export type OrphanedBlockEvent = Jsonified<OrphanedBlock>;
export type NetworkStatsEvent = Jsonified<NetworkStats>;
export type NodeStatusEvent = Jsonified<Node>;
export type ModelVersionEvent = Jsonified<ModelVersion>;

/** Topic → payload, the type map for createPubSub on both sides. */
export type CairnEvents = {
  [TOPICS.newBlock]: [BlockEvent];
  [TOPICS.orphanedBlock]: [OrphanedBlockEvent];
  [TOPICS.networkStats]: [NetworkStatsEvent];
  [TOPICS.nodeStatus]: [NodeStatusEvent];
  [TOPICS.modelVersion]: [ModelVersionEvent];
};

/** A Prisma row (Dates) as its event payload (ISO strings). */
export function toEvent<T extends object>(row: T): Jsonified<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof Date ? v.toISOString() : v;
  return out as Jsonified<T>;
}
