/**
 * A report's job id cannot be taken from the node (attack review of issue 13): a Redis client
 * that creates a junk job under the id the node's next report will use gets it failed by the
 * collector, and BullMQ ignores the node's add as a duplicate. The outbox must not count that
 * failure as its report's delivery: ids carry a hash of the content (not guessable ahead), and a
 * processed job that is not the outbox's own sends the report again under a fresh id. Real Redis,
 * BullMQ, collector and index DB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReportOutbox, reportJobId } from './report-outbox.ts';
import { reportQueueRig, until } from './report-queue-testing.ts';
import { REPORTER_KEY } from './report-testing.ts';

test('outbox: a report whose id a Redis client squatted is sent again under a fresh id and indexed', async (t) => {
  const rig = await reportQueueRig('sq');
  const { db, nodeQueue, attacker, log } = rig;
  rig.startCollector();
  const outbox = new ReportOutbox(nodeQueue, { log, key: REPORTER_KEY, confirmMs: 60_000 });
  t.after(async () => {
    outbox.close();
    await rig.close();
  });
  const at = new Date().toISOString();
  const stats = (seq: number) => rig.stats(1700, seq, at);
  outbox.push('node.stats', 'stats.n.1700.1', stats(1));
  await until('report 1 indexed', async () => (await db.nodeStatsSnapshot.count()) === 1);
  // The squatter knows everything the next reports will say (the worst case: block reports are
  // deterministic), so it can compute their ids, content hash and all.
  for (let s = 2; s <= 5; s++)
    await attacker.add('junk', {}, { jobId: reportJobId(`stats.n.1700.${s}`, stats(s)) });
  await until('squatters judged', async () => (await attacker.getFailedCount()) === 4);
  const ids = [2, 3, 4, 5].map((s) => outbox.push('node.stats', `stats.n.1700.${s}`, stats(s)));
  await outbox.drain(5_000);
  await outbox.confirm();
  // Every squatted report went again under a fresh id, and the collector indexed it.
  await until('every report indexed', async () => (await db.nodeStatsSnapshot.count()) === 5);
  await until('all confirmed', async () => {
    await outbox.confirm();
    return outbox.stats().unconfirmed === 0 && outbox.stats().pending === 0;
  });
  const reports = await db.report.findMany({ where: { kind: 'node.stats' } });
  assert.equal(reports.length, 5);
  for (const id of ids) {
    assert.ok(!reports.some((r) => r.id === id), 'the squatted id is not the indexed one');
    assert.ok(
      reports.some((r) => r.id.startsWith(`${id}.r`)),
      `${id} indexed under a fresh suffix`,
    );
  }
});
