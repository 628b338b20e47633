/**
 * A report's job id cannot be taken from the node (attack review of issue 13): a Redis client
 * that creates a junk job under the id the node's next report will use gets it failed by the
 * collector, and BullMQ ignores the node's add as a duplicate. The outbox must not count that
 * failure as its report's delivery: ids carry a hash of the content (not guessable ahead), and a
 * processed job that is not the outbox's own sends the report again under a fresh id. Real Redis,
 * BullMQ, collector and index DB.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue } from 'bullmq';
import { Registry } from 'prom-client';
import { genesisBlock } from '../node/chain/genesis.ts';
import { chainIdHex } from '../node/chain/network-config.ts';
import { createLogger } from '../node/log.ts';
import { testChain } from '../node/testing/forge.ts';
import { Collector } from './collector/collector.ts';
import { createTestIndexDb } from './index-db/testing.ts';
import type { NodeStatsReport } from './payloads.ts';
import { createCairnPubSub } from './pubsub.ts';
import { REPORTS_QUEUE } from './queues.ts';
import { createRedis, redisUrl } from './redis.ts';
import { ReportOutbox, reportJobId } from './report-outbox.ts';
import { REPORTER_ID, REPORTER_KEY } from './report-testing.ts';

const until = async (what: string, fn: () => Promise<boolean> | boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('outbox: a report whose id a Redis client squatted is sent again under a fresh id and indexed', async (t) => {
  const ns = `sq${randomBytes(4).toString('hex')}`;
  const { db, drop } = await createTestIndexDb('sqlite');
  const network = testChain().chain.config;
  const bus = createCairnPubSub(redisUrl(), ns);
  const log = createLogger('silent');
  const collector = new Collector({
    db,
    pubsub: bus.pubsub,
    redisUrl: redisUrl(),
    namespace: ns,
    log,
    registry: new Registry(),
    network,
  });
  const c1 = createRedis();
  const c2 = createRedis();
  const nodeQueue = new Queue(REPORTS_QUEUE, { connection: c1, prefix: ns });
  const attacker = new Queue(REPORTS_QUEUE, { connection: c2, prefix: ns });
  const outbox = new ReportOutbox(nodeQueue, { log, key: REPORTER_KEY, confirmMs: 60_000 });
  t.after(async () => {
    outbox.close();
    await collector.close();
    await attacker.obliterate({ force: true }).catch(() => {});
    await Promise.all([attacker.close(), nodeQueue.close()]);
    c1.disconnect();
    c2.disconnect();
    await bus.close();
    await drop();
  });
  const at = new Date().toISOString();
  const stats = (seq: number): NodeStatsReport => ({
    nodeId: REPORTER_ID,
    boot: 1700,
    seq,
    at,
    role: 'submind',
    capabilities: ['mine'],
    addrs: [],
    height: seq,
    headHash: 'ab'.repeat(32),
    totalWork: '1',
    target: '1',
    peers: [],
    mempoolSize: 0,
    hashRate: 0,
    mining: true,
    chainId: chainIdHex(network),
    genesisHash: genesisBlock(network).hashHex,
    networkConfig: '{}',
  });
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
