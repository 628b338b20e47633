/**
 * queue-watch.ts on a node's own queue (the node's watchdog calls it every 10 s): an events stream
 * set to the largest id and a paused queue stop every job (attacks 01 and 02 of the issue 13
 * review); one check undoes both, counts them, and leaves a healthy queue alone. Real Redis and
 * BullMQ (the collector's side is in collector/queue-watch.test.ts).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Registry } from 'prom-client';
import { createLogger } from '../node/log.ts';
import { queueRepairsCounter } from './queue-repairs.ts';
import { repairQueue } from './queue-watch.ts';
import { nodeQueueName } from './queues.ts';
import { closeRedis, createRedis } from './redis.ts';

const MAX_ID = '18446744073709551615-18446744073709551615';

test('node queue: an exhausted events stream is deleted and a pause undone; a healthy queue is left alone', async (t) => {
  const prefix = `nq${randomBytes(4).toString('hex')}`;
  const name = nodeQueueName('12D3KooWqueueWatch');
  const conns = [createRedis(), createRedis(), createRedis(), createRedis()] as const;
  const [own, attackerConn, workerConn, eventsConn] = conns;
  const queue = new Queue(name, { connection: own, prefix });
  const attacker = new Queue(name, { connection: attackerConn, prefix });
  const events = new QueueEvents(name, { connection: eventsConn, prefix });
  let ran = 0;
  const worker = new Worker(name, async () => ++ran, { connection: workerConn, prefix });
  const registry = new Registry();
  const repairs = queueRepairsCounter(registry);
  const warned: string[] = [];
  const log = createLogger('silent');
  const watch = {
    queue,
    redis: own,
    eventsKey: `${prefix}:${name}:events`,
    label: 'node' as const,
    repairs,
    log: { warn: (_o: unknown, msg?: string) => void warned.push(String(msg)) } as unknown as typeof log,
  };
  t.after(async () => {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await Promise.all([queue.close(), attacker.close(), events.close()]);
    for (const c of conns) await closeRedis(c);
  });
  await events.waitUntilReady();
  const first = await queue.add('admin.syncChain', {});
  assert.equal(await first.waitUntilFinished(events, 10_000), 1);
  assert.deepEqual(await repairQueue(watch), [], 'a healthy queue: nothing to repair');

  await attackerConn.xadd(watch.eventsKey, MAX_ID, 'event', 'poison');
  await attacker.pause().catch(() => {}); // Its own XADD fails now: pause by hand, as a Redis client can.
  await attackerConn.hset(`${prefix}:${name}:meta`, 'paused', 1);
  assert.equal(await queue.isPaused(), true);
  await assert.rejects(queue.add('admin.syncChain', {}), /exhausted the last possible ID/i);

  assert.deepEqual(await repairQueue(watch), ['events-exhausted', 'paused']);
  assert.equal(await queue.isPaused(), false);
  assert.equal(warned.length, 2);
  const value = async (kind: string) =>
    (await repairs.get()).values.find((v) => v.labels.queue === 'node' && v.labels.kind === kind)?.value;
  assert.equal(await value('events-exhausted'), 1);
  assert.equal(await value('paused'), 1);
  // Jobs run again (a fresh QueueEvents: the old one's last id was the poisoned one).
  const events2Conn = createRedis();
  const events2 = new QueueEvents(name, { connection: events2Conn, prefix });
  t.after(async () => {
    await events2.close();
    await closeRedis(events2Conn);
  });
  await events2.waitUntilReady();
  const again = await queue.add('admin.syncChain', {}, { jobId: 'again' });
  assert.equal(await again.waitUntilFinished(events2, 10_000), 2);
  assert.deepEqual(await repairQueue(watch), [], 'nothing more to repair');
});
