/**
 * ATK-13 finding 5 (MEDIUM, fixed): `npm start`'s own Redis took commands from every local user.
 *
 * The demo started its redis-server on 127.0.0.1 with no password: any other user of the machine
 * could lock the nodes, collector and gateway out (`CONFIG SET requirepass`: each then got NOAUTH
 * on its next reconnect), FLUSHALL, SHUTDOWN, or read every queue. Now the server the demo starts
 * has a random password kept in `<dataDir>/redis.conf` (0600, passed to redis-server as its
 * config file, so on no command line), and the components get it by environment. A Redis the
 * demo finds already running is used as it is, with a warning when it is open (redisIsOpen).
 *
 * Figures, before: a stranger's PING → PONG; its CONFIG SET requirepass → OK; a component
 * reconnecting → NOAUTH. Now: NOAUTH, refused (ioredis drops the refused
 * connection), PONG.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { portOrFree } from '../cluster/service.ts';
import { loadOrCreateRedisPassword, redisIsOpen, startDemoRedis, startRedisServer } from './redis.ts';

test('the demo’s Redis refuses a local user who has no credentials', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-demo-redis-'));
  const port = await portOrFree(0);
  const { service, url } = await startDemoRedis(port, path.join(dir, 'redis.log'), dir);
  const clients: Redis[] = [];
  const client = (u = `redis://127.0.0.1:${port}`) => {
    const r = new Redis(u, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    r.on('error', () => {});
    clients.push(r);
    return r;
  };
  t.after(async () => {
    for (const c of clients) c.disconnect();
    await service.stop();
    await rm(dir, { recursive: true, force: true });
  });
  // A component, connected the way the demo connects them (the URL from its environment).
  assert.equal(await client(url).ping(), 'PONG');
  const stranger = client();
  const ping = await stranger.ping().catch((e: Error) => e.message);
  const lock = await stranger
    .config('SET', 'requirepass', 'taken-by-a-stranger')
    .catch((e: Error) => e.message);
  const after = await client(url)
    .ping()
    .catch((e: Error) => e.message);
  t.diagnostic(
    `stranger PING: ${ping}; stranger CONFIG SET requirepass: ${lock}; component reconnecting: ${after}`,
  );
  assert.match(String(ping), /NOAUTH/, 'a client without the demo’s credentials must be refused');
  assert.notEqual(lock, 'OK', 'nor may it change the password');
  assert.equal(after, 'PONG', 'the demo’s components must keep their Redis');
  assert.equal(await redisIsOpen(url), false);

  // The password: owner-only on disk, on no command line, and the same on the next start.
  const { password, configFile } = loadOrCreateRedisPassword(dir);
  assert.equal(new URL(url).password, password);
  assert.equal(statSync(configFile).mode & 0o777, 0o600);
  // argv as spawned (redis-server then rewrites its process title, which is no proof) and as shown.
  assert.equal(service.spec.args[0], configFile);
  assert.ok(!service.spec.args.some((a) => a.includes(password)), service.spec.args.join(' '));
  assert.ok(!readFileSync(`/proc/${service.pid}/cmdline`, 'utf8').includes(password));
});

test('redisIsOpen tells an unauthenticated Redis (the demo then warns)', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-open-redis-'));
  const port = await portOrFree(0);
  const open = await startRedisServer(port, path.join(dir, 'redis.log'), dir);
  t.after(async () => {
    await open.stop();
    await rm(dir, { recursive: true, force: true });
  });
  // Even a URL with a password: the server, not the URL, decides.
  assert.equal(await redisIsOpen(`redis://:anything@127.0.0.1:${port}`), true);
});
