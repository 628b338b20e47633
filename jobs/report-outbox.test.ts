/**
 * Issue 13 item 3: the node's outbox never drops a report the collector has not processed —
 * not while Redis is away (however many pile up), and not when a Redis without persistence
 * restarts and loses jobs that were sent but not yet processed. A private redis-server, so the
 * test can stop and restart it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { portOrFree } from '../e2e/cluster/service.ts';
import { redisProcess } from '../e2e/cluster/service-process.ts';
import { createLogger } from '../node/log.ts';
import type { FlRoundReport } from './payloads.ts';
import { REPORTS_QUEUE } from './queues.ts';
import { ReportOutbox } from './report-outbox.ts';
import { REPORTER_KEY } from './report-testing.ts';

const until = async (what: string, fn: () => Promise<boolean> | boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const round = (i: number): FlRoundReport => ({
  nodeId: 'n1',
  id: `round-${i}`,
  round: i,
  status: 'running',
  participants: [],
  leftOut: [],
  dp: {},
  modelHash: null,
  error: null,
  startedAt: new Date().toISOString(),
  finishedAt: null,
});

test('outbox: reports queued while Redis is away and reports a restarted Redis lost are all delivered', {
  timeout: 90_000,
}, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-outbox-'));
  const port = await portOrFree();
  const redis = redisProcess(path.join(dir, 'redis.log'), port, { track: true, dir });
  const url = `redis://127.0.0.1:${port}`;
  await redis.start();
  const connection = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: () => 200 });
  connection.on('error', () => {});
  const queue = new Queue(REPORTS_QUEUE, { connection, prefix: 'outbox' });
  queue.on('error', () => {});
  const outbox = new ReportOutbox(queue, {
    log: createLogger('silent'),
    confirmMs: 200,
    addTimeoutMs: 500,
    key: REPORTER_KEY,
  });
  t.after(async () => {
    outbox.close();
    await queue.close().catch(() => {});
    connection.disconnect();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });

  await queue.waitUntilReady();
  // Redis goes away: 30 reports pile up, none is dropped.
  await redis.stop();
  const N = 30;
  const ids = Array.from({ length: N }, (_, i) => outbox.push('fl.round', `r.${i}`, round(i)));
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(outbox.stats().pending, N);

  await redis.start();
  await until('the backlog to be sent', () => outbox.stats().pending === 0);
  assert.equal(await queue.count(), N);

  // Redis restarts without persistence before anyone processed them: every job is gone.
  await redis.stop();
  await redis.start();
  await until('Redis to answer again', async () => (await connection.ping().catch(() => '')) === 'PONG');
  // The outbox notices by itself (the node's reconnect replay is a second line of defence).
  await until('the lost reports to be sent again', async () => (await queue.count()) === N);

  // Processed ones are confirmed and forgotten: the outbox holds only what is undelivered.
  const processed = new Set<string>();
  const wc = new Redis(url, { maxRetriesPerRequest: null });
  const worker = new Worker(
    REPORTS_QUEUE,
    async (job) => {
      processed.add(job.id!);
    },
    { connection: wc, prefix: 'outbox' },
  );
  await until('every report processed', () => processed.size === N);
  await worker.close();
  wc.disconnect();
  await until('the outbox to forget delivered reports', () => outbox.stats().unconfirmed === 0);
  assert.deepEqual(outbox.stats(), { pending: 0, unconfirmed: 0 });
  assert.deepEqual([...processed].sort(), [...ids].sort());
  assert.ok(
    ids.every((id, i) => id.startsWith(`r.${i}.`)),
    'the caller id, then the content hash',
  );
});
