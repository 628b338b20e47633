import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Job, Queue, QueueEvents } from 'bullmq';
import { Registry } from 'prom-client';
import { signBlock } from '../../node/chain/authoring.ts';
import type { BlockNode } from '../../node/chain/block-tree.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { createLogger } from '../../node/log.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, unmineHeader } from '../../node/testing/forge.ts';
import { type BlockEvent, TOPICS } from '../events.ts';
import type { IndexDb } from '../index-db/open.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import { createCairnPubSub } from '../pubsub.ts';
import { REPORTS_QUEUE } from '../queues.ts';
import { createRedis, redisUrl } from '../redis.ts';
import { signReport } from '../report-envelope.ts';
import { addSignedReport, REPORTER_ID, REPORTER_KEY } from '../report-testing.ts';
import { Collector, type CollectorOptions } from './collector.ts';

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
    network: testChain().chain.config,
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
  const report = (b: typeof b1) => blockAcceptedReport(REPORTER_ID, b!, chain.chain.tree.get(b!.hashHex)!);

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

  const ok = await addSignedReport(queue, 'block.accepted', `block.nodeA.${b1!.hashHex}`, report(b1));
  assert.deepEqual(await ok.waitUntilFinished(events, 10_000), { duplicate: false });
  await until('the newBlock event', async () => received.length === 1);
  assert.equal(received[0]!.hash, b1!.hashHex);

  const bad = await addSignedReport(
    queue,
    'block.accepted',
    'bad',
    { ...report(b2), signature: 'not hex' },
    { attempts: 3 },
  );
  await assert.rejects(bad.waitUntilFinished(events, 10_000), /malformed block.accepted report: signature/);
  assert.equal(await bad.getState(), 'failed');
  assert.equal(
    bad.attemptsMade <= 1 || (await queue.getJob(bad.id!))?.attemptsMade === 1,
    true,
    'not retried',
  );
  // A scheduler key on a report (the reports queue has no schedulers) changes nothing: judged at
  // once like any other. BullMQ's own Worker leaves such a job active, unjudged, until its stall check.
  const keyed = await Job.create(
    queue,
    'block.accepted',
    signReport('block.accepted', 'keyed', { ...report(b2), signature: 'not hex' }, REPORTER_KEY),
    { repeatJobKey: 'block.accepted', jobId: 'keyed' },
  );
  await assert.rejects(keyed.waitUntilFinished(events, 5_000), /malformed block.accepted report: signature/);
  assert.equal(await db.block.count(), 1);
  assert.equal(await db.report.count(), 1);

  // A worker that died (as after a long Redis outage) is replaced and the queue drains.
  await (collector as unknown as { worker: { close: (force: boolean) => Promise<void> } }).worker.close(true);
  await addSignedReport(queue, 'block.accepted', `block.nodeA.${b2!.hashHex}`, report(b2));
  await until(
    'the watchdog to bring a worker back and the report to land',
    async () => (await db.block.count()) === 2,
  );
  await it.return?.();
});

/** A counter's value for one label set, from the collector's registry. */
async function counter(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((n, v) => n + v.value, 0);
}

async function startCollector(
  provider: (typeof TEST_PROVIDERS)[number],
  extra: Partial<CollectorOptions> = {},
) {
  const ns = `ct${randomBytes(4).toString('hex')}`;
  const index = await createTestIndexDb(provider);
  const bus = createCairnPubSub(redisUrl(), ns);
  const registry = new Registry();
  const chain = testChain();
  const collector = new Collector({
    db: index.db,
    pubsub: bus.pubsub,
    redisUrl: redisUrl(),
    namespace: ns,
    log: createLogger('silent'),
    registry,
    network: chain.chain.config,
    now: () => TEST_NOW,
    ...extra,
  });
  const connection = createRedis();
  const queue = new Queue(REPORTS_QUEUE, { connection, prefix: ns });
  const eventsConnection = createRedis();
  const events = new QueueEvents(REPORTS_QUEUE, { connection: eventsConnection, prefix: ns });
  await events.waitUntilReady();
  return {
    ...index,
    chain,
    collector,
    registry,
    queue,
    events,
    close: async () => {
      await collector.close();
      await queue.obliterate({ force: true }).catch(() => {});
      await Promise.all([queue.close(), events.close()]);
      connection.disconnect();
      eventsConnection.disconnect();
      await bus.close();
      await index.drop();
    },
  };
}

const canonicalRows = async (db: IndexDb) =>
  (await db.block.findMany({ orderBy: { hash: 'asc' } })).map((b) => [b.hash, b.canonical, b.totalWork]);

