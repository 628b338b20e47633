/**
 * The Redis ACL of docker-compose.yml, run for real: a redis-server on a loopback port started
 * with the compose file's own arguments (passwords filled in), then each component's user tried
 * with what it does (BullMQ queues, pub/sub) and with what it must not (PUBLISH an event, touch
 * another component's keys).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { REPO_ROOT } from './cluster/node-process.ts';

const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
  services: { redis: { command: string[] } };
};
const PASSWORDS: Record<string, string> = {
  CAIRN_REDIS_NODE_PASSWORD: 'node-pw',
  CAIRN_REDIS_COLLECTOR_PASSWORD: 'collector-pw',
  CAIRN_REDIS_GATEWAY_PASSWORD: 'gateway-pw',
  CAIRN_REDIS_HEALTH_PASSWORD: 'health-pw',
};
/** Compose's ${VAR}, ${VAR:?msg} and ${VAR:-default} with the test's passwords. */
const fill = (arg: string) =>
  arg.replace(/\$\{(\w+)(?::[?-][^}]*)?\}/g, (_m, v: string) => PASSWORDS[v] ?? '');

const port = 20_000 + Math.floor(Math.random() * 20_000);
let server: ChildProcess;
let dir: string;
const clients: Redis[] = [];
const queues: Queue[] = [];
const queue = (name: string, connection: Redis) => {
  const q = new Queue(name, { connection, prefix: 'cairn' });
  queues.push(q);
  return q;
};

function as(user: string): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    username: user,
    password: `${user}-pw`,
    maxRetriesPerRequest: null,
  });
  clients.push(r);
  return r;
}

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cairn-acl-'));
  const [, ...args] = compose.services.redis.command.map(fill);
  server = spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir], {
    stdio: 'ignore',
  });
  // The health user may only PING: no ready check (INFO), no retries (a fresh client per try).
  for (let i = 0; ; i++) {
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      username: 'health',
      password: 'health-pw',
      enableReadyCheck: false,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      assert.equal(await probe.ping(), 'PONG');
      probe.disconnect();
      break;
    } catch (err) {
      probe.disconnect();
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
});

after(async () => {
  await Promise.all(queues.map((q) => q.close()));
  for (const c of clients) c.disconnect();
  // A throwaway server: nothing to save on the way out.
  const exited = once(server, 'exit');
  server.kill('SIGKILL');
  await exited;
  await rm(dir, { recursive: true, force: true });
});

const CHANNEL = 'cairn.cairn.newBlock';
const noPerm = (p: Promise<unknown>) => assert.rejects(p, /NOPERM/);

test('nodes use their queue and the reports queue through BullMQ, and cannot publish', async () => {
  const conn = as('node');
  for (const name of ['node.12D3KooWx', 'reports']) {
    const q = queue(name, conn);
    await q.add('t', { a: 1 });
    assert.equal(await q.count(), 1);
  }
  await noPerm(conn.publish(CHANNEL, '{"hash":"00"}'));
  await noPerm(conn.set('elsewhere:key', '1'));
});

test('the gateway subscribes to events but cannot publish them, nor touch the reports queue', async () => {
  const gw = as('gateway');
  await gw.subscribe(CHANNEL);
  const gw2 = as('gateway');
  await noPerm(gw2.publish(CHANNEL, '{"hash":"00"}'));
  await noPerm(gw2.set('cairn:reports:id', '1'));
  await gw2.set('cairn:node.12D3KooWx:id', '1');
});

test('the collector publishes events and uses the reports queue, not node queues', async () => {
  const sub = as('gateway');
  const got = new Promise<string>((resolve) => sub.on('message', (_c, m) => resolve(m)));
  await sub.subscribe(CHANNEL);
  const col = as('collector');
  assert.ok((await col.publish(CHANNEL, '{"hash":"ab"}')) >= 1);
  assert.equal(await got, '{"hash":"ab"}');
  await noPerm(col.publish('other.channel', 'x'));
  const q = queue('reports', col);
  assert.ok((await q.count()) >= 0);
  await noPerm(col.set('cairn:node.12D3KooWx:id', '1'));
});
