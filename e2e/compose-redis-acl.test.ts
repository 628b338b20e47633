/**
 * The Redis ACL of docker-compose.yml, run for real: compose's network-init command (its
 * arguments, paths moved to a temp dir) creates the identities and writes the ACL file, then a
 * redis-server on a loopback port starts with the compose file's own arguments, and each user is
 * tried with what it does (BullMQ queues, pub/sub) and with what it must not (another node's
 * queue, removing or pausing reports, PUBLISH an event, another component's keys).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { REPORTS_EVENTS_MAX_LEN } from '../jobs/queues.ts';
import { evalshaOnly, keepScriptsLoaded } from '../jobs/redis-scripts.ts';
import { ReportOutbox } from '../jobs/report-outbox.ts';
import { loadOrCreateIdentity, type NodeIdentity } from '../node/identity/identity.ts';
import { createLogger } from '../node/log.ts';
import { REPO_ROOT } from './cluster/node-process.ts';

interface Service {
  command: string[];
  environment?: Record<string, string>;
}
const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const USERS = ['node-1', 'node-2', 'node-3', 'collector', 'gateway', 'health'];
const PASSWORDS: Record<string, string> = Object.fromEntries(
  USERS.map((u) => [`CAIRN_REDIS_${u.toUpperCase().replace('-', '_')}_PASSWORD`, `${u}-pw`]),
);
/** Compose's ${VAR}, ${VAR:?msg} and ${VAR:-default} with the test's passwords. */
const fill = (arg: string) =>
  arg.replace(/\$\{(\w+)(?::[?-][^}]*)?\}/g, (_m, v: string) => PASSWORDS[v] ?? '');

const port = 20_000 + Math.floor(Math.random() * 20_000);
let server: ChildProcess;
let dir: string;
/** Compose's container paths, moved into the test's dir. */
const local = (arg: string) => arg.replace(/^\/(cairn|acl)(?=\/|$)/, (m) => path.join(dir, m));
/** Compose's arguments as the test can run them: its paths in the test's dir, and the volume
 * handed to whoever runs the test (compose hands it to the image's uid 1000, as root). */
const runnable = (args: readonly string[]) =>
  args.map((a, i) => (args[i - 1] === '--owner' ? `${process.getuid!()}:${process.getgid!()}` : local(a)));
const ids: Record<string, NodeIdentity> = {};
const clients: Redis[] = [];
const closers: { close(): Promise<unknown> }[] = [];
const queue = (name: string, connection: Redis, producerOnly = false) => {
  const q = new Queue(name, { connection, prefix: 'cairn', skipMetasUpdate: producerOnly });
  q.on('error', () => {});
  closers.push(q);
  return q;
};

/** A connection as Cairn's components open one (jobs/redis.ts): scripts by EVALSHA only. */
function as(user: string): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    username: user,
    password: `${user}-pw`,
    maxRetriesPerRequest: null,
  });
  r.on('error', () => {});
  clients.push(r);
  return evalshaOnly(r);
}
const nodeQueue = (n: string) => `node.${ids[n]!.peerId.toString()}`;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cairn-acl-'));
  const init = compose.services['network-init']!;
  const [npm, run, script, dashdash, ...initArgs] = init.command;
  assert.deepEqual([npm, run, script, dashdash], ['npm', 'run', 'network:init', '--']);
  const env = Object.fromEntries(Object.entries(init.environment ?? {}).map(([k, v]) => [k, fill(v)]));
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'node/network-init.ts'), ...runnable(initArgs)],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, `network-init failed: ${stderr}`);
  for (const n of ['node-1', 'node-2', 'node-3'])
    ids[n] = await loadOrCreateIdentity(path.join(dir, 'cairn', n));

  const [, ...args] = compose.services.redis!.command.map(fill).map(local);
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
  // The collector loads BullMQ's scripts (node users may only EVALSHA them), and its queue
  // writes the reports queue's meta, as in compose (nodes may not).
  const collector = as('collector');
  const loaded = new Promise<void>((resolve) =>
    keepScriptsLoaded(collector, { counter: { inc: () => resolve() } as never }),
  );
  await loaded;
  await queue('reports', collector).getVersion();
});

