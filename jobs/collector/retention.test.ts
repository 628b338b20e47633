import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IndexDb } from '../index-db/open.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { Retention } from './retention.ts';

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 5, 1, 12, 0, 0);
const figures = {
  totalNodes: 2,
  chainLengthMin: 1,
  chainLengthMax: 2,
  chainLengthAvg: 1.5,
  avgPeers: 1,
  target: '1',
  difficulty: 1,
  hashRate: 1,
  mempoolTotal: 0,
  mempoolMin: 0,
  mempoolMax: 0,
};

/** Three days of stats every 10 minutes from two nodes (and network stats after each). */
async function seed(db: IndexDb) {
  for (const id of ['A', 'B'])
    await db.node.create({
      data: {
        id,
        role: 'submind',
        capabilities: 'mine',
        addrs: '[]',
        firstSeenAt: new Date(NOW - 72 * HOUR),
        lastSeenAt: new Date(NOW),
        height: 1,
        headHash: 'ab',
        peerCount: 1,
        mempoolSize: 0,
        mining: true,
      },
    });
  const stats = [];
  const snaps = [];
  for (let t = NOW - 72 * HOUR, seq = 1; t < NOW; t += 10 * 60_000, seq++) {
    stats.push({ at: new Date(t), ...figures });
    for (const nodeId of ['A', 'B'])
      snaps.push({
        id: `${nodeId}:1:${seq}`,
        nodeId,
        boot: 1n,
        seq,
        at: new Date(t),
        height: seq,
        headHash: 'ab',
        totalWork: '1',
        difficulty: '1',
        peerCount: 1,
        mempoolSize: 0,
        hashRate: 0,
      });
  }
  await db.networkStats.createMany({ data: stats });
  await db.nodeStatsSnapshot.createMany({ data: snaps });
  await db.report.createMany({
    data: Array.from({ length: 10 }, (_, i) => ({
      id: `r${i}`,
      kind: 'node.stats',
      nodeId: 'A',
      // r<i> is 10 - i days old less an hour: r0..r2 are past 7 days, r3 (6 d 23 h) is not.
      receivedAt: new Date(NOW - (10 - i) * 86_400_000 + 3_600_000),
    })),
  });
  // Orphaned blocks, as old as the report log's rows: o0..o2 are past 7 days.
  await db.orphanedBlock.createMany({
    data: Array.from({ length: 10 }, (_, i) => ({
      hash: `o${i}`,
      reason: 'side-chain',
      height: i,
      prevHash: 'p',
      miner: 'm',
      reportedBy: 'A',
      at: new Date(NOW - (10 - i) * 86_400_000 + 3_600_000),
    })),
  });
}

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: retention thins stats older than the raw window to one per hour and prunes the report log`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      await seed(db);
      assert.equal(await db.networkStats.count(), 432);
      // A small batch, so the run is done in several steps as on a big index.
      const retention = new Retention(db, {
        rawMs: 24 * HOUR,
        bucketMs: HOUR,
        reportLogMs: 7 * 86_400_000,
        batch: 50,
      });
      let removed = { networkStats: 0, snapshots: 0, reports: 0, orphans: 0 };
      for (let i = 0; i < 30; i++) {
        const r = await retention.run(NOW);
        removed = {
          networkStats: removed.networkStats + r.networkStats,
          snapshots: removed.snapshots + r.snapshots,
          reports: removed.reports + r.reports,
          orphans: removed.orphans + r.orphans,
        };
      }
      const cutoff = new Date(NOW - 24 * HOUR);
      // The last 24 h as reported: 144 rows; the 48 h before: one per hour.
      assert.equal(await db.networkStats.count({ where: { at: { gte: cutoff } } }), 144);
      const old = await db.networkStats.findMany({ where: { at: { lt: cutoff } }, orderBy: { at: 'asc' } });
      assert.equal(old.length, 48);
      // Each kept row is its hour's latest (:50), so the history still ends each hour as it was.
      assert.ok(old.every((r) => r.at.getUTCMinutes() === 50));
      assert.equal(removed.networkStats, 432 - 144 - 48);
      for (const nodeId of ['A', 'B']) {
        assert.equal(await db.nodeStatsSnapshot.count({ where: { nodeId, at: { gte: cutoff } } }), 144);
        assert.equal(await db.nodeStatsSnapshot.count({ where: { nodeId, at: { lt: cutoff } } }), 48);
      }
      assert.equal(removed.snapshots, 2 * (432 - 144 - 48));
      // Report log: the rows older than 7 days are gone.
      assert.deepEqual(
        (await db.report.findMany({ orderBy: { id: 'asc' } })).map((r) => r.id),
        ['r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9'],
      );
      assert.equal(removed.reports, 3);
      // Orphaned blocks (unproven reports): the rows older than 7 days are gone too.
      assert.deepEqual(
        (await db.orphanedBlock.findMany({ orderBy: { hash: 'asc' } })).map((r) => r.hash),
        ['o3', 'o4', 'o5', 'o6', 'o7', 'o8', 'o9'],
      );
      assert.equal(removed.orphans, 3);
      // A later run removes nothing more (idempotent), a fresh Retention (restart) neither.
      assert.deepEqual(await retention.run(NOW), { networkStats: 0, snapshots: 0, reports: 0, orphans: 0 });
      assert.deepEqual(await new Retention(db).run(NOW), {
        networkStats: 0,
        snapshots: 0,
        reports: 0,
        orphans: 0,
      });
    } finally {
      await drop();
    }
  });
}
