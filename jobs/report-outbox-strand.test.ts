/**
 * A report whose job a Redis client took out of `wait` (LREM: the job's hash stays, in no state)
 * is not stuck (attack 03 of the issue 13 review). BullMQ ignores an add for an id whose hash
 * exists, so re-sending under the same id never reaches the collector, and the collector then
 * holds every later block as unknown-parent. The outbox must send it again under a fresh id.
 * Real Redis, BullMQ, collector and index DB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REPORTS_QUEUE } from './queues.ts';
import { ReportOutbox } from './report-outbox.ts';
import { reportQueueRig, until } from './report-queue-testing.ts';
import { REPORTER_KEY } from './report-testing.ts';

test('outbox: a report job taken out of wait (its hash kept) is sent again under a new id and indexed', async (t) => {
  const rig = await reportQueueRig('st');
  const { ns, db, nodeQueue, attacker, attackerRedis: c2, log } = rig;
  rig.startCollector();
  const reissued: string[] = [];
  const outbox = new ReportOutbox(nodeQueue, {
    log,
    key: REPORTER_KEY,
    confirmMs: 60_000,
    onReissued: (why, n) => reissued.push(`${why}:${n}`),
  });
  t.after(async () => {
    outbox.close();
    await rig.close();
  });
  const stats = rig.stats(1800, 1);
  // The attack: hold the queue, take the report's job out of `wait` (its hash stays), let go.
  await attacker.pause();
  const id = outbox.push('node.stats', 'stats.n.1800.1', stats);
  assert.ok(await outbox.drain(5_000));
  assert.equal(await c2.lrem(`${ns}:${REPORTS_QUEUE}:wait`, 0, id), 1);
  await attacker.resume();
  assert.equal(await attacker.getJobState(id), 'unknown');
  assert.ok(await attacker.getJob(id), 'the hash is still there');
  // Every delivery check re-sent it under the same id before: the add was ignored each time.
  for (let i = 0; i < 3 && (await db.nodeStatsSnapshot.count()) === 0; i++) {
    await outbox.confirm();
    await outbox.drain(5_000);
    await new Promise((r) => setTimeout(r, 500));
  }
  await until('the stranded report indexed', async () => (await db.nodeStatsSnapshot.count()) === 1);
  assert.deepEqual(reissued, ['stranded:1']);
  const reports = await db.report.findMany({ where: { kind: 'node.stats' } });
  assert.equal(reports.length, 1);
  assert.ok(reports[0]!.id.startsWith(`${id}.r`), `indexed under a fresh id, not ${reports[0]!.id}`);
  await until('confirmed', async () => {
    await outbox.confirm();
    return outbox.stats().unconfirmed === 0 && outbox.stats().pending === 0;
  });
});
