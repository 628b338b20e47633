/** Finding or starting the Redis the demo needs. */
import { Redis } from 'ioredis';
import { which } from '../cluster/children.ts';
import type { Service } from '../cluster/service.ts';
import { redisProcess } from '../cluster/service-process.ts';

/** True if a Redis answers PING at `url` within a second. */
export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const r = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
  });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export const HOW_TO_GET_REDIS = [
  'Cairn needs Redis (BullMQ job queues and the gateway event bus). Any of these works:',
  '  • Debian/Ubuntu:  sudo apt-get install redis-server     (then run npm start again)',
  '  • macOS:          brew install redis',
  '  • Docker:         docker run --rm -p 6379:6379 redis:7-alpine',
  '  • an existing one: REDIS_URL=redis://host:6379 npm start',
].join('\n');

/** A private, non-persistent redis-server on 127.0.0.1:`port`, in its own process group. */
export async function startRedisServer(port: number, logFile: string, dir: string): Promise<Service> {
  const bin = which('redis-server');
  if (!bin) throw new Error(HOW_TO_GET_REDIS);
  const svc = redisProcess(logFile, port, { command: bin, dir, detached: true });
  await svc.start();
  return svc;
}
