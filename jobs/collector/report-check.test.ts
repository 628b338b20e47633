import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeStatsReport } from '../payloads.ts';
import { signReport } from '../report-envelope.ts';
import { REPORTER_ID, REPORTER_KEY } from '../report-testing.ts';
import { checkReport } from './report-check.ts';
import { ReportRefused } from './report-errors.ts';

const NOW = Date.UTC(2030, 0, 1);

const stats = (extra: object): NodeStatsReport =>
  ({
    nodeId: REPORTER_ID,
    boot: 1,
    seq: 1,
    at: new Date(NOW).toISOString(),
    role: 'submind',
    capabilities: ['relay'],
    addrs: [],
    height: 0,
    headHash: 'ab'.repeat(32),
    totalWork: '1',
    target: '1',
    peers: [],
    mempoolSize: 0,
    hashRate: 0,
    mining: false,
    chainId: 'cd'.repeat(32),
    genesisHash: 'ef'.repeat(32),
    networkConfig: '{}',
    ...extra,
  }) as NodeStatsReport;

const check = (report: NodeStatsReport) =>
  checkReport('node.stats', 's.1', signReport('node.stats', 's.1', report, REPORTER_KEY), NOW);

test('a signed stats report with messaging figures passes; one smuggling text or a correspondent is malformed', () => {
  const messaging = { sent: 3, delivered: 2, pending: 1, latency: { p50Ms: 4, p99Ms: 9, samples: 2 } };
  assert.deepEqual(check(stats({ messaging })).report.messaging, messaging);
  for (const bad of [
    { ...messaging, lastText: 'hello' },
    { ...messaging, recipients: ['12D3KooW'] },
    { ...messaging, mailbox: { items: 1, bytes: 10, capacityBytes: 100, depositors: 2 } },
    { ...messaging, delivered: -1 },
  ])
    assert.throws(
      () => check(stats({ messaging: bad })),
      (err) => err instanceof ReportRefused && err.code === 'malformed-report',
      JSON.stringify(bad),
    );
});
