/**
 * The collector's watchdog undoes what one Redis command does to the reports queue (attacks 01
 * and 02 of the issue 13 review): a paused queue is resumed, an events stream whose last id was
 * set to the largest possible (every BullMQ script then fails, no node can add a report) is
 * deleted. Each is counted in cairn_queue_repairs_total. Real Redis, BullMQ, outbox, collector
 * and index DB.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../../node/log.ts';
import { REPORTS_EVENTS_MAX_LEN, REPORTS_QUEUE } from '../queues.ts';
import { ReportOutbox } from '../report-outbox.ts';
import { reportQueueRig, until } from '../report-queue-testing.ts';
import { REPORTER_KEY } from '../report-testing.ts';

const MAX_ID = '18446744073709551615-18446744073709551615';

test('collector watchdog: an exhausted events stream is deleted and a paused reports queue resumed; reports flow again', async (t) => {
  const rig = await reportQueueRig('qw', createLogger((process.env.TEST_LOG as 'debug') ?? 'silent'));
  const { ns, db, nodeQueue, attacker, attackerRedis: c2, registry, log } = rig;
  const eventsKey = `${ns}:${REPORTS_QUEUE}:events`;
  // The attack comes first: an outbox add and the collector's worker both fail from here on.
  await c2.xadd(eventsKey, MAX_ID, 'event', 'poison');
  await assert.rejects(nodeQueue.add('node.stats', {}), /exhausted the last possible ID/i);
  rig.startCollector({ watchdogMs: 300 });
  const outbox = new ReportOutbox(nodeQueue, { log, key: REPORTER_KEY, confirmMs: 60_000 });
  t.after(async () => {
    outbox.close();
    await rig.close();
  });
  const repairs = async (kind: string) =>
    (await registry.getSingleMetric('cairn_queue_repairs_total')!.get()).values.find(
      (v) => v.labels.queue === 'reports' && v.labels.kind === kind,
    )?.value ?? 0;
  const at = new Date().toISOString();
  const stats = (seq: number) => rig.stats(1900, seq, at);

  outbox.push('node.stats', 'stats.n.1900.1', stats(1));
  // A failed add is not rolled back: BullMQ's script wrote the job's hash before its XADD failed,
  // so the retry under that id is ignored and the report is stranded, in no state. The outbox's
  // delivery check (every 10 s in a node) sends it under a new id (report-outbox.ts).
  await until('the report indexed once the stream is deleted', async () => {
    await outbox.confirm();
    return (await db.nodeStatsSnapshot.count()) === 1;
  });
  assert.equal(await repairs('events-exhausted'), 1);
  const last = (await c2.xinfo('STREAM', eventsKey)) as unknown[];
  assert.notEqual(last[last.indexOf('last-generated-id') + 1], MAX_ID, 'a fresh stream');

  // Attack 01: a paused reports queue (one HSET on its meta): the collector takes nothing.
  await attacker.pause();
  outbox.push('node.stats', 'stats.n.1900.2', stats(2));
  await until(
    'the report indexed once the queue is resumed',
    async () => (await db.nodeStatsSnapshot.count()) === 2,
  );
  assert.equal(await attacker.isPaused(), false);
  assert.equal(await repairs('paused'), 1);
  // A healthy queue is left alone: nothing more repaired over a few watchdog rounds.
  await new Promise((r) => setTimeout(r, 1_200));
  assert.equal(await repairs('events-exhausted'), 1);
  assert.equal(await repairs('paused'), 1);
});

test('collector watchdog: a reports meta without its events bound is restored (node users may not write it)', async (t) => {
  const rig = await reportQueueRig('qm', createLogger('silent'));
  const { ns, attackerRedis: c2, registry } = rig;
  const metaKey = `${ns}:${REPORTS_QUEUE}:meta`;
  rig.startCollector({ watchdogMs: 300 });
  t.after(() => rig.close());
  const restored = async () =>
    (await registry.getSingleMetric('cairn_queue_repairs_total')!.get()).values.find(
      (v) => v.labels.queue === 'reports' && v.labels.kind === 'meta-restored',
    )?.value ?? 0;
  // Every Queue writes the meta once, when it connects: all of them have done so before the HDEL.
  await Promise.all([rig.nodeQueue.getVersion(), rig.attacker.getVersion()]);
  await until(
    'the collector wrote the meta',
    async () => (await c2.hget(metaKey, 'opts.maxLenEvents')) !== null,
  );
  await new Promise((r) => setTimeout(r, 600)); // Two watchdog rounds: the collector's Queue is up.
  // What a Redis that lost its data (or a client's HDEL) leaves: every BullMQ add would HSET the
  // field, which compose's node users are refused (jobs/redis-acl.ts).
  await c2.hdel(metaKey, 'opts.maxLenEvents');
  await until(
    'the bound restored',
    async () => (await c2.hget(metaKey, 'opts.maxLenEvents')) === String(REPORTS_EVENTS_MAX_LEN),
  );
  assert.equal(await restored(), 1);
  await new Promise((r) => setTimeout(r, 900));
  assert.equal(await restored(), 1, 'a meta that has it is left alone');
});
