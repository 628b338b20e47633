import type {
  Block,
  Entry,
  FlRound,
  ModelVersion,
  NetworkConfig,
  NetworkStats,
  Node,
  NodeStatsSnapshot,
  OrphanedBlock,
} from '../jobs/index-db/generated/sqlite/client.ts';

/**
 * Object types are backed by Prisma rows from queries and by event payloads from subscriptions
 * (the same rows with Dates as ISO strings); one shape accepts both.
 */
export type Wire<T> = {
  [K in keyof T]: T[K] extends Date ? Date | string : T[K] extends Date | null ? Date | string | null : T[K];
};

export type BlockShape = Wire<Block>;
export type EntryShape = Wire<Entry>;
export type NetworkStatsShape = Wire<Omit<NetworkStats, 'id'>> & { id?: number };
export type NodeShape = Wire<Node>;
export type NodeStatsSnapshotShape = Wire<NodeStatsSnapshot>;
export type OrphanedBlockShape = Wire<OrphanedBlock>;
export type ModelVersionShape = Wire<ModelVersion>;
export type FlRoundShape = Wire<FlRound>;
export type NetworkConfigShape = Wire<NetworkConfig>;

/** Parses a JSON object of counts (`{"tcp": 2}`), keeping only non-negative integer counts. */
export function jsonCounts(text: string): { key: string; count: number }[] {
  try {
    const v: unknown = JSON.parse(text);
    if (!v || typeof v !== 'object' || Array.isArray(v)) return [];
    return Object.entries(v as Record<string, unknown>)
      .filter((e): e is [string, number] => Number.isSafeInteger(e[1]) && (e[1] as number) >= 0)
      .map(([key, count]) => ({ key, count }));
  } catch {
    return [];
  }
}

/** Parses a JSON-array column, tolerating legacy or hand-written rows. */
export function jsonStrings(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    return [];
  }
}
