/**
 * A report whose job a Redis client took out of `wait` (LREM: the job's hash stays, in no state)
 * is not stuck (attack 03 of the issue 13 review). BullMQ ignores an add for an id whose hash
 * exists, so re-sending under the same id never reaches the collector, and the collector then
 * holds every later block as unknown-parent. The outbox must send it again under a fresh id.
 * Real Redis, BullMQ, collector and index DB.
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
import { ReportOutbox } from './report-outbox.ts';
import { REPORTER_ID, REPORTER_KEY } from './report-testing.ts';

const until = async (what: string, fn: () => Promise<boolean> | boolean, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('outbox: a report job taken out of wait (its hash kept) is sent again under a new id and indexed', async (t) => {
  const ns = `st${randomBytes(4).toString('hex')}`;
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
  const reissued: string[] = [];
  const outbox = new ReportOutbox(nodeQueue, {
    log,
    key: REPORTER_KEY,
    confirmMs: 60_000,
    onReissued: (why, n) => reissued.push(`${why}:${n}`),
  });
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
  const stats: NodeStatsReport = {
    nodeId: REPORTER_ID,
    boot: 1800,
    seq: 1,
    at: new Date().toISOString(),
    role: 'submind',
    capabilities: ['mine'],
    addrs: [],
    height: 1,
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
  };
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
