/**
 * Review of ATK-13's fix, finding (MEDIUM, a member node; fixed): the budget that fixed the stats
 * flood covered `node.stats` only; `block.orphaned` carries nothing the collector can check (hash,
 * prevHash and miner are whatever the reporter writes) and each new (hash, reason) wrote an
 * orphaned-block row, a report row and an `orphanedBlock` event. Measured before the fix (real
 * Redis, BullMQ, collector, SQLite index; the flood queued by one node before another node's
 * stats report): 300 orphan reports, all 300 rows written (300 naming the framed miner), 0
 * refused `report-rate`, the honest report indexed after 1,116 ms; 3,000: 3,000 rows, 20.2 s.
 * Now every kind draws on its own per-node budget (report-rate.ts, REPORT_BUDGETS: orphans a
 * burst of 100, one a second), refused `report-rate` before any DB work; an orphan report
 * naming a block the index holds must agree with its header, and orphan rows are deleted after
 * `orphanMs` (retention.ts). ATK_FLOOD=<n> changes the flood's size.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { testKey } from '../../node/testing/forge.ts';
import { nodeIdOfKey, signReport } from '../report-envelope.ts';
import { reportQueueRig, until } from '../report-queue-testing.ts';
import { addSignedReport, REPORTER_ID } from '../report-testing.ts';
import { REPORT_BUDGETS } from './report-rate.ts';

const FLOOD = Number(process.env.ATK_FLOOD ?? 300);
const { burst } = REPORT_BUDGETS['block.orphaned'];

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
  assert.ok(orphans <= burst + 15, `the flood wrote ${orphans} orphan rows (orphan budget ${burst})`);
  assert.ok(refused >= 1, `${refused} refused report-rate`);
});