for (const provider of TEST_PROVIDERS) {
  test(`${provider} collector: forged block.accepted reports fail unretried with their code, are counted, and move no canonical flag`, async (t) => {
    const c = await startCollector(provider);
    t.after(c.close);
    const { chain: tc, queue, events, db } = c;
    const main = forgeBranch(tc.chain, tc.chain.tip, [{}, {}, {}]);
    for (const b of main) await tc.submit(b);
    const fork = forgeBranch(tc.chain, tc.chain.tree.get(main[0]!.hashHex)!, [{ miner: testKey(2) }]);
    const genuine = (b: SealedBlock) => blockAcceptedReport(REPORTER_ID, b, tc.chain.tree.get(b.hashHex)!);
    for (const b of main.slice(0, 2)) {
      const job = await addSignedReport(queue, 'block.accepted', `block.nodeA.${b.hashHex}`, genuine(b));
      await job.waitUntilFinished(events, 10_000);
    }
    const before = await canonicalRows(db);
    const reports = await db.report.count();
    const work2 = tc.chain.tree.get(main[1]!.hashHex)!.chainWork;
    const forkWork = tc.chain.tree.get(main[0]!.hashHex)!.chainWork + workForTarget(fork[0]!.header.target);
    const b3 = main[2]!;
    const forged: [string, object][] = [
      // A genuine fork block claiming more work than the whole main chain.
      [
        'wrong-total-work',
        {
          ...blockAcceptedReport(REPORTER_ID, fork[0]!, { chainWork: forkWork } as BlockNode),
          totalWork: (work2 * 100n).toString(),
        },
      ],
      ['bad-hash', { ...genuine(b3), hash: fork[0]!.hashHex }],
      [
        'insufficient-work',
        blockAcceptedReport(
          REPORTER_ID,
          signBlock(unmineHeader(b3.header), [], testKey(0)),
          tc.chain.tree.get(b3.hashHex)!,
        ),
      ],
      ['bad-block-signature', { ...genuine(b3), signature: toHex(fork[0]!.signature) }],
    ];
    for (const [code, report] of forged) {
      const job = await addSignedReport(queue, 'block.accepted', `forged.${code}`, report, { attempts: 3 });
      await assert.rejects(
        job.waitUntilFinished(events, 10_000),
        new RegExp(`^Error: ${code}|${code}:`),
        code,
      );
      assert.deepEqual(await canonicalRows(db), before, `${code}: the index is unchanged`);
      const state = await queue.getJob(job.id!);
      assert.equal(state?.attemptsMade, 1, `${code}: not retried`);
    }
    assert.equal(await db.report.count(), reports, 'no forged report is recorded as processed');
    for (const [code] of forged)
      assert.ok(
        (await counter(c.registry, 'cairn_collector_refused_reports_total', { reason: code })) >= 1,
        `${code} counted`,
      );
    assert.equal(await counter(c.registry, 'cairn_collector_refused_reports_total', {}), forged.length);
  });

  test(`${provider} collector: a child reported before its parent is held, then both are canonical`, async (t) => {
    const c = await startCollector(provider);
    t.after(c.close);
    const { chain: tc, queue, events, db } = c;
    const main = forgeBranch(tc.chain, tc.chain.tip, [{}, {}, {}]);
    for (const b of main) await tc.submit(b);
    const genuine = (b: SealedBlock) => blockAcceptedReport(REPORTER_ID, b, tc.chain.tree.get(b.hashHex)!);
    const first = await addSignedReport(queue, 'block.accepted', 'b1', genuine(main[0]!));
    await first.waitUntilFinished(events, 10_000);
    // A retry of b3 overtakes b2 (as after a failed attempt, or from another node's outbox).
    // Reported long ago (as after an outage): held with a 25 s delay, which b2's indexing cuts short.
    await addSignedReport(queue, 'block.accepted', 'b3', genuine(main[2]!), {
      timestamp: Date.now() - 100_000,
    });
    const held = () =>
      counter(c.registry, 'cairn_collector_held_reports_total', { reason: 'unknown-parent' });
    await until('b3 to be judged', async () => (await held()) >= 1 || (await db.block.count()) === 2);
    await addSignedReport(queue, 'block.accepted', 'b2', genuine(main[1]!));
    await until('all three blocks', async () => (await db.block.count()) === 3, 10_000);
    assert.deepEqual(
      (await db.block.findMany({ orderBy: { height: 'asc' } })).map((b) => [b.height, b.canonical]),
      [
        [1, true],
        [2, true],
        [3, true],
      ],
    );
    assert.ok((await held()) >= 1, 'the child was held, not indexed on trust');
    // The held passes spent no attempt: the only one counted is the one that indexed it.
    assert.equal((await queue.getJob('b3'))?.attemptsMade, 1);
  });
}
