/**
 * ATK-13 finding 1 (MEDIUM), fixed: one node's Redis user stopped the shared Redis for every
 * component with one EVAL. A Lua script that wrote one of its own keys and then looped ran
 * alone: Redis answered every other client BUSY, and SCRIPT KILL answered UNKILLABLE (only
 * SHUTDOWN NOSAVE ended it). Figures before the fix (Redis 7.0.15): the collector's PING got no
 * answer within 2 s, SCRIPT KILL by another node user → UNKILLABLE.
 *
 * Now node users may not EVAL, EVAL_RO, SCRIPT, FUNCTION or FCALL, only EVALSHA
 * (jobs/redis-acl.ts): they run what is in Redis's script cache, which the collector and the
 * gateway fill with BullMQ's scripts at start and on every reconnect (jobs/redis-scripts.ts),
 * and Cairn's connections send EVALSHA only, waiting for that preload after a Redis restart.
 * All of it on compose's own Redis arguments and ACL file (compose-redis-rig.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { BULLMQ_SCRIPTS, keepScriptsLoaded, ScriptNotLoaded } from '../jobs/redis-scripts.ts';
import { type AclRig, startComposeRedis, within } from './compose-redis-rig.ts';

let rig: AclRig;
const closers: { close(): Promise<unknown> }[] = [];
before(async () => {
  rig = await startComposeRedis();
});
after(async () => {
  await Promise.all(closers.map((c) => c.close().catch(() => {})));
  await rig?.close();
});

const nodeQueue = (n: string) => `node.${rig.ids[n]!.peerId.toString()}`;
const queue = (name: string, connection: Redis) => {
  const q = new Queue(name, { connection, prefix: 'cairn' });
  q.on('error', () => {});
  closers.push(q);
  return q;
};
/** A preload as the collector runs it; resolves on its first load, counts outcomes. */
function preload(connection: Redis) {
  const outcomes: string[] = [];
  let first: () => void = () => {};
  const loaded = new Promise<void>((r) => {
    first = r;
  });
  const stop = keepScriptsLoaded(connection, {
    counter: {
      inc: (l: { outcome: string }) => {
        outcomes.push(l.outcome);
        first();
      },
    } as never,
  });
  closers.push({ close: async () => stop() });
  return { outcomes, loaded, stop };
}

test('a node user cannot stop Redis for the collector with one EVAL', async (t) => {
  const node1 = rig.as('node-1');
  const collector = rig.as('collector');
  const other = rig.as('node-2', { enableReadyCheck: false });
  assert.equal(await collector.ping(), 'PONG');
  const own = `cairn:node.${rig.ids['node-1']!.peerId.toString()}:x`;
  // Write one own key (allowed: the node's queue), then spin: it was unkillable from there on.
  const evaled = node1
    .eval("redis.call('SET', KEYS[1], '1') while true do end", 1, own)
    .catch((e: Error) => e.message);
  await new Promise((r) => setTimeout(r, 300));
  const pong = await within(
    collector.ping().catch((e: Error) => e.message),
    2_000,
  );
  const kill = await within(
    other.script('KILL').catch((e: Error) => e.message),
    7_000,
  );
  t.diagnostic(
    `node-1's EVAL: ${String(await evaled)}; collector PING meanwhile: ${String(pong)}; SCRIPT KILL: ${String(kill)}`,
  );
  assert.match(String(await evaled), /NOPERM/);
  assert.equal(pong, 'PONG', 'the collector must still be served while a node user runs a script');
  assert.match(String(kill), /NOPERM/, 'nor may a node user kill scripts');
});

test('a node user runs only cached scripts: EVALSHA of a digest nobody loaded is NOSCRIPT', async () => {
  const node1 = rig.as('node-1');
  const own = `cairn:${nodeQueue('node-1')}:x`;
  const loop = "redis.call('SET', KEYS[1], '1') while true do end";
  const digest = createHash('sha1').update(loop).digest('hex');
  await assert.rejects(node1.evalsha(digest, 1, own), /NOSCRIPT/);
  await assert.rejects(node1.call('EVALSHA_RO', digest, 1, own), /NOSCRIPT/);
  // Nor can it put the script in the cache, or a function in the library.
  await assert.rejects(node1.script('LOAD', loop), /NOPERM/);
  await assert.rejects(
    node1.call('FUNCTION', 'LOAD', `#!lua name=l\nredis.register_function('f', function() ${loop} end)`),
    /NOPERM/,
  );
  await assert.rejects(node1.call('FCALL', 'f', 1, own), /NOPERM/);
  // And nor the trusted users (they only SCRIPT LOAD BullMQ's): the loop stays out of the cache.
  await assert.rejects(rig.as('collector').eval(loop, 1, 'cairn:reports:x'), /NOPERM/);
  await assert.rejects(rig.as('gateway').eval(loop, 1, own), /NOPERM/);
  await assert.rejects(node1.evalsha(digest, 1, own), /NOSCRIPT/);
  assert.equal(await rig.as('collector').ping(), 'PONG');
});

