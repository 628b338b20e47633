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

/**
 * What an event carries across Redis: the key of the row it announces, nothing else. Events are
 * hints: anyone who can PUBLISH on the server can send one, so subscribers re-read the row from
 * the index (schema/event-rows.ts), where only the collector writes, and drop events whose row
 * is absent. A row's other fields never travel, so none can be forged.
 */
export type BlockEvent = Pick<Jsonified<Block>, 'hash'>;
export type OrphanedBlockEvent = Pick<Jsonified<OrphanedBlock>, 'hash' | 'reason'>;
export type NetworkStatsEvent = Pick<Jsonified<NetworkStats>, 'id'>;
export type NodeStatusEvent = Pick<Jsonified<Node>, 'id'>;
export type ModelVersionEvent = Pick<Jsonified<ModelVersion>, 'hash'>;

/** Topic → payload, the type map for createPubSub on both sides. */
export type CairnEvents = {
  [TOPICS.newBlock]: [BlockEvent];
  [TOPICS.orphanedBlock]: [OrphanedBlockEvent];
  [TOPICS.networkStats]: [NetworkStatsEvent];
  [TOPICS.nodeStatus]: [NodeStatusEvent];
  [TOPICS.modelVersion]: [ModelVersionEvent];
};

export type Topic = (typeof TOPICS)[keyof typeof TOPICS];

/** The key fields of each topic's payload (what publish keeps, what subscribers look up). */
export const EVENT_KEYS: { readonly [T in Topic]: readonly (keyof CairnEvents[T][0])[] } = {
  [TOPICS.newBlock]: ['hash'],
  [TOPICS.orphanedBlock]: ['hash', 'reason'],
  [TOPICS.networkStats]: ['id'],
  [TOPICS.nodeStatus]: ['id'],
  [TOPICS.modelVersion]: ['hash'],
};

/** The payload cut down to its topic's key fields (a row's other fields stay home). */
export function eventKey(topic: string, payload: unknown): Record<string, unknown> | undefined {
  const fields = (EVENT_KEYS as Record<string, readonly string[]>)[topic];
  if (!fields || typeof payload !== 'object' || payload === null) return undefined;
  const src = payload as Record<string, unknown>;
  return Object.fromEntries(fields.map((f) => [f, src[f]]));
}

/** A Prisma row (Dates) as its event payload (ISO strings). */
export function toEvent<T extends object>(row: T): Jsonified<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof Date ? v.toISOString() : v;
  return out as Jsonified<T>;
}
