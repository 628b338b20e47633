import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReportRefused } from './report-errors.ts';
import { REPORT_RATE_DEFAULTS, StatsReportRate } from './report-rate.ts';

test('a node may send a burst of stats reports, then one per everyMs; nodes have budgets of their own', () => {
  let now = 0;
  const rate = new StatsReportRate({ burst: 3, everyMs: 1_000, now: () => now });
  for (let i = 0; i < 3; i++) rate.take('a');
  assert.throws(
    () => rate.take('a'),
    (e: unknown) => e instanceof ReportRefused && e.code === 'report-rate',
  );
  rate.take('b');
  now += 1_000;
  rate.take('a');
  assert.throws(() => rate.take('a'), ReportRefused);
});

test("the defaults never refuse a node reporting every 3 s, nor a minute's backlog of it", () => {
  let now = 0;
  const rate = new StatsReportRate({ now: () => now });
  // An index DB away for 60 s: 20 reports of a 3-s schedule arrive at once.
  for (let i = 0; i < 20; i++) rate.take('n');
  for (let i = 0; i < 1_000; i++) {
    now += 3_000;
    rate.take('n');
  }
  assert.ok(REPORT_RATE_DEFAULTS.burst >= 20);
});
