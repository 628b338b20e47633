import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue, QueueEvents } from 'bullmq';
import { Registry } from 'prom-client';
import { createLogger } from '../../node/log.ts';
import { forgeBranch, testChain } from '../../node/testing/forge.ts';
import { type BlockEvent, TOPICS } from '../events.ts';
import { createTestIndexDb } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import { createCairnPubSub } from '../pubsub.ts';
import { REPORTS_QUEUE } from '../queues.ts';
import { createRedis, redisUrl } from '../redis.ts';
import { Collector } from './collector.ts';

const until = async (what: string, fn: () => Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('collector: writes a report and publishes its event; refuses a malformed one without touching the DB; the watchdog replaces a dead worker', async (t) => {
  const ns = `ct${randomBytes(4).toString('hex')}`;
  const { db, drop } = await createTestIndexDb('sqlite');
  const bus = createCairnPubSub(redisUrl(), ns);
  const collector = new Collector({
    db,
    pubsub: bus.pubsub,
    redisUrl: redisUrl(),
    namespace: ns,
    log: createLogger('silent'),
    registry: new Registry(),
    watchdogMs: 200,
  });
  const connection = createRedis();
  const queue = new Queue(REPORTS_QUEUE, { connection, prefix: ns });
  const eventsConnection = createRedis();
  const events = new QueueEvents(REPORTS_QUEUE, { connection: eventsConnection, prefix: ns });
  t.after(async () => {
    await collector.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await Promise.all([queue.close(), events.close()]);
    connection.disconnect();
    eventsConnection.disconnect();
    await bus.close();
    await drop();
  });
  await events.waitUntilReady();
  const chain = testChain();
  const [b1, b2] = forgeBranch(chain.chain, chain.chain.tip, [{}, {}]);
  for (const b of [b1!, b2!]) await chain.submit(b);
  const report = (b: typeof b1) => blockAcceptedReport('nodeA', b!, chain.chain.tree.get(b!.hashHex)!);

  const received: BlockEvent[] = [];
  const it = bus.pubsub.subscribe(TOPICS.newBlock)[Symbol.asyncIterator]();
  void (async () => {
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      received.push(r.value);
    }
  })();
  await new Promise((r) => setTimeout(r, 200));

  const ok = await queue.add('block.accepted', report(b1), { jobId: `block.nodeA.${b1!.hashHex}` });
  assert.deepEqual(await ok.waitUntilFinished(events, 10_000), { duplicate: false });
  await until('the newBlock event', async () => received.length === 1);
  assert.equal(received[0]!.hash, b1!.hashHex);

  const bad = await queue.add('block.accepted', { ...report(b2), signature: 'not hex' }, { attempts: 3 });
  await assert.rejects(bad.waitUntilFinished(events, 10_000), /malformed block.accepted report: signature/);
  assert.equal(await bad.getState(), 'failed');
  assert.equal(
    bad.attemptsMade <= 1 || (await queue.getJob(bad.id!))?.attemptsMade === 1,
    true,
    'not retried',
  );
  assert.equal(await db.block.count(), 1);
  assert.equal(await db.report.count(), 1);

  // A worker that died (as after a long Redis outage) is replaced and the queue drains.
  await (collector as unknown as { worker: { close: (force: boolean) => Promise<void> } }).worker.close(true);
  await queue.add('block.accepted', report(b2), { jobId: `block.nodeA.${b2!.hashHex}` });
  await until(
    'the watchdog to bring a worker back and the report to land',
    async () => (await db.block.count()) === 2,
  );
  await it.return?.();
});
