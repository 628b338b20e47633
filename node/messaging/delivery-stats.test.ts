import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { MessagingStatsReport } from '../../jobs/payloads.ts';
import { DeliveryStats, LATENCY_WINDOW, percentile } from './delivery-stats.ts';

test('counts follow sends and receipts; pending restored from the outbox never goes below 0', () => {
  const s = new DeliveryStats();
  s.restorePending(2);
  s.sent();
  s.delivered(10);
  s.delivered(30);
  s.delivered(20);
  s.delivered(40);
  const snap = s.snapshot();
  assert.deepEqual([snap.sent, snap.delivered, snap.pending], [1, 4, 0]);
  assert.deepEqual(snap.latency, { p50Ms: 20, p99Ms: 40, samples: 4 });
  assert.equal(snap.mailbox, undefined);
});

test('no latency before the first receipt; mailbox use is passed through', () => {
  const s = new DeliveryStats();
  s.sent();
  const snap = s.snapshot({ items: 3, bytes: 900, capacityBytes: 1000 });
  assert.equal(snap.latency, undefined);
  assert.deepEqual(snap.mailbox, { items: 3, bytes: 900, capacityBytes: 1000 });
  assert.equal(MessagingStatsReport.safeParse(snap).success, true);
});

test('percentiles are over the last LATENCY_WINDOW deliveries only', () => {
  const s = new DeliveryStats();
  for (let i = 0; i < LATENCY_WINDOW; i++) s.delivered(10_000);
  for (let i = 0; i < LATENCY_WINDOW; i++) s.delivered(5);
  assert.deepEqual(s.snapshot().latency, { p50Ms: 5, p99Ms: 5, samples: LATENCY_WINDOW });
});

test('nearest-rank percentile: one of the values, p50 ≤ p99, and the report schema accepts the snapshot', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 3000 }),
      (xs) => {
        const s = new DeliveryStats();
        for (const x of xs) s.delivered(x);
        const l = s.snapshot().latency!;
        const window = xs.slice(-LATENCY_WINDOW).sort((a, b) => a - b);
        assert.equal(l.p50Ms, percentile(window, 0.5));
        assert.ok(window.includes(l.p99Ms));
        assert.ok(l.p50Ms <= l.p99Ms);
        assert.equal(MessagingStatsReport.safeParse(s.snapshot()).success, true);
      },
    ),
    { numRuns: 100 },
  );
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5), 5);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99), 10);
  assert.throws(() => percentile([], 0.5), RangeError);
});

test('the report schema refuses anything beyond figures: a correspondent, text, unbounded counts', () => {
  const ok = { sent: 1, delivered: 1, pending: 0, latency: { p50Ms: 3, p99Ms: 9, samples: 1 } };
  assert.equal(MessagingStatsReport.safeParse(ok).success, true);
  for (const bad of [
    { ...ok, to: 'a'.repeat(64) },
    { ...ok, latency: { ...ok.latency, text: 'hello' } },
    { ...ok, sent: -1 },
    { ...ok, sent: 2 ** 31 },
    { ...ok, pending: 1.5 },
    { ...ok, latency: { p50Ms: 10, p99Ms: 9, samples: 1 } },
    { ...ok, latency: { p50Ms: 1, p99Ms: Number.POSITIVE_INFINITY, samples: 1 } },
    { ...ok, latency: { ...ok.latency, samples: LATENCY_WINDOW + 1 } },
    { ...ok, mailbox: { items: 1, bytes: 1, capacityBytes: 1, recipients: ['x'] } },
  ])
    assert.equal(MessagingStatsReport.safeParse(bad).success, false, JSON.stringify(bad));
});
