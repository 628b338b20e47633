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
import { GatedWorker, ScheduledGate } from './scheduled-gate.ts';
import { repairSchedulers, repairSilentSchedulers } from './scheduler-watch.ts';

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

test('a scheduler whose pending iteration was deleted (definition intact) is rebuilt once it missed two periods', async (t) => {
  const conn = createRedis();
  const workerConn = createRedis();
  const attackerConn = createRedis();
  const prefix = `sl${randomBytes(4).toString('hex')}`;
  const name = 'node.12D3KooWSilenced';
  const q = new Queue(name, { connection: conn, prefix });
  const period = 1_000;
  const schedule = Object.fromEntries(SCHEDULED_JOBS.map((n) => [n, period])) as Record<ScheduledJob, number>;
  const gate = new ScheduledGate(schedule);
  const runs = new Map<string, number>();
  const worker = new GatedWorker(
    name,
    async (job) => {
      if (gate.admit(job).run) runs.set(job.name, (runs.get(job.name) ?? 0) + 1);
    },
    { connection: workerConn, prefix },
  );
  t.after(async () => {
    await worker.close();
    await q.obliterate({ force: true }).catch(() => {});
    await q.close();
    for (const c of [conn, workerConn, attackerConn]) await closeRedis(c);
  });
  const upsertedAt = new Map<ScheduledJob, number>();
  const upsert = (n: ScheduledJob) => {
    upsertedAt.set(n, Date.now());
    return q.upsertJobScheduler(n, { every: schedule[n] }, { name: n, data: {} });
  };
  const since = (n: ScheduledJob) => upsertedAt.get(n) ?? 0;
  for (const n of SCHEDULED_JOBS) await upsert(n);
  const until = async (what: string, fn: () => boolean, ms = 15_000) => {
    const end = Date.now() + ms;
    while (!fn()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  await until('stats.report to run', () => (runs.get('stats.report') ?? 0) >= 1);

  // Attack 09: ZREM + DEL of the pending iteration; the definition stays.
  const delayed = `${prefix}:${name}:delayed`;
  let killed: string | undefined;
  for (let i = 0; i < 200 && !killed; i++) {
    for (const id of await attackerConn.zrange(delayed, 0, -1))
      if (id.startsWith('repeat:stats.report:') && (await attackerConn.zrem(delayed, id)) === 1) {
        await attackerConn.del(`${prefix}:${name}:${id}`);
        killed = id;
      }
    if (!killed) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(killed, 'took the pending iteration out');
  const before = runs.get('stats.report') ?? 0;
  await new Promise((r) => setTimeout(r, 2.5 * period));
  assert.equal(runs.get('stats.report') ?? 0, before, 'the scheduler is silent');
  // The definition check sees nothing wrong: that is the gap.
  assert.deepEqual(await repairSchedulers(q, schedule, upsert), { missing: [], changed: [], unknown: [] });
  const rebuilt = await repairSilentSchedulers(q, schedule, gate, since, upsert);
  assert.ok(rebuilt.includes('stats.report'), `rebuilt ${rebuilt}`);
  await until('stats.report to run again', () => (runs.get('stats.report') ?? 0) > before);
  // Just rebuilt: not judged silent again until it misses two more periods.
  assert.ok(!(await repairSilentSchedulers(q, schedule, gate, since, upsert)).includes('stats.report'));
});
