/**
 * Replays of signed reports after the report log forgot them (retention prunes it after 7 days):
 * the log is not what keeps old values out of the index, the node's own high-water mark is.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdHex } from '../../node/chain/network-config.ts';
import { forgeBranch, TEST_NOW, testChain, testNetwork } from '../../node/testing/forge.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import type { NodeStatsReport } from '../payloads.ts';
import { IndexWriter } from './index-writer.ts';
import { ReportRefused } from './report-errors.ts';
import { Retention } from './retention.ts';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const stats = (seq: number, at: number, height: number): NodeStatsReport => ({
  nodeId: 'A',
  boot: 1,
  seq,
  at: new Date(at).toISOString(),
  role: 'submind',
  capabilities: ['mine'],
  addrs: ['/ip4/127.0.0.1/tcp/1'],
  height,
  headHash: 'ab'.repeat(32),
  totalWork: '100',
  target: String(2n ** 250n),
  peers: ['p1'],
  mempoolSize: seq,
  hashRate: 10,
  mining: true,
  chainId: chainIdHex(testNetwork()),
  genesisHash: genesisBlock(testNetwork()).hashHex,
  networkConfig: '{}',
});

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: a stats report replayed after the report log was pruned is refused as stale`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const now = Date.now();
      const w = new IndexWriter(db, { network: testNetwork(), now: () => now });
      // Two reports in one old hour (retention keeps the later one), and the current one.
      const hour = Math.floor((now - 3 * HOUR) / HOUR) * HOUR;
      const old = stats(1, hour + 10 * 60_000, 3);
      await w.apply('stats.A.1.1', 'node.stats', old);
      await w.apply('stats.A.1.2', 'node.stats', stats(2, hour + 20 * 60_000, 4));
      await w.apply('stats.A.1.3', 'node.stats', stats(3, now, 9));
      // Eight days on: the hour is thinned to one snapshot and the log forgot every report.
      const removed = await new Retention(db).run(now + 8 * DAY);
      assert.equal(removed.reports, 3);
      assert.equal(removed.snapshots, 1);
      assert.equal(await db.report.count(), 0);
      const snapshots = await db.nodeStatsSnapshot.count();
      const networkStats = await db.networkStats.count();

      await assert.rejects(
        w.apply('stats.A.1.1', 'node.stats', old),
        (err: unknown) => err instanceof ReportRefused && err.code === 'stale-report',
      );
      assert.equal(await db.nodeStatsSnapshot.count(), snapshots, 'the thinned snapshot stays thinned');
      assert.equal(await db.networkStats.count(), networkStats, 'no network figures recomputed for it');
      assert.equal(await db.report.count(), 0, 'a refused report is not logged');
      const node = await db.node.findUniqueOrThrow({ where: { id: 'A' } });
      assert.equal(node.height, 9);
      assert.equal(node.lastSeenAt.getTime(), now);
    } finally {
      await drop();
    }
  });

  test(`${provider}: a stats report a little late (an outbox re-send) is still indexed, not rolled back`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const now = Date.now();
      const w = new IndexWriter(db, { network: testNetwork(), now: () => now });
      await w.apply('stats.A.1.2', 'node.stats', stats(2, now, 9));
      // Lost in a Redis restart and re-sent after its successor: 5 minutes older than the mark.
      await w.apply('stats.A.1.1', 'node.stats', stats(1, now - 5 * 60_000, 8));
      assert.equal(await db.nodeStatsSnapshot.count(), 2);
      assert.equal((await db.node.findUniqueOrThrow({ where: { id: 'A' } })).height, 9);
      // Past the late window (default 1 h), it is refused.
      await assert.rejects(
        w.apply('stats.A.0.9', 'node.stats', { ...stats(9, now - 2 * HOUR, 1), boot: 0 }),
        (err: unknown) => err instanceof ReportRefused && err.code === 'stale-report',
      );
      assert.equal(await db.nodeStatsSnapshot.count(), 2);
    } finally {
      await drop();
    }
  });

  test(`${provider}: a block report replayed after the report log was pruned changes nothing`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, { network: testNetwork(), now: () => TEST_NOW });
      const t = testChain();
      const blocks = forgeBranch(t.chain, t.chain.tip, [{}, {}, {}]);
      for (const b of blocks) await t.submit(b);
      const report = (i: number) =>
        blockAcceptedReport('A', blocks[i]!, t.chain.tree.get(blocks[i]!.hashHex)!);
      for (let i = 0; i < 3; i++) await w.apply(`block.${i}`, 'block.accepted', report(i));
      const before = await db.block.findMany({ orderBy: { height: 'asc' } });
      await new Retention(db).run(Date.now() + 8 * DAY);
      assert.equal(await db.report.count(), 0);
      for (let i = 0; i < 3; i++) {
        const again = await w.apply(`block.${i}`, 'block.accepted', report(i));
        assert.deepEqual(again.publications, [], 'no newBlock event for a block already indexed');
      }
      assert.deepEqual(await db.block.findMany({ orderBy: { height: 'asc' } }), before);
      assert.equal(await db.entry.count(), 0);
    } finally {
      await drop();
    }
  });
}
