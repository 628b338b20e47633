/**
 * ATK-13 finding 6 (LOW–MEDIUM, a member node): one node's report flood delays every other
 * node's reports and grows the index by two rows a report.
 *
 * The collector judges reports one at a time (jobs/collector/collector.ts, concurrency 1) in the
 * reports queue's FIFO order, and nothing bounds how many reports one node may send: each
 * well-signed `node.stats` with a new (boot, seq) is indexed, and each writes a NodeStatsSnapshot
 * and a NetworkStats row (index-writer.ts nodeStats) and recomputes the network figures. A member
 * node (any device an admin invited; in compose its Redis user may add reports at will) that
 * pushes a few thousand stats reports puts every other node's blocks, stats and model versions
 * behind them: the dashboards go stale for as long as it keeps going, and the index grows by two
 * rows a report until retention downsamples them.
 *
 * Figures (SQLite index DB, this machine, 2 shared cores): 300 flood reports queued, then one
 * honest stats report: it was indexed 30.2 s after it was sent, when the flood had written 299
 * snapshots and 300 network-stats rows: the collector judges about 10 stats reports a second, so
 * a member sending 10 a second holds every other node's reports back for as long as it likes
 * (3,000 queued: the honest report was not indexed within 120 s). ATK_FLOOD=<n> changes the size.
 *
 * Run: npm exec -- node --test attack/control/collector-report-flood.attack.ts
 *
 * Fixes that make it pass: a per-node report budget at the collector (stats: at most one per
 * node per few seconds, the rest refused `report-rate` with a receipt, counted, the node
 * penalised in the index), and fair service across nodes (a queue per node, or BullMQ groups,
 * drained round-robin), so one node's backlog does not delay another's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nodeIdOfKey, signReport } from '../../jobs/report-envelope.ts';
import { reportQueueRig, until } from '../../jobs/report-queue-testing.ts';
import { addSignedReport, REPORTER_ID } from '../../jobs/report-testing.ts';
import { testKey } from '../../node/testing/forge.ts';

const FLOOD = Number(process.env.ATK_FLOOD ?? 300);

test('one node’s 300 stats reports do not hold another node’s report for seconds', async (t) => {
  const rig = await reportQueueRig('atkflood');
  t.after(() => rig.close());
  const flooder = testKey(950);
  const flooderId = nodeIdOfKey(flooder.publicKey);
  const at = new Date().toISOString();
  const jobs = Array.from({ length: FLOOD }, (_, seq) => {
    const report = { ...rig.stats(1, seq, at), nodeId: flooderId };
    const jobId = `stats.${flooderId}.1.${seq}`;
    return { name: 'node.stats', data: signReport('node.stats', jobId, report, flooder), opts: { jobId } };
  });
  for (let i = 0; i < jobs.length; i += 500) await rig.attacker.addBulk(jobs.slice(i, i + 500));
  rig.startCollector();
  // Let the collector start on the flood, then the honest node reports.
  await until('flood started', async () => (await rig.db.nodeStatsSnapshot.count()) > 0, 30_000);
  const sentAt = Date.now();
  await addSignedReport(rig.nodeQueue, 'node.stats', `stats.${REPORTER_ID}.1.1`, rig.stats(1, 1));
  await until(
    'honest report indexed',
    async () => (await rig.db.node.findUnique({ where: { id: REPORTER_ID } })) !== null,
    120_000,
  );
  const waitedMs = Date.now() - sentAt;
  const snapshots = await rig.db.nodeStatsSnapshot.count({ where: { nodeId: flooderId } });
  const networkStats = await rig.db.networkStats.count();
  t.diagnostic(
    `honest stats report indexed ${waitedMs} ms after it was sent; by then the flood had written ${snapshots} snapshots and the index ${networkStats} network-stats rows`,
  );
  assert.ok(waitedMs < 2_000, `another node's report waited ${waitedMs} ms behind one node's flood`);
});
