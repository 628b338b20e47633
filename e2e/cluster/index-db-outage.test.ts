/**
 * Issue 13 item 3, "Must show": the index DB (PostgreSQL) away for 60 s mid-run on a real
 * cluster — mining nodes, a private Redis, the collector process — and afterwards every node's
 * report counters equal the rows the index holds (0 lost), as the Redis-restart phase of
 * jobs.test.ts checks for Redis. The machine's PostgreSQL keeps running for everyone else: the
 * cluster's own database stops accepting connections and its backends are terminated, which is
 * what the collector sees of a restarted or unreachable server.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { TEST_POSTGRES_URL } from '../../jobs/index-db/testing.ts';
import { eventually, JobsCluster } from './jobs-cluster.ts';

const OUTAGE_MS = Number(process.env.CAIRN_TEST_DB_OUTAGE_MS ?? 60_000);
const STATS_MS = 3_000;
const SCHEDULE = `stats.report=${STATS_MS},mempool.sync=5000,chain.sync=5000,peers.refresh=10000`;

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

test('index DB away for 60 s: the collector waits, then every report the nodes sent is in the index', {
  timeout: 300_000,
}, async (t) => {
  const jc = await JobsCluster.start({
    nodes: 2,
    schedule: SCHEDULE,
    provider: 'postgresql',
    nodeOptions: () => ({ mine: true }),
  });
  const dbName = new URL(jc.location.url).pathname.slice(1);
  t.after(async () => {
    await setReachable(dbName, true).catch(() => {});
    await jc.stop();
  });
  const { db } = jc;
  t.diagnostic(`run dir ${jc.cluster.runDir}, database ${dbName}`);
  await eventually(
    'blocks and stats in the index',
    async () => (await db.block.count()) >= 2 && (await db.nodeStatsSnapshot.count()) >= 2,
    60_000,
  );

  // The test's own client goes too; it reconnects when the database is back.
  await setReachable(dbName, false);
  const downAt = Date.now();
  const heightBefore = (await jc.nodes[0]!.status()).height;
  await sleep(OUTAGE_MS);
  assert.ok((await jc.nodes[0]!.status()).height > heightBefore, 'the nodes kept mining');
  const metrics = await fetchCollectorMetrics(jc);
  assert.match(metrics, /^cairn_collector_index_db_up 0$/m, 'the collector knows the DB is away');
  assert.match(metrics, /^cairn_collector_index_db_pauses_total [1-9]/m);
  assert.doesNotMatch(
    metrics,
    /^cairn_collector_reports_total\{kind="[^"]+",outcome="failed"\} [1-9]/m,
    'no report failed while the DB was away',
  );
  await setReachable(dbName, true);
  t.diagnostic(`index DB away for ${Date.now() - downAt} ms`);

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
      last = await counts().catch(() => last);
      return (
        last.length > 0 && last.every((c) => c.sentStats === c.storedStats && c.sentBlocks === c.storedBlocks)
      );
    },
    60_000,
  ).catch((err) => {
    throw new Error(`${(err as Error).message}\n${JSON.stringify(last)}`);
  });
  t.diagnostic(JSON.stringify(last));
  // Reports sent during the outage are among them: more stats than the outage alone would hold.
  assert.ok(last.every((c) => (c.sentStats ?? 0) >= OUTAGE_MS / STATS_MS));
  assert.match(await fetchCollectorMetrics(jc), /^cairn_collector_index_db_up 1$/m);
});

/** The collector's /metrics (its address is in its ready line). */
async function fetchCollectorMetrics(jc: JobsCluster): Promise<string> {
  const url = readFileSync(jc.collector.spec.logFile, 'utf8').match(/"metricsUrl":"([^"]+)"/)?.[1];
  assert.ok(url, 'the collector logged its metrics URL');
  return (await fetch(url)).text();
}
