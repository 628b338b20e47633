/**
 * ATK-13 finding 5 (MEDIUM): `npm start`'s own Redis takes commands from every local user.
 *
 * The demo starts a private redis-server (e2e/demo/redis.ts startRedisServer →
 * e2e/cluster/service-process.ts redisProcess) on 127.0.0.1 with no password and no ACL; the
 * nodes, the collector and the gateway connect without credentials. Compose got one ACL user per
 * component (issue 13, point 3); the demo, which is what `npm start` users run, got none. Any
 * other user of the machine (the "stranger on the same host" of issue 13) therefore has every
 * Redis command the demo has: signatures keep it from making a node obey or from forging a
 * report, but not from stopping the demo's whole control plane with one command. Shown here:
 * `CONFIG SET requirepass` locks the nodes, collector and gateway out (they then get NOAUTH and
 * stay out until the demo is restarted); `SHUTDOWN NOSAVE`, `FLUSHALL`, `CLIENT KILL`, `CLIENT
 * PAUSE`, `CONFIG SET maxmemory 1` do as much, and every queue, report and sealed result is
 * readable (KEYS *, HGETALL). Redis 7's protected configs keep `dir`/`dbfilename`/MODULE off, so
 * the classic file-write is closed; the rest is open.
 *
 * Figures: a stranger's unauthenticated PING → PONG; its CONFIG SET requirepass → OK; a
 * component reconnecting the demo's way (any dropped socket, any restart) → NOAUTH.
 *
 * Run: npm exec -- node --test attack/control/demo-redis-open.attack.ts
 *
 * Fix that makes it pass: the demo's redis-server starts with a random password (or an ACL file
 * like compose's: jobs/redis-acl.ts) written 0600 into the demo's data dir, and the components get
 * it the way compose's do (CAIRN_REDIS_PASSWORD / the REDIS_URL env, never argv); a REDIS_URL the
 * user gave keeps working as now.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../e2e/demo/redis.ts';

test('the demo’s Redis refuses a local user who has no credentials', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'atk13-demo-redis-'));
  const port = 40_000 + Math.floor(Math.random() * 10_000);
  const svc = await startRedisServer(port, path.join(dir, 'redis.log'), dir);
  const clients: Redis[] = [];
  const client = () => {
    const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null });
    r.on('error', () => {});
    clients.push(r);
    return r;
  };
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await svc.stop();
    await rm(dir, { recursive: true, force: true });
  });
  // A component connected the way the demo connects them (no credentials).
  const component = client();
  assert.equal(await component.ping(), 'PONG');
  const stranger = client();
  const ping = await stranger.ping().catch((e: Error) => e.message);
  const lock = await stranger
    .config('SET', 'requirepass', 'taken-by-a-stranger')
    .catch((e: Error) => e.message);
  // Connections already open stay authenticated; any reconnect (a restart, a dropped socket) is not.
  const after = await client()
    .ping()
    .catch((e: Error) => e.message);
  t.diagnostic(
    `stranger PING: ${ping}; stranger CONFIG SET requirepass: ${lock}; component reconnecting: ${after}`,
  );
  assert.notEqual(ping, 'PONG', 'a client without the demo’s credentials must be refused');
  assert.equal(after, 'PONG', 'the demo’s components must keep their Redis');
});
