/**
 * Issue 4, "Must show" (the job-system half): a real three-node cluster with a real Redis and the
 * collector writing a real index DB.
 *
 *  - every node's stats appear, and keep coming, within one stats period;
 *  - the index holds the nodes' main chain: every block once, with the same hashes;
 *  - `admin.syncMempool` (what the gateway's syncMempool mutation sends) returns that node's
 *    reconciliation result; bad input and an absent node get typed errors;
 *  - a forced reorg (one miner cut off, then healed) shows up as reorged-out orphaned blocks;
 *  - Redis restarted mid-run (it keeps nothing on disk, so every queue, scheduler and queued
 *    report is gone): schedulers and reports resume within 30 s and no report is lost — each
 *    node's count of reports equals what the index recorded from it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { AdminClient, CommandError } from '../../jobs/admin-client.ts';
import { nodeQueueName } from '../../jobs/queues.ts';
import { createRedis } from '../../jobs/redis.ts';
import { eventually, JobsCluster } from './jobs-cluster.ts';

const STATS_MS = 4_000;
const SCHEDULE = `stats.report=${STATS_MS},mempool.sync=3000,chain.sync=5000,peers.refresh=10000`;

test('jobs: schedulers, reports, the collector and admin commands on a three-node cluster, through a Redis restart', {
  timeout: 300_000,
}, async (t) => {
  const jc = await JobsCluster.start({ nodes: 3, schedule: SCHEDULE, nodeOptions: () => ({ mine: true }) });
  t.after(() => jc.stop());
  const { db } = jc;
  const ids = jc.nodes.map((n) => n.peerId);
  t.diagnostic(`run dir ${jc.cluster.runDir}, namespace ${jc.namespace}`);

  await t.test('every node’s stats appear within one stats period, and keep coming', async () => {
    await eventually('a Node row for every node', async () => (await db.node.count()) === 3, STATS_MS);
    const before = await db.nodeStatsSnapshot.groupBy({ by: ['nodeId'], _max: { seq: true } });
    const seqBefore = new Map(before.map((r) => [r.nodeId, r._max.seq ?? 0]));
    // One more period (plus scheduling slack on a loaded 2-core machine): a new snapshot from each.
    await eventually(
      'a newer snapshot from each node',
      async () => {
        const now = await db.nodeStatsSnapshot.groupBy({ by: ['nodeId'], _max: { seq: true } });
        return ids.every(
          (id) => (now.find((r) => r.nodeId === id)?._max.seq ?? 0) > (seqBefore.get(id) ?? 0),
        );
      },
      STATS_MS + 3_000,
    );
    const nodes = await db.node.findMany();
    for (const n of nodes) {
      assert.ok(ids.includes(n.id));
      assert.equal(n.mining, true);
      assert.ok(JSON.parse(n.addrs).length > 0);
    }
    const stats = await db.networkStats.findFirstOrThrow({ orderBy: { id: 'desc' } });
    assert.equal(stats.totalNodes, 3);
  });

  await t.test('the index holds the main chain: every block once, same hashes as the nodes', async () => {
    await jc.cluster.waitForConverged({ minHeight: 6, timeoutMs: 60_000 });
    const node0 = jc.nodes[0]!;
    const { blocks } = await node0.chain(0, 5);
    await eventually(
      'the index to hold heights 0..5 as canonical',
      async () => {
        const rows = await db.block.findMany({
          where: { canonical: true, height: { lte: 5 } },
          orderBy: { height: 'asc' },
        });
        return rows.length === blocks.length && rows.every((r, i) => r.hash === blocks[i]!.hash);
      },
      20_000,
    );
    const dup = await db.block.groupBy({
      by: ['hash'],
      _count: { hash: true },
      having: { hash: { _count: { gt: 1 } } },
    });
    assert.deepEqual(dup, []);
  });

  await t.test(
    'admin.syncMempool returns the node’s reconciliation result; bad input and absent nodes get typed errors',
    async () => {
      const admin = new AdminClient(jc.redisUrl, jc.namespace);
      try {
        const [a, b] = jc.nodes;
        await a!.postEntry('a fact for reconciliation');
        const r = await admin.run(a!.peerId, 'admin.syncMempool', { peerId: b!.peerId });
        assert.equal(r.peerId, b!.peerId);
        assert.ok(r.roundTrips >= 1, `round trips ${r.roundTrips}`);
        assert.ok(r.bytes > 0);
        const chain = await admin.run(a!.peerId, 'admin.syncChain', {});
        assert.ok(chain.height >= 6);
        await assert.rejects(
          admin.run(a!.peerId, 'admin.blockPeers', { peerIds: [] }),
          (e: unknown) => e instanceof CommandError && e.code === 'invalid-input',
        );
        await assert.rejects(
          admin.run('12D3KooWNoSuchNodeNoSuchNodeNoSuchNodeNoSuchNode', 'admin.syncChain', {}, 1_500),
          (e: unknown) => e instanceof CommandError && e.code === 'node-unavailable',
        );
        await assert.rejects(
          admin.run(a!.peerId, 'admin.syncMempool', { peerId: 'not-a-peer-id' }),
          (e: unknown) =>
            e instanceof CommandError && e.code === 'command-failed' && /not a peer id/.test(e.message),
        );
      } finally {
        await admin.close();
      }
    },
  );

  await t.test('a forced reorg shows up as reorged-out orphaned blocks', async () => {
    await jc.forceReorg(3);
    const orphan = await eventually(
      'a reorged-out block in the index',
      async () => (await db.orphanedBlock.findFirst({ where: { reason: 'reorged-out' } })) ?? undefined,
      60_000,
    );
    assert.ok(ids.includes(orphan.reportedBy));
    // With the depth of the reorg that took it out: at least 1, at most the blocks the loser mined.
    assert.ok(orphan.reorgDepth !== null && orphan.reorgDepth >= 1, `reorgDepth ${orphan.reorgDepth}`);
    // The loser's block stays in the index, no longer canonical.
    await eventually(
      'the reorged-out block to lose the canonical flag',
      async () => (await db.block.findUnique({ where: { hash: orphan.hash } }))?.canonical === false,
      30_000,
    );
  });

  await t.test('Redis restarted: schedulers and reports resume within 30 s, no report is lost', async () => {
    const heightBefore = (await jc.nodes[0]!.status()).height;
    await jc.redis.stop();
    const downAt = Date.now();
    await sleep(5_000);
    // The nodes never needed Redis: they kept mining.
    assert.ok((await jc.nodes[0]!.status()).height > heightBefore, 'mining went on while Redis was down');
    await jc.redis.start();
    const upAt = Date.now();
    t.diagnostic(`redis down for ${upAt - downAt} ms`);
    const redis = createRedis(jc.redisUrl);
    const queues = ids.map((id) => new Queue(nodeQueueName(id), { connection: redis, prefix: jc.namespace }));
    try {
      await eventually(
        'every node to upsert its four schedulers again',
        async () => (await Promise.all(queues.map((q) => q.getJobSchedulersCount()))).every((n) => n === 4),
        30_000,
      );
      await eventually(
        'a stats snapshot taken after the restart from every node',
        async () => {
          const fresh = await db.nodeStatsSnapshot.groupBy({
            by: ['nodeId'],
            where: { at: { gt: new Date(upAt) } },
          });
          return fresh.length === 3;
        },
        30_000,
      );
      const counts = async () =>
        Promise.all(
          jc.nodes.map(async (n) => ({
            node: n.name,
            sentStats: await n.metric('cairn_node_reports_total', { kind: 'node.stats' }),
            sentBlocks: await n.metric('cairn_node_reports_total', { kind: 'block.accepted' }),
            storedStats: await db.nodeStatsSnapshot.count({ where: { nodeId: n.peerId } }),
            storedBlocks: await db.report.count({ where: { nodeId: n.peerId, kind: 'block.accepted' } }),
          })),
        );
      let last: Awaited<ReturnType<typeof counts>> = [];
      await eventually(
        'every report a node sent to be in the index',
        async () => {
          last = await counts();
          return last.every((c) => c.sentStats === c.storedStats && c.sentBlocks === c.storedBlocks);
        },
        30_000,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\n${JSON.stringify(last)}`);
      });
      t.diagnostic(JSON.stringify(last));
      assert.ok(last.every((c) => (c.sentStats ?? 0) > 3));
    } finally {
      await Promise.all(queues.map((q) => q.close()));
      redis.disconnect();
    }
  });
});
