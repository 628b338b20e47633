/**
 * Issue 13 item 3: while the index DB (PostgreSQL) refuses connections the collector pauses its
 * worker instead of burning the reports' attempts, and when the DB is back it resumes and loses
 * nothing: every report sent before, during and after the outage is a row. The outage is real
 * (the test's own database stops accepting connections and its backends are terminated; the
 * machine's PostgreSQL server keeps running for everyone else), and so are Redis and BullMQ.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import pg from 'pg';
import { Registry } from 'prom-client';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdHex } from '../../node/chain/network-config.ts';
import { createLogger } from '../../node/log.ts';
import { forgeBranch, TEST_NOW, testChain, testNetwork } from '../../node/testing/forge.ts';
import { createTestIndexDb, TEST_POSTGRES_URL } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import type { NodeStatsReport } from '../payloads.ts';
import { createCairnPubSub } from '../pubsub.ts';
import { REPORTS_QUEUE } from '../queues.ts';
import { createRedis, redisUrl } from '../redis.ts';
import { addSignedReport, REPORTER_ID } from '../report-testing.ts';
import { Collector } from './collector.ts';

/** Stats reports name the network the collector indexes (others are refused). */
const TEST_CHAIN_ID = chainIdHex(testNetwork());
const TEST_GENESIS = genesisBlock(testNetwork()).hashHex;

/** How long the DB stays away (the cluster test's 60 s is the deployment figure; 8 s shows the same). */
const OUTAGE_MS = Number(process.env.CAIRN_TEST_DB_OUTAGE_MS ?? 8_000);

const until = async (what: string, fn: () => Promise<boolean>, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const stats = (seq: number): NodeStatsReport => ({
  nodeId: REPORTER_ID,
  boot: 1,
  seq,
  at: new Date().toISOString(),
  role: 'submind',
  capabilities: ['mine'],
  addrs: [],
  height: 0,
  headHash: 'ab'.repeat(32),
  totalWork: '1',
  target: '1',
  peers: [],
  mempoolSize: 0,
  hashRate: 0,
  mining: true,
  chainId: TEST_CHAIN_ID,
  genesisHash: TEST_GENESIS,
  networkConfig: '{}',
});

/** Makes the test's database refuse connections and drops those it has, or lets it back. */
async function setReachable(dbName: string, reachable: boolean): Promise<void> {
  const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS ${reachable}`);
    if (!reachable)
      await admin.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
        [dbName],
      );
  } finally {
    await admin.end();
  }
}

async function gauge(registry: Registry, name: string): Promise<number> {
  return (await registry.getSingleMetric(name)?.get())?.values[0]?.value ?? Number.NaN;
}

test('postgresql unreachable: the collector pauses without spending attempts, resumes, and loses no report', {
  timeout: 120_000,
}, async (t) => {
  const ns = `co${randomBytes(4).toString('hex')}`;
  const index = await createTestIndexDb('postgresql');
  const dbName = new URL(index.location.url).pathname.slice(1);
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
    dbProbeMs: 250,
  });
  const connection = createRedis();
  const queue = new Queue(REPORTS_QUEUE, { connection, prefix: ns });
  t.after(async () => {
    await setReachable(dbName, true).catch(() => {});
    await collector.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    connection.disconnect();
    await bus.close();
    await index.drop();
  });
  // What a node's outbox does: a deterministic id and a few attempts with backoff.
  const opts = { attempts: 3, backoff: { type: 'exponential', delay: 200 } };
  const blocks = forgeBranch(chain.chain, chain.chain.tip, [{}, {}, {}, {}, {}, {}]);
  for (const b of blocks) await chain.submit(b);
  const blockReport = (i: number) =>
    addSignedReport(
      queue,
      'block.accepted',
      `block.${i}`,
      blockAcceptedReport(REPORTER_ID, blocks[i]!, chain.chain.tree.get(blocks[i]!.hashHex)!),
      opts,
    );
  let seq = 0;
  const statsReport = () => {
    seq++;
    return addSignedReport(queue, 'node.stats', `stats.${seq}`, stats(seq), opts);
  };

  for (let i = 0; i < 2; i++) await blockReport(i);
  for (let i = 0; i < 3; i++) await statsReport();
  await until('the first reports', async () => (await index.db.report.count()) === 5);

  await setReachable(dbName, false);
  // Reports keep coming while the DB is away, blocks and stats alike.
  for (let i = 2; i < 6; i++) await blockReport(i);
  for (let i = 0; i < 10; i++) await statsReport();
  await new Promise((r) => setTimeout(r, OUTAGE_MS));
  const during = await queue.getJobCounts('waiting', 'active', 'failed', 'completed', 'delayed');
  assert.equal(during.failed, 0, 'no report failed while the DB was away');
  assert.equal(during.completed, 5, 'nothing completed while the DB was away');
  const waiting = await queue.getJobs(['waiting', 'active', 'delayed']);
  assert.equal(waiting.length, 14);
  assert.ok(
    waiting.every((j) => j.attemptsMade === 0),
    `attempts spent while paused: ${waiting.map((j) => j.attemptsMade)}`,
  );
  assert.equal(await gauge(registry, 'cairn_collector_index_db_up'), 0);
  assert.equal(
    await gauge(registry, 'cairn_collector_index_db_pauses_total'),
    1,
    'paused once, not per report',
  );

  await setReachable(dbName, true);
  await until(
    'every report to land',
    async () => (await index.db.report.count().catch(() => 0)) === 19,
    30_000,
  );
  assert.equal(await gauge(registry, 'cairn_collector_index_db_up'), 1);
  // Report counters equal the rows: 0 lost.
  assert.equal(await index.db.block.count(), 6);
  assert.equal(await index.db.block.count({ where: { canonical: true } }), 6);
  assert.equal(await index.db.nodeStatsSnapshot.count(), seq);
  const after = await queue.getJobCounts('failed', 'completed');
  assert.deepEqual(after, { failed: 0, completed: 19 });
});
