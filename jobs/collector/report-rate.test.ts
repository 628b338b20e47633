import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReportRefused } from './report-errors.ts';
import { REPORT_BUDGETS, REPORT_RATE_DEFAULTS, ReportRate } from './report-rate.ts';

test('a node may send a burst of stats reports, then one per everyMs; nodes have budgets of their own', () => {
  let now = 0;
  const rate = new ReportRate({ burst: 3, everyMs: 1_000, now: () => now });
  for (let i = 0; i < 3; i++) rate.take('node.stats', 'a');
  assert.throws(
    () => rate.take('node.stats', 'a'),
    (e: unknown) => e instanceof ReportRefused && e.code === 'report-rate',
  );
  rate.take('node.stats', 'b');
  now += 1_000;
  rate.take('node.stats', 'a');
  assert.throws(() => rate.take('node.stats', 'a'), ReportRefused);
});

test('every kind is budgeted, each in a bucket of its own', () => {
  const now = 0;
  const rate = new ReportRate({ now: () => now });
  const { burst } = REPORT_BUDGETS['block.orphaned'];
  for (let i = 0; i < burst; i++) rate.take('block.orphaned', 'a');
  assert.throws(
    () => rate.take('block.orphaned', 'a'),
    (e: unknown) => e instanceof ReportRefused && e.code === 'report-rate',
  );
  // Its stats are not spent by its orphans.
  rate.take('node.stats', 'a');
  for (const kind of ['block.accepted', 'model.version', 'fl.round'] as const) {
    for (let i = 0; i < REPORT_BUDGETS[kind].burst; i++) rate.take(kind, 'a');
    assert.throws(() => rate.take(kind, 'a'), ReportRefused, kind);
  }
});

test("the defaults never refuse a node reporting every 3 s, nor a minute's backlog of it", () => {
  let now = 0;
  const rate = new ReportRate({ now: () => now });
  // An index DB away for 60 s: 20 reports of a 3-s schedule arrive at once.
  for (let i = 0; i < 20; i++) rate.take('node.stats', 'n');
  for (let i = 0; i < 1_000; i++) {
    now += 3_000;
    rate.take('node.stats', 'n');
  }
  assert.ok(REPORT_RATE_DEFAULTS.burst >= 20);
});

test("nodes the index does not know share one bucket per kind; known nodes' budgets are their own", () => {
  let now = 0;
  const rate = new ReportRate({ newcomers: { 'node.stats': { burst: 2, everyMs: 10_000 } }, now: () => now });
  rate.takeNewcomer('node.stats', 'fresh-1');
  rate.takeNewcomer('node.stats', 'fresh-2');
  assert.throws(
    () => rate.takeNewcomer('node.stats', 'fresh-3'),
    (e: unknown) => e instanceof ReportRefused && e.code === 'newcomer-rate',
  );
  // Orphans' shared bucket is another one; a known node's stats are not drawn from it.
  rate.takeNewcomer('block.orphaned', 'fresh-3');
  rate.take('node.stats', 'known');
  assert.equal(rate.sharesNewcomers('block.accepted'), false, 'blocks the chain proves');
  now += 10_000;
  rate.takeNewcomer('node.stats', 'fresh-3');
});
