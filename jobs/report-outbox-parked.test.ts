/**
 * A report whose job a Redis client moves where nothing runs it is still indexed (attack review
 * #13, finding 1): out of `wait` into `delayed` with a far-future due time, or straight into
 * `completed`/`failed` (LREM + ZADD, no BullMQ script). The job's state and return value are
 * whatever a Redis client wrote, so a finished job counts only with the collector's signed
 * receipt (report-receipt.ts), and a parked one goes again under a fresh id; both counted by
 * reason. Real Redis, BullMQ, collector and index DB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REPORTS_QUEUE } from './queues.ts';
import { receiptedOutboxRig, until } from './report-queue-testing.ts';

const cases = [
  { into: 'delayed', why: 'parked' },
  { into: 'completed', why: 'unreceipted' },
  { into: 'failed', why: 'unreceipted' },
] as const;

for (const { into, why } of cases)
  test(`outbox: a report job moved from wait into ${into} is sent again (${why}) and indexed`, async (t) => {
    const { rig, outbox, reissued } = await receiptedOutboxRig(t, `pk${into[0]}`);
    const { ns, db, attacker, attackerRedis: c2 } = rig;
    await attacker.pause();
    const id = outbox.push('node.stats', 'stats.n.1900.1', rig.stats(1900, 1));
    assert.ok(await outbox.drain(5_000));
    // The attack: two commands any client of this Redis may send.
    assert.equal(await c2.lrem(`${ns}:${REPORTS_QUEUE}:wait`, 0, id), 1);
    // Delayed scores are (timestamp << 12); 2^52 ms is a date ~140,000 years away.
    await c2.zadd(`${ns}:${REPORTS_QUEUE}:${into}`, into === 'delayed' ? 2 ** 52 * 4096 : Date.now(), id);
    await attacker.resume();
    assert.equal(await attacker.getJobState(id), into);
    // The outbox's delivery checks, as its timer would run them (each one ~10 s in production).
    for (let i = 0; i < 6 && (await db.nodeStatsSnapshot.count()) === 0; i++) {
      await outbox.confirm();
      await outbox.drain(5_000);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(await db.nodeStatsSnapshot.count(), 1, `reissued ${JSON.stringify(reissued)}`);
    assert.deepEqual(reissued, [`${why}:1`]);
    // The fresh job is receipted: the outbox lets it go, and sends nothing more.
    await until('confirmed', async () => {
      await outbox.confirm();
      return outbox.stats().unconfirmed === 0 && outbox.stats().pending === 0;
    });
    assert.deepEqual(reissued, [`${why}:1`]);
  });

test('outbox: a report the collector refused (receipted failure) is let go, not sent again', async (t) => {
  const { rig, outbox, reissued } = await receiptedOutboxRig(t, 'pkr');
  const { db, nodeQueue } = rig;
  // Stamped an hour ahead of the collector's clock: refused as report-from-future.
  const id = outbox.push(
    'node.stats',
    'stats.n.1901.1',
    rig.stats(1901, 1, new Date(Date.now() + 3_600_000).toISOString()),
  );
  assert.ok(await outbox.drain(5_000));
  await until('refused', async () => (await nodeQueue.getJobState(id)) === 'failed');
  await until('let go', async () => {
    await outbox.confirm();
    return outbox.stats().unconfirmed === 0;
  });
  assert.deepEqual(reissued, []);
  assert.equal(await db.nodeStatsSnapshot.count(), 0);
});