after(async () => {
  await Promise.all(closers.map((q) => q.close()));
  for (const c of clients) c.disconnect();
  // A throwaway server: nothing to save on the way out.
  if (server) {
    const exited = once(server, 'exit');
    server.kill('SIGKILL');
    await exited;
  }
  await rm(dir, { recursive: true, force: true });
});

const CHANNEL = 'cairn.cairn.newBlock';
/** ACL refusals: NOPERM for a command, and inside a BullMQ script (Redis 7.0) "…can't…". */
const noPerm = (p: Promise<unknown>) =>
  assert.rejects(p, /NOPERM|The user executing the script can't (run|access)/);

test('the default user is off and the ACL file holds no password', async () => {
  const anon = new Redis({ port, host: '127.0.0.1', lazyConnect: true, enableReadyCheck: false });
  anon.on('error', () => {});
  clients.push(anon);
  await anon.connect();
  await assert.rejects(anon.get('cairn:reports:id'), /NOAUTH/);
  const acl = readFileSync(path.join(dir, 'acl', 'users.acl'), 'utf8');
  for (const pw of Object.values(PASSWORDS))
    assert.ok(!acl.includes(pw), 'a password in clear in the ACL file');
});

test('each node service logs in as its own user, with the password compose hands it, to its own queue', async () => {
  for (const n of ['node-1', 'node-2', 'node-3']) {
    const svc = compose.services[n]!;
    const flag = (f: string) => svc.command[svc.command.indexOf(f) + 1]!;
    const url = new URL(flag('--redis'));
    assert.equal(url.username, n, `${n} logs in as its own Redis user`);
    assert.equal(url.password, '', `${n}: no password on the command line`);
    assert.equal(path.basename(flag('--data-dir')), n);
    const password = fill(svc.environment!.CAIRN_REDIS_PASSWORD!);
    const conn = evalshaOnly(
      new Redis({
        port,
        host: '127.0.0.1',
        username: url.username,
        password,
        maxRetriesPerRequest: null,
      }),
    );
    conn.on('error', () => {});
    clients.push(conn);
    const own = queue(nodeQueue(n), conn);
    await own.add('admin.syncChain', {});
    const other = n === 'node-1' ? 'node-2' : 'node-1';
    await noPerm(queue(nodeQueue(other), conn, true).add('admin.syncChain', {}));
  }
});

test('a node runs its own queue (worker, schedulers, watchdog) and adds signed reports', async () => {
  const conn = as('node-1');
  const q = queue(nodeQueue('node-1'), conn);
  await q.upsertJobScheduler('stats.report', { every: 60_000 }, { name: 'stats.report' });
  const job = await q.add('admin.syncChain', { a: 1 });
  const done = new Promise<string>((resolve) => {
    const w = new Worker(nodeQueue('node-1'), async (j) => `ran ${j.name}`, {
      connection: as('node-1'),
      prefix: 'cairn',
    });
    w.on('completed', (j, r) => {
      if (j.id === job.id) resolve(r as string);
    });
    closers.push(w);
  });
  assert.equal(await done, 'ran admin.syncChain');
  // The watchdog's commands on its own events stream (queue-watch.ts).
  const events = `cairn:${nodeQueue('node-1')}:events`;
  assert.ok(await conn.xinfo('STREAM', events));
  assert.equal(await conn.del(events), 1);

  // The node's outbox, as NodeJobs opens it: a producer-only Queue on reports.
  const outbox = new ReportOutbox(queue('reports', conn, true), {
    key: ids['node-1']!.signingKey,
    log: createLogger('silent'),
    confirmMs: 60_000,
  });
  closers.push({ close: async () => outbox.close() });
  const id1 = ids['node-1']!.peerId.toString();
  const jobId = outbox.push('node.stats', `stats.${id1}.1.1`, { nodeId: id1, seq: 1 } as never);
  assert.ok(await outbox.drain(5_000), 'the report was not added');
  const reader = queue('reports', as('collector'));
  assert.equal(await reader.getJobState(jobId), 'waiting');
  await outbox.confirm(); // getJobState under the node's user: still unconfirmed, not lost
  assert.deepEqual(outbox.stats(), { pending: 0, unconfirmed: 1 });
});

test("a node is refused on another node's queue", async () => {
  // node-2 has something on its queue to attack.
  const own = queue(nodeQueue('node-2'), as('node-2'));
  await own.upsertJobScheduler('chain.sync', { every: 30_000 }, { name: 'chain.sync' });
  const job = await own.add('admin.syncChain', {});
  const b = `cairn:${nodeQueue('node-2')}`;
  const attacker = as('node-1');
  await noPerm(attacker.lrem(`${b}:wait`, 0, job.id!));
  await noPerm(attacker.del(`${b}:repeat:chain.sync`));
  await noPerm(attacker.del(`${b}:${job.id}`));
  await noPerm(attacker.xadd(`${b}:events`, '18446744073709551615-18446744073709551615', 'x', '1'));
  await noPerm(attacker.hset(`${b}:meta`, 'paused', '1'));
  await noPerm(attacker.rename(`cairn:${nodeQueue('node-1')}:wait`, `${b}:wait`));
  const theirs = queue(nodeQueue('node-2'), attacker, true);
  await noPerm(theirs.pause());
  await noPerm(theirs.add('admin.submitEntry', { text: 'not from the gateway' }));
  assert.equal(await own.isPaused(), false);
  assert.equal(await own.getJobState(job.id!), 'waiting');
  assert.equal((await own.getJobSchedulers()).length, 1);
});

test("on the reports queue a node may add, not remove, pause or overwrite another node's report", async () => {
  const id2 = ids['node-2']!.peerId.toString();
  const reports = queue('reports', as('node-2'), true);
  const victim = await reports.add('node.stats', { from: 'node-2' }, { jobId: `stats.${id2}.1.1.abc` });
  const attacker = as('node-1');
  const r = 'cairn:reports';
  await noPerm(attacker.lrem(`${r}:wait`, 0, victim.id!));
  await noPerm(attacker.rpop(`${r}:wait`));
  await noPerm(attacker.del(`${r}:${victim.id}`));
  await noPerm(attacker.hset(`${r}:${victim.id}`, 'data', '{}'));
  await noPerm(attacker.hset(`${r}:meta`, 'paused', '1'));
  await noPerm(attacker.del(`${r}:meta`));
  await noPerm(attacker.del(`${r}:events`));
  const mine = queue('reports', attacker, true);
  await noPerm(mine.pause());
  await noPerm(mine.add('node.stats', { forged: true }, { jobId: `stats.${id2}.9.9.def` }));
  await noPerm(mine.remove(victim.id!));
  // A script runs under the caller's ACL, call by call.
  await noPerm(attacker.eval(`return redis.call('DEL', KEYS[1])`, 1, `${r}:${victim.id}`));
  await noPerm(attacker.publish(CHANNEL, '{"hash":"00"}'));
  await noPerm(attacker.subscribe(CHANNEL));
  await noPerm(attacker.set('elsewhere:key', '1'));
  const reader = queue('reports', as('collector'));
  assert.equal(await reader.getJobState(victim.id!), 'waiting');
  assert.deepEqual((await reader.getJob(victim.id!))?.data, { from: 'node-2' });
  assert.equal(await reader.isPaused(), false);
});

test('the gateway subscribes to events but cannot publish them, nor touch the reports queue', async () => {
  const gw = as('gateway');
  await gw.subscribe(CHANNEL);
  const gw2 = as('gateway');
  await noPerm(gw2.publish(CHANNEL, '{"hash":"00"}'));
  await noPerm(gw2.set('cairn:reports:id', '1'));
  // Every node's queue: it enqueues the commands.
  await queue(nodeQueue('node-3'), gw2).add('admin.syncChain', {});
  // Its results reader interrupts its own blocking XREAD when a stream is added (job-events.ts).
  const reader = as('gateway');
  const id = Number(await reader.client('ID'));
  const blocked = reader.xread('BLOCK', 10_000, 'STREAMS', `cairn:${nodeQueue('node-3')}:x`, '$');
  for (let i = 0; i < 100 && Number(await gw2.client('UNBLOCK', id)) === 0; i++)
    await new Promise((r) => setTimeout(r, 10));
  assert.equal(await blocked, null, 'the blocked read was ended');
  await noPerm(as('node-1').client('UNBLOCK', id));
});

test('the collector publishes events, keeps the reports meta, and cannot touch node queues', async () => {
  const sub = as('gateway');
  const got = new Promise<string>((resolve) => sub.on('message', (_c, m) => resolve(m)));
  await sub.subscribe(CHANNEL);
  const col = as('collector');
  assert.ok((await col.publish(CHANNEL, '{"hash":"ab"}')) >= 1);
  assert.equal(await got, '{"hash":"ab"}');
  await noPerm(col.publish('other.channel', 'x'));
  assert.equal(await col.hget('cairn:reports:meta', 'opts.maxLenEvents'), String(REPORTS_EVENTS_MAX_LEN));
  await noPerm(col.set(`cairn:${nodeQueue('node-1')}:id`, '1'));
});

test('a node user cannot take memory without bound (maxmemory, no amplifying writes)', async (t) => {
  // ATK-13 finding 1, its memory half: compose had noeviction without --maxmemory, and one
  // 40-byte SETRANGE at a 64 MiB offset on the node's own key was accepted (+80 MiB).
  const node1 = as('node-1');
  const col = as('collector');
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await col.info('memory'))![1]);
  const before = await usedMemory();
  const own = `cairn:${nodeQueue('node-1')}:big`;
  const answer = await node1.setrange(own, 64 * 1024 * 1024, 'x').catch((e: Error) => e.message);
  const afterBytes = await usedMemory();
  t.diagnostic(`SETRANGE 64 MiB by node-1: ${answer}; used_memory ${before} → ${afterBytes}`);
  assert.match(String(answer), /NOPERM/);
  assert.ok(afterBytes - before < 1024 * 1024, `used_memory grew by ${afterBytes - before} bytes`);
  // The other amplifiers, on the node's own keys, and inside a script (checked call by call).
  await noPerm(node1.setbit(own, 2 ** 32 - 1, 1));
  await noPerm(node1.bitfield(own, 'SET', 'u8', 2 ** 31, 1));
  await noPerm(node1.append(own, 'x'));
  await noPerm(node1.copy(`cairn:${nodeQueue('node-1')}:id`, own));
  await noPerm(node1.eval("return redis.call('SETRANGE', KEYS[1], 67108864, 'x')", 1, own));
  // Plain writes a node's BullMQ needs stay allowed.
  assert.equal(await node1.set(own, 'x'), 'OK');
  // And Redis as a whole is bounded, refusing writes past the bound rather than evicting jobs.
  const memory = await col.info('memory');
  assert.equal(/maxmemory:(\d+)/.exec(memory)?.[1], String(256 * 1024 * 1024));
  assert.equal(/maxmemory_policy:(\S+)/.exec(memory)?.[1], 'noeviction');
});

test('no compose user may EVAL or FUNCTION: the script cache holds what Cairn SCRIPT LOADs', async () => {
  // ATK-13 finding 1: a node's EVAL that wrote a key and then looped was unkillable and stopped
  // Redis for everyone (e2e/compose-redis-scripts.test.ts); trusted users may not EVAL either,
  // so the cache holds only the BullMQ scripts they SCRIPT LOAD.
  const lib = "#!lua name=x\nredis.register_function('f', function() return 1 end)";
  for (const u of ['node-1', 'collector', 'gateway']) {
    const c = as(u);
    await noPerm(c.eval('return 1', 0));
    await noPerm(c.call('EVAL_RO', 'return 1', 0));
    await noPerm(c.call('FUNCTION', 'LOAD', lib));
    await noPerm(c.call('FCALL', 'f', 0));
  }
  await noPerm(as('node-1').script('LOAD', 'return 1'));
  await noPerm(as('node-1').script('FLUSH'));
  assert.match(String(await as('collector').script('LOAD', 'return 1')), /^[0-9a-f]{40}$/);
});
