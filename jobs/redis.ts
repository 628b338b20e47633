import type { Worker } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { type EvalshaOptions, evalshaOnly } from './redis-scripts.ts';

import { redisUrl } from './redis-url.ts';

export { DEFAULT_REDIS_URL, redactUrl, redisUrl, withRedisPassword } from './redis-url.ts';

/**
 * A Redis connection for BullMQ or pub/sub. `maxRetriesPerRequest: null` is what BullMQ workers
 * require (a blocked command waits for the reconnect instead of failing), and the retry strategy
 * never gives up: a Redis restart is a pause, not an end. Scripts go as EVALSHA only (a node's
 * Redis user may not EVAL: redis-scripts.ts), waiting for the preload when Redis lacks one.
 */
export function createRedis(url = redisUrl(), extra: RedisOptions = {}, scripts: EvalshaOptions = {}): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times) => Math.min(200 + times * 200, 2_000),
    lazyConnect: false,
    ...extra,
  });
  // Connection errors are expected while Redis restarts and the retry strategy handles them;
  // without a listener ioredis prints every one as "Unhandled error event". Owners that care
  // (the node's and collector's monitors) listen for 'close' and 'ready'.
  redis.on('error', () => {});
  return evalshaOnly(redis, scripts);
}

/** Closes a connection politely (QUIT), or drops it when that fails (Redis is down). */
export async function closeRedis(r: Redis): Promise<void> {
  await r.quit().catch(() => r.disconnect());
}

/**
 * Replaces-and-forgets a worker the watchdog gave up on: force-closes it without waiting for its
 * jobs, then closes the connection it blocked on (BullMQ never closes a connection it was handed).
 */
export function retireWorker(worker: Worker, connection: Redis | undefined): void {
  void worker
    .close(true)
    .catch(() => {})
    .finally(() => connection && closeRedis(connection));
}

/**
 * Connections a component opens and must close itself: BullMQ never closes a connection it was
 * handed, and one left open keeps the process alive.
 */
export class RedisConnections {
  private readonly open = new Set<Redis>();

  private readonly url;
  private readonly scripts: EvalshaOptions;
  constructor(url = redisUrl(), scripts: EvalshaOptions = {}) {
    this.url = url;
    this.scripts = scripts;
  }

  create(extra: RedisOptions = {}): Redis {
    const r = createRedis(this.url, extra, this.scripts);
    this.open.add(r);
    r.once('end', () => this.open.delete(r));
    return r;
  }

  async closeAll(): Promise<void> {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map(closeRedis));
  }
}

/**
 * Whether a connection is up and since when, with a callback on each change. The job worker and
 * the collector act on it: what to redo when Redis returns, when to suspect a stuck worker.
 */
export class RedisLiveness {
  up = false;
  upSince = 0;
  downSince = 0;

  /**
   * How long the last outage lasted, once Redis is back; undefined if it never went down (or is
   * down now). `now - downSince` would read as an outage since 1970 when there was none.
   */
  get lastOutageMs(): number | undefined {
    return this.up && this.downSince > 0 && this.upSince >= this.downSince
      ? this.upSince - this.downSince
      : undefined;
  }

  constructor(
    connection: Redis,
    on: { up?: (wasDown: boolean) => void; down?: (wasUp: boolean) => void } = {},
  ) {
    connection.on('ready', () => {
      const wasDown = !this.up;
      if (wasDown) this.upSince = Date.now();
      this.up = true;
      on.up?.(wasDown);
    });
    connection.on('close', () => {
      const wasUp = this.up;
      if (wasUp) this.downSince = Date.now();
      this.up = false;
      on.down?.(wasUp);
    });
  }
}
