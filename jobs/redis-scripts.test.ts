/**
 * Cairn's connections run BullMQ's scripts by EVALSHA only (redis-scripts.ts), so a Redis user
 * denied EVAL (a node's, redis-acl.ts) still runs BullMQ. Here a private redis-server with no
 * ACL (the demo's and tests' case): a connection that may SCRIPT LOAD loads a missing script
 * itself, and Redis's own command counts show no EVAL ever went out. The ACL'd case, waiting
 * for a trusted preload, is e2e/compose-redis-scripts.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { portOrFree } from '../e2e/cluster/service.ts';
import { redisProcess } from '../e2e/cluster/service-process.ts';
import { createRedis } from './redis.ts';
import { BULLMQ_SCRIPTS, loadScripts } from './redis-scripts.ts';

/** `cmdstat_<name>` calls from INFO commandstats. */
async function calls(info: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/^cmdstat_([a-z_|]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

test('BullMQ over createRedis sends EVALSHA only, loading a missing script itself when it may', {
  timeout: 60_000,
}, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-evalsha-'));
  const port = await portOrFree();
  const redis = redisProcess(path.join(dir, 'redis.log'), port, { track: true, dir });
  await redis.start();
  const url = `redis://127.0.0.1:${port}`;
  const missing: string[] = [];
  const conn = createRedis(url, {}, { onNoScript: (s) => missing.push(s) });
  const admin = createRedis(url);
  const queue = new Queue('q', { connection: conn, prefix: 't' });
  const done: unknown[] = [];
  const worker = new Worker('q', async (j) => done.push(j.data), { connection: conn, prefix: 't' });
  t.after(async () => {
    await worker.close().catch(() => {});
    await queue.close().catch(() => {});
    conn.disconnect();
    admin.disconnect();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  await queue.add('a', { n: 1 });
  for (let i = 0; i < 100 && done.length < 1; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(done, [{ n: 1 }]);
  assert.ok(missing.includes('addStandardJob'), `NOSCRIPT answers: ${missing.join()}`);
  // An emptied cache (as after a restart): loaded again, by SCRIPT LOAD, not EVAL.
  assert.equal(await admin.script('FLUSH'), 'OK');
  await queue.add('a', { n: 2 });
  for (let i = 0; i < 100 && done.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(done, [{ n: 1 }, { n: 2 }]);
  const stats = await calls(await admin.info('commandstats'));
  t.diagnostic(
    `evalsha ${stats.evalsha}, script|load ${stats['script|load']}, eval ${stats.eval ?? 0}; NOSCRIPT ${missing.length}`,
  );
  assert.equal(stats.eval ?? 0, 0, 'no EVAL went out');
  assert.ok((stats.evalsha ?? 0) > 0);
  assert.ok((stats['script|load'] ?? 0) >= 2);

  // The trusted side's preload: every BullMQ script, each digest checked against SCRIPT LOAD's.
  assert.equal(await loadScripts(admin), BULLMQ_SCRIPTS.length);
  const exists = (await admin.script('EXISTS', ...BULLMQ_SCRIPTS.map((s) => s.sha))) as number[];
  assert.deepEqual(new Set(exists), new Set([1]));
});
