/** Finding or starting the Redis the demo needs. */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
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

/**
 * The config file of the demo's own redis-server, in the demo's (0700) data dir: it holds the
 * password (`requirepass`), so the password is on no command line (/proc/<pid>/cmdline is every
 * local user's to read) and any other local user gets NOAUTH instead of the demo's control plane
 * (CONFIG SET requirepass, FLUSHALL, SHUTDOWN, every queue's contents: attack review 13).
 */
export const DEMO_REDIS_CONFIG = 'redis.conf';

/**
 * The password in `<dataDir>/redis.conf`, created (random, 0600) if the file is missing. Kept
 * across starts: a demo restarted while its last redis-server still runs can still reach it.
 */
export function loadOrCreateRedisPassword(dataDir: string): { password: string; configFile: string } {
  const configFile = path.join(dataDir, DEMO_REDIS_CONFIG);
  if (existsSync(configFile)) {
    const m = /^requirepass ([0-9a-f]{32,})$/m.exec(readFileSync(configFile, 'utf8'));
    if (m) return { password: m[1]!, configFile };
  }
  const password = randomBytes(24).toString('hex');
  const tmp = `${configFile}.${process.pid}.tmp`;
  writeFileSync(
    tmp,
    `# npm start's redis-server: only the demo knows this password.\nrequirepass ${password}\n`,
    {
      mode: 0o600,
    },
  );
  renameSync(tmp, configFile);
  return { password, configFile };
}

/**
 * The demo's own redis-server on 127.0.0.1:`port` (private, non-persistent, own process group),
 * with the password of `<dataDir>/redis.conf`; `url` carries it, for the components'
 * environment (REDIS_URL, or CAIRN_REDIS_PASSWORD for a node), never their argv.
 */
export async function startDemoRedis(
  port: number,
  logFile: string,
  dataDir: string,
): Promise<{ service: Service; url: string }> {
  const bin = which('redis-server');
  if (!bin) throw new Error(HOW_TO_GET_REDIS);
  const { password, configFile } = loadOrCreateRedisPassword(dataDir);
  const service = redisProcess(logFile, port, { command: bin, dir: dataDir, detached: true, configFile });
  await service.start();
  return { service, url: `redis://:${password}@127.0.0.1:${port}` };
}

/**
 * True if the Redis at `url` obeys a client that gives no credentials: then every local user
 * can stop the demo's queues and read them, which `npm start` says in a warning.
 */
export async function redisIsOpen(url: string): Promise<boolean> {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return redisAnswers(u.toString());
}

/**
 * A private, non-persistent redis-server on 127.0.0.1:`port`, in its own process group, with no
 * password: for the test suite's throwaway servers (the demo uses startDemoRedis).
 */
export async function startRedisServer(port: number, logFile: string, dir: string): Promise<Service> {
  const bin = which('redis-server');
  if (!bin) throw new Error(HOW_TO_GET_REDIS);
  const svc = redisProcess(logFile, port, { command: bin, dir, detached: true });
  await svc.start();
  return svc;
}
