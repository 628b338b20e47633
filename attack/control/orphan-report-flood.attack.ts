/**
 * ATK review of #13 (collector per-node budget), finding (MEDIUM, a member node): the budget that
 * fixed the stats flood covers `node.stats` only. Every other report kind a node signs is judged
 * one at a time in queue order with no budget, and `block.orphaned` carries nothing the collector
 * can check (hash, prevHash and miner are whatever the reporter writes): each new (hash, reason)
 * writes an orphaned-block row, a report row and an `orphanedBlock` event. One member's flood of
 * orphan reports with random hashes is the stats flood again, under another kind, and it also
 * names any miner it likes as the producer of orphans on every dashboard.
 *
 * Measured (this rig: real Redis, BullMQ, collector, SQLite index; the flood queued by one member
 * before another node's stats report): 300 orphan reports: all 300 rows written (300 naming the
 * framed miner), 0 refused `report-rate`, the honest report indexed after 1,116 ms; 3,000: 3,000
 * rows, 0 refused, the honest report indexed after 20.2 s. (A later 300-report run at host load
 * ~30: 300 rows, the honest report after 17.0 s.) The same floods of stats reports are
 * held to the burst (30 + refill). Orphaned blocks have no retention either (retention.ts), so
 * the rows stay.
 *
 * Fix that makes it pass: draw every kind a node reports on the per-node budget (report-rate.ts;
 * kinds with an honest burst larger than stats', e.g. orphans during a reorg, get their own
 * bucket sized for it), refused `report-rate` before any DB work as for stats.
 * ATK_FLOOD=<n> changes the flood's size.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { REPORT_RATE_DEFAULTS } from '../../jobs/collector/report-rate.ts';
import { nodeIdOfKey, signReport } from '../../jobs/report-envelope.ts';
import { reportQueueRig, until } from '../../jobs/report-queue-testing.ts';
import { addSignedReport, REPORTER_ID } from '../../jobs/report-testing.ts';
import { testKey } from '../../node/testing/forge.ts';

const FLOOD = Number(process.env.ATK_FLOOD ?? 300);
const { burst } = REPORT_RATE_DEFAULTS;

test(`one node’s ${FLOOD} block.orphaned reports are budgeted like its stats and do not hold another node’s report`, async (t) => {
  const rig = await reportQueueRig('atkorphan');
  t.after(() => rig.close());
  const flooder = testKey(951);
  const flooderId = nodeIdOfKey(flooder.publicKey);
  // Framed: the "miner" of every orphan is another node's key.
  const framed = testKey(952);
  const framedMiner = Buffer.from(framed.publicKey).toString('hex');
  const at = new Date().toISOString();
  const jobs = Array.from({ length: FLOOD }, (_, seq) => {
    const report = {
      nodeId: flooderId,
      hash: randomBytes(32).toString('hex'),
      height: 1000 + seq,
      prevHash: randomBytes(32).toString('hex'),
      miner: framedMiner,
      reason: 'side-chain' as const,
      at,
    };
    const jobId = `orphan.${flooderId}.${seq}`;
    return {
      name: 'block.orphaned',
      data: signReport('block.orphaned', jobId, report, flooder),
      opts: { jobId },
    };
  });
  for (let i = 0; i < jobs.length; i += 500) await rig.attacker.addBulk(jobs.slice(i, i + 500));
  rig.startCollector();
  await until('flood started', async () => (await rig.db.orphanedBlock.count()) > 0, 30_000);
  const sentAt = Date.now();
  await addSignedReport(rig.nodeQueue, 'node.stats', `stats.${REPORTER_ID}.1.1`, rig.stats(1, 1));
  await until(
    'honest report indexed',
    async () => (await rig.db.node.findUnique({ where: { id: REPORTER_ID } })) !== null,
    120_000,
  );
  const waitedMs = Date.now() - sentAt;
  const orphans = await rig.db.orphanedBlock.count({ where: { reportedBy: flooderId } });
  const framedRows = await rig.db.orphanedBlock.count({ where: { miner: framedMiner } });
  const metric = await rig.registry.getSingleMetric('cairn_collector_refused_reports_total')!.get();
  const refused = metric.values.find((v) => v.labels.reason === 'report-rate')?.value ?? 0;
  t.diagnostic(
    `honest stats report indexed ${waitedMs} ms after it was sent; by then the flood had written ${orphans} orphan rows (${framedRows} naming the framed miner); ${refused} refused report-rate`,
  );
  // The same bounds the stats flood is held to (jobs/collector/report-flood.test.ts).
  assert.ok(waitedMs < 8_000, `another node's report waited ${waitedMs} ms behind one node's orphan flood`);
  assert.ok(orphans <= burst + 15, `the flood wrote ${orphans} orphan rows (stats budget ${burst})`);
  assert.ok(refused >= 1, `${refused} refused report-rate`);
});
