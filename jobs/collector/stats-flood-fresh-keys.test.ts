/**
 * Review of ATK-13's fix (collector per-node stats budget), finding (MEDIUM, open networks;
 * fixed): the budget was keyed by the report's node id, which the signature proves is a key, and
 * in an open network every key is a node. 300 stats reports from 300 fresh keys, one each, each
 * in its own new bucket: before the fix another node's report was indexed 28,019 ms after it was
 * sent, with 300 snapshots, 300 node rows and 301 network-stats rows written, 0 refused. Now the
 * reports of node ids the index does not know share one budget per kind (report-rate.ts
 * NEWCOMER_BUDGETS, refused `newcomer-rate`) while known nodes keep theirs: the fresh keys write
 * at most that burst and a known node's report is not held behind them. Roster networks
 * (ATK_MEMBERSHIP=roster) keep refusing the fresh keys `not-a-member`.
 * ATK_FLOOD=<n> changes the flood's size.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../../node/chain/bytes.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdHex } from '../../node/chain/network-config.ts';
import { testKey, testNetwork } from '../../node/testing/forge.ts';
import { nodeIdOfKey, signReport } from '../report-envelope.ts';
import { reportQueueRig, until } from '../report-queue-testing.ts';
import { addSignedReport, REPORTER_ID, REPORTER_KEY } from '../report-testing.ts';
import { NEWCOMER_BUDGETS } from './report-rate.ts';

const FLOOD = Number(process.env.ATK_FLOOD ?? 300);
const { burst } = NEWCOMER_BUDGETS['node.stats']!;

const MEMBERSHIP = process.env.ATK_MEMBERSHIP ?? 'open';

test(`${FLOOD} stats reports from fresh keys write at most a budget and do not hold a known node's report`, async (t) => {
  const rig = await reportQueueRig('atkfresh');
  t.after(() => rig.close());
  // Roster mode: the honest reporter is the network's admin; the fresh keys are no members.
  const network =
    MEMBERSHIP === 'roster'
      ? testNetwork({ membership: 'roster', admins: [toHex(REPORTER_KEY.publicKey)], members: [] })
      : rig.network;
  const stats = (seq: number, at = new Date().toISOString()) => ({
    ...rig.stats(1, seq, at),
    chainId: chainIdHex(network),
    genesisHash: genesisBlock(network).hashHex,
  });
  const at = new Date().toISOString();
  const ids: string[] = [];
  const jobs = Array.from({ length: FLOOD }, (_, seq) => {
    const key = testKey(20_000 + seq);
    const nodeId = nodeIdOfKey(key.publicKey);
    ids.push(nodeId);
    const report = { ...stats(1, at), nodeId };
    const jobId = `stats.${nodeId}.1.1`;
    return { name: 'node.stats', data: signReport('node.stats', jobId, report, key), opts: { jobId } };
  });
  // The honest node is known: one of its reports is indexed before the flood.
  const honestSnapshots = () => rig.db.nodeStatsSnapshot.count({ where: { nodeId: REPORTER_ID } });
  await addSignedReport(rig.nodeQueue, 'node.stats', `stats.${REPORTER_ID}.1.1`, stats(1));
  rig.startCollector({ network });
  await until('honest node known', async () => (await honestSnapshots()) === 1, 30_000);
  for (let i = 0; i < jobs.length; i += 500) await rig.attacker.addBulk(jobs.slice(i, i + 500));
  await until(
    'flood started',
    async () =>
      (await rig.db.nodeStatsSnapshot.count({ where: { nodeId: { in: ids } } })) > 0 ||
      ((await rig.registry.getSingleMetric('cairn_collector_refused_reports_total')!.get()).values[0]
        ?.value ?? 0) > 0,
    30_000,
  );
  const sentAt = Date.now();
  await addSignedReport(rig.nodeQueue, 'node.stats', `stats.${REPORTER_ID}.1.2`, stats(2));
  await until('honest report indexed', async () => (await honestSnapshots()) === 2, 120_000);
  const waitedMs = Date.now() - sentAt;
  const snapshots = await rig.db.nodeStatsSnapshot.count({ where: { nodeId: { in: ids } } });
  const nodes = await rig.db.node.count({ where: { id: { in: ids } } });
  const networkStats = await rig.db.networkStats.count();
  const metric = await rig.registry.getSingleMetric('cairn_collector_refused_reports_total')!.get();
  const refused = metric.values.reduce((n, v) => n + v.value, 0);
  t.diagnostic(
    `membership ${network.membership}: honest report indexed ${waitedMs} ms after it was sent; the flood wrote ${snapshots} snapshots, ${nodes} node rows, ${networkStats} network-stats rows; ${refused} refused`,
  );
  assert.ok(waitedMs < 8_000, `another node's report waited ${waitedMs} ms behind the fresh keys' flood`);
  assert.ok(
    snapshots <= burst + 15,
    `the flood wrote ${snapshots} snapshots (the newcomers' budget ${burst})`,
  );
  if (network.membership === 'open') {
    const newcomerRate = metric.values.find((v) => v.labels.reason === 'newcomer-rate')?.value ?? 0;
    assert.ok(newcomerRate >= FLOOD - burst - 15, `${newcomerRate} refused newcomer-rate`);
  }
});
