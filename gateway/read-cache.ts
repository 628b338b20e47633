import { TOPICS } from '../jobs/events.ts';
import type { CairnPubSub } from '../jobs/pubsub.ts';
import type { ReadCache } from '../schema/index.ts';

/**
 * The dashboard's hot reads (head, latest stats, newest blocks) shared across requests for at
 * most `ttlMs`, and dropped as soon as this instance sees an event that changes them. Concurrent
 * misses share one load. A failed load is not cached.
 */
export class EventInvalidatedCache implements ReadCache {
  private readonly entries = new Map<string, { until: number; value: Promise<unknown> }>();
  private readonly iterators: AsyncIterator<unknown>[] = [];
  private readonly clearListeners: (() => void)[] = [];

  constructor(private readonly ttlMs: number) {}

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

  clear(): void {
    this.entries.clear();
    for (const l of this.clearListeners) l();
  }

  /** Called on every clear: caches layered on this one (whole responses) follow its lifetime. */
  onClear(listener: () => void): void {
    this.clearListeners.push(listener);
  }

  /** Clears the cache on every event that changes a cached read. */
  watch(pubsub: CairnPubSub): void {
    for (const topic of [TOPICS.newBlock, TOPICS.orphanedBlock, TOPICS.networkStats, TOPICS.nodeStatus]) {
      const it = pubsub.subscribe(topic)[Symbol.asyncIterator]();
      this.iterators.push(it);
      void (async () => {
        for (;;) {
          const r = await it.next().catch(() => ({ done: true as const, value: undefined }));
          if (r.done) return;
          this.clear();
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
