/**
 * The node watchdog's scheduler check on real Redis and a real BullMQ queue. Attack review of
 * issue 13: a Redis client swapped `mempool.sync` for a scheduler of another name; the watchdog
 * counted four schedulers and did nothing, so mempool reconciliation stopped.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { SCHEDULED_JOBS, type ScheduledJob } from './queues.ts';
import { closeRedis, createRedis } from './redis.ts';
import { repairSchedulers } from './scheduler-watch.ts';

const SCHEDULE: Record<ScheduledJob, number> = {
  'mempool.sync': 15_000,
  'chain.sync': 30_000,
  'stats.report': 60_000,
  'peers.refresh': 60_000,
};

test('swapped, stretched, renamed and foreign schedulers are put back as the node made them', async (t) => {
  const conn = createRedis();
  const q = new Queue('node.12D3KooWVictim', {
    connection: conn,
    prefix: `sw${randomBytes(4).toString('hex')}`,
  });
  t.after(async () => {
    await q.obliterate({ force: true }).catch(() => {});
    await q.close();
    await closeRedis(conn);
  });
  const upsert = (name: ScheduledJob) =>
    q.upsertJobScheduler(name, { every: SCHEDULE[name] }, { name, data: {} });
  for (const name of SCHEDULED_JOBS) await upsert(name);
  assert.deepEqual(await repairSchedulers(q, SCHEDULE, upsert), { missing: [], changed: [], unknown: [] });

  // The attacker: mempool.sync swapped for another name (count stays 4), chain.sync stretched to
  // an hour, stats.report's template renamed (its jobs would be refused as unscheduled), plus one.
  await q.removeJobScheduler('mempool.sync');
  await q.upsertJobScheduler('x', { every: 3_600_000 }, { name: 'x', data: {} });
  await q.upsertJobScheduler('chain.sync', { every: 3_600_000 }, { name: 'chain.sync', data: {} });
  await q.upsertJobScheduler('stats.report', { every: 60_000 }, { name: 'other', data: {} });
  assert.equal(await q.getJobSchedulersCount(), 4, 'the old count check saw nothing wrong');

  const drift = await repairSchedulers(q, SCHEDULE, upsert);
  assert.deepEqual(drift, {
    missing: ['mempool.sync'],
    changed: ['chain.sync', 'stats.report'],
    unknown: ['x'],
  });
  const now = Object.fromEntries((await q.getJobSchedulers(0, -1)).map((s) => [s.key, [s.name, s.every]]));
  assert.deepEqual(now, Object.fromEntries(SCHEDULED_JOBS.map((n) => [n, [n, SCHEDULE[n]]])));
  assert.deepEqual(await repairSchedulers(q, SCHEDULE, upsert), { missing: [], changed: [], unknown: [] });
});
