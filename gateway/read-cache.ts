import { TOPICS, type Topic } from '../jobs/events.ts';
import type { CairnPubSub } from '../jobs/pubsub.ts';
import type { ReadCache } from '../schema/index.ts';

/**
 * Which events change which cached reads (the keys schema/ passes to `cached`): a key is dropped
 * only by the topics listed for its prefix. A key no rule matches is dropped by every event.
 */
export const KEY_TOPICS: readonly (readonly [prefix: string, topics: readonly Topic[]])[] = [
  // Head height and hash, node count, time of the latest stats.
  ['meta', [TOPICS.newBlock, TOPICS.networkStats, TOPICS.nodeStatus]],
  ['networkStats', [TOPICS.networkStats]],
  // The newest canonical blocks: a new block, or a reorg it causes.
  ['blocks:', [TOPICS.newBlock]],
];

/**
 * The GraphQL types whose cached results an event makes stale (for whole-response caching:
 * response-cache.ts). A block can reorg others, so newBlock stales every Block read; a node's
 * stats report also refreshes the network config row and the node list.
 */
export const TOPIC_TYPES: { readonly [T in Topic]: readonly string[] } = {
  // Entry searches and topic counts change with every indexed block: their answers may select
  // neither Block nor Entry (a page's cursors, a topics list), so their own types are listed.
  [TOPICS.newBlock]: ['Block', 'BlockConnection', 'Entry', 'EntryConnection', 'EntryEdge', 'Topic', 'Meta'],
  [TOPICS.orphanedBlock]: ['OrphanedBlock', 'OrphanedBlockConnection'],
  [TOPICS.networkStats]: ['NetworkStats', 'Meta'],
  [TOPICS.nodeStatus]: ['Node', 'NodeConnection', 'NodeStatsSnapshot', 'NetworkConfig', 'Meta'],
  [TOPICS.modelVersion]: [
    'ModelVersion',
    'ModelVersionConnection',
    'FlRound',
    'FlRoundConnection',
    'Classification',
  ],
};

const touches = (key: string, topic: Topic): boolean => {
  const rule = KEY_TOPICS.find(([prefix]) => key.startsWith(prefix));
  return rule ? rule[1].includes(topic) : true;
};

/**
 * The dashboard's hot reads (head, latest stats, newest blocks) shared across requests for at
 * most `ttlMs`, and dropped as soon as this instance sees an event that changes them (only
 * those: a stats event leaves the block list cached). Concurrent misses share one load. A
 * failed load is not cached.
 */
export class EventInvalidatedCache implements ReadCache {
  private readonly entries = new Map<string, { until: number; value: Promise<unknown> }>();
  private readonly iterators: AsyncIterator<unknown>[] = [];
  private readonly listeners: ((topic: Topic) => void)[] = [];

  private readonly ttlMs: number;
  constructor(ttlMs: number) {
    this.ttlMs = ttlMs;
  }

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    if (this.ttlMs <= 0) return load();
    const now = performance.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) return hit.value as Promise<T>;
    const value = load();
    this.entries.set(key, { until: now + this.ttlMs, value });
    value.catch(() => {
      if (this.entries.get(key)?.value === value) this.entries.delete(key);
    });
    return value;
  }

  /** Drops the reads `topic` changes, and tells the listeners (caches layered on this one). */
  invalidate(topic: Topic): void {
    for (const key of [...this.entries.keys()]) if (touches(key, topic)) this.entries.delete(key);
    for (const l of this.listeners) l(topic);
  }

  clear(): void {
    this.entries.clear();
  }

  /** Called on every event: caches layered on this one (whole responses) follow its lifetime. */
  onInvalidate(listener: (topic: Topic) => void): void {
    this.listeners.push(listener);
  }

  /** Invalidates on every event (the events' topics name what they change). */
  watch(pubsub: CairnPubSub): void {
    for (const topic of Object.values(TOPICS)) {
      const it = pubsub.subscribe(topic)[Symbol.asyncIterator]();
      this.iterators.push(it);
      void (async () => {
        for (;;) {
          const r = await it.next().catch(() => ({ done: true as const, value: undefined }));
          if (r.done) return;
          this.invalidate(topic);
        }
      })();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.iterators.map((it) => it.return?.().catch(() => {})));
    this.iterators.length = 0;
    this.clear();
  }
}