test("the preload's digests are the ones a BullMQ connection sends", async () => {
  const conn = rig.as('node-1');
  const q = queue(nodeQueue('node-1'), conn);
  await q.waitUntilReady();
  const defined = (conn as unknown as { scriptsSet: Record<string, { sha: string }> }).scriptsSet;
  const sent = Object.fromEntries(Object.entries(defined).map(([name, s]) => [name, s.sha]));
  const preloaded = Object.fromEntries(BULLMQ_SCRIPTS.map((s) => [s.command, s.sha]));
  assert.ok(BULLMQ_SCRIPTS.length > 50, `${BULLMQ_SCRIPTS.length} scripts`);
  assert.deepEqual(sent, preloaded);
  // Redis's own digest of each text agrees (SCRIPT LOAD answers it): checked by the preload.
  const { loaded, outcomes, stop } = preload(rig.as('gateway'));
  await loaded;
  stop(); // the next test restarts Redis with no preloader connected
  assert.deepEqual(outcomes, ['ok']);
});

test("after a Redis restart a node's jobs wait for the preload, then run; no preload: ScriptNotLoaded", async (t) => {
  await rig.restart(); // an empty script cache, no trusted component connected yet
  const impatient = rig.as('node-1', { scripts: { maxWaitMs: 300 } });
  const started = Date.now();
  const err = await queue(nodeQueue('node-1'), impatient)
    .add('admin.syncChain', {})
    .catch((e: Error) => e);
  assert.ok(err instanceof ScriptNotLoaded, String(err));
  assert.equal(err.code, 'script-not-loaded');
  assert.ok(Date.now() - started < 5_000);

  const missing: string[] = [];
  const conn = rig.as('node-1', { scripts: { onNoScript: (s) => missing.push(s) } });
  const q = queue(nodeQueue('node-1'), conn);
  const added = q.add('admin.syncChain', { n: 1 });
  assert.equal(await within(added, 1_000), 'timeout', 'the add waits while Redis lacks the script');
  assert.ok(missing.length >= 2, `NOSCRIPT answers while waiting: ${missing.length}`);
  assert.ok(missing.includes('addStandardJob'), missing.join());
  // The collector connects: its preload lets the waiting add through.
  const collector = rig.as('collector');
  const { outcomes, loaded } = preload(collector);
  await loaded;
  const job = await within(added, 5_000);
  assert.notEqual(job, 'timeout');
  t.diagnostic(`NOSCRIPT answers before the preload: ${missing.length}`);

  const ran: number[] = [];
  const worker = new Worker(nodeQueue('node-1'), async (j) => ran.push((j.data as { n: number }).n), {
    connection: rig.as('node-1'),
    prefix: 'cairn',
  });
  worker.on('error', () => {});
  closers.push(worker);
  // By the job's data: a SIGKILLed Redis may lose its last second of AOF, ids included.
  const done = new Set<number>();
  worker.on('completed', (j) => done.add((j.data as { n: number }).n));
  const completed = async (n: number, ms: number) => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
      if (done.has(n)) return true;
    return false;
  };
  assert.ok(await completed(1, 10_000), 'the worker ran the job');

  // Restarted with every component connected: the collector reloads on its reconnect, and the
  // same worker and queue carry on.
  await rig.restart();
  const again = await within(q.add('admin.syncChain', { n: 2 }), 10_000);
  assert.notEqual(again, 'timeout', 'the node could add a job after the restart');
  assert.ok(await completed(2, 15_000), 'the worker ran it');
  assert.ok(outcomes.filter((o) => o === 'ok').length >= 2, `preloads: ${outcomes.join()}`);
  t.diagnostic(`preloads: ${outcomes.join()}; jobs run: ${ran.length}`);
});
