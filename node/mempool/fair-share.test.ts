/**
 * FairShareBudget alone, on a test clock: a lone sender keeps the whole rate, a peer within its
 * share is admitted however hard another floods, floods share what is left, and the number of
 * sources it tracks is bounded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FairShareBudget } from './fair-share.ts';

const QUOTA = { limit: 100, periodMs: 10_000 };
const EMISSION = QUOTA.periodMs / QUOTA.limit;

function budget(maxSources?: number) {
  const clock = { now: 0 };
  return { clock, b: new FairShareBudget(QUOTA, () => clock.now, maxSources) };
}
const takeMany = (b: FairShareBudget, source: string, n: number) => {
  let ok = 0;
  for (let i = 0; i < n; i++) if (b.take(source) === undefined) ok++;
  return ok;
};

test('a lone sender bursts to half the budget (a newcomer keeps its share) and sustains the whole rate', () => {
  const { clock, b } = budget();
  assert.equal(takeMany(b, 'a', 1_000), 50);
  assert.equal(b.take('a'), 'share');
  // Then every refilled token is its own: 10 periods, one token per emission interval.
  let ok = 0;
  for (let i = 0; i < 10 * QUOTA.limit; i++) {
    clock.now += EMISSION;
    ok += takeMany(b, 'a', 5);
  }
  assert.equal(ok, 10 * QUOTA.limit);
});

test('a peer within its share is admitted every time while another floods; the flood gets the rest', () => {
  const { clock, b } = budget();
  let flood = 0;
  let honest = 0;
  let honestRefused = 0;
  // 20 periods; the flooder tries 10 entries per emission interval, honest one in every 4.
  for (let i = 0; i < 20 * QUOTA.limit; i++) {
    clock.now += EMISSION;
    flood += takeMany(b, 'flood', 10);
    if (i % 4 === 0) {
      if (b.take('honest') === undefined) honest++;
      else honestRefused++;
    }
  }
  assert.equal(honestRefused, 0);
  assert.equal(honest, 5 * QUOTA.limit);
  // The budget is used: what the honest peer leaves goes to the flood (plus the first burst).
  assert.ok(flood >= 15 * QUOTA.limit - 10 && flood <= 15 * QUOTA.limit + 50, `${flood}`);
});

test('three floods and an honest peer: each flood gets a share, the honest peer all it asks', () => {
  const { clock, b } = budget();
  const got = new Map<string, number>();
  let honestRefused = 0;
  for (let i = 0; i < 20 * QUOTA.limit; i++) {
    clock.now += EMISSION;
    for (const f of ['f1', 'f2', 'f3']) got.set(f, (got.get(f) ?? 0) + takeMany(b, f, 5));
    // A fifth of the budget: under its share of a quarter.
    if (i % 5 === 0 && b.take('honest') !== undefined) honestRefused++;
  }
  assert.equal(honestRefused, 0);
  const floods = [...got.values()];
  const total = floods.reduce((a, c) => a + c, 0);
  // 20 periods of 100, less the honest peer's 400, plus the opening burst (under 100).
  assert.ok(total >= 1_590 && total <= 1_700, `${total}`);
  for (const n of floods) assert.ok(n > total / 5, `shares ${floods}`);
});

test('use is counted over a sliding period, and tracked sources are bounded', () => {
  const { clock, b } = budget(3);
  assert.equal(takeMany(b, 'a', 10), 10);
  assert.equal(b.usage('a'), 10);
  clock.now += QUOTA.periodMs * 1.5; // half of the previous period still counts
  assert.equal(b.usage('a'), 5);
  assert.equal(b.activeSources, 1);
  for (const s of ['b', 'c']) assert.equal(b.take(s), undefined);
  assert.equal(b.take('d'), 'share', 'a fourth source is refused while three are tracked');
  clock.now += QUOTA.periodMs * 2;
  assert.equal(b.activeSources, 0);
  assert.equal(b.take('d'), undefined, 'expired sources make room');
});
