/**
 * ATK-13 finding 6 (LOW–MEDIUM, a member node; fixed): one node's report flood delayed every other
 * node's reports and grew the index by two rows a report. The collector judges reports one at a
 * time in the queue's order, and nothing bounded how many stats reports one node could send:
 * 300 queued flood reports kept another node's report 30.2 s behind (3,000: not within 120 s),
 * with 299 snapshots and 300 network-stats rows written. Now each node's stats reports draw on a
 * budget (report-rate.ts: a burst of 30, one a second), refused `report-rate` before any DB work
 * beyond it: a flood holds others back by its burst's writes, whatever its size.
 * ATK_FLOOD=<n> changes the flood's size.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testKey } from '../../node/testing/forge.ts';
import { nodeIdOfKey, signReport } from '../report-envelope.ts';
import { reportQueueRig, until } from '../report-queue-testing.ts';
import { addSignedReport, REPORTER_ID } from '../report-testing.ts';
import { REPORT_RATE_DEFAULTS } from './report-rate.ts';

const FLOOD = Number(process.env.ATK_FLOOD ?? 300);
const { burst } = REPORT_RATE_DEFAULTS;

test(`one node’s ${FLOOD} stats reports write at most its budget and do not hold another node’s report`, async (t) => {
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
  // The burst's writes (about 100 ms each on a loaded host) and the refusals' signature checks.
  assert.ok(waitedMs < 8_000, `another node's report waited ${waitedMs} ms behind one node's flood`);
  // The budget refills one a second while the flood is judged: a few more than the burst.
  assert.ok(snapshots <= burst + 15, `the flood wrote ${snapshots} snapshots (budget ${burst})`);
  const metric = await rig.registry.getSingleMetric('cairn_collector_refused_reports_total')!.get();
  const refused = metric.values.find((v) => v.labels.reason === 'report-rate')?.value ?? 0;
  assert.ok(refused >= 1, `${refused} refused report-rate`);
});
