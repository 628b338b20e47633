/**
 * The node-wide serving budget beside the per-peer one (attack review #11, finding 5): what a
 * stranger's identities take together is bounded, and shared so that a newcomer still gets its
 * part.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServeBudget, type ServeRefusal } from './serve-budget.ts';

const PERIOD = 10_000;
const budgetAt = (clock: { now: number }) =>
  new ServeBudget({
    blocks: { limit: 5_000, periodMs: PERIOD },
    bytes: { limit: 1_000_000, periodMs: PERIOD },
    total: { blocks: { limit: 10_000, periodMs: PERIOD }, bytes: { limit: 1_000_000, periodMs: PERIOD } },
    now: () => clock.now,
  });

test("eight identities, each within its own budget, together take no more than one peer's", () => {
  const clock = { now: 0 };
  const budget = budgetAt(clock);
  let taken = 0;
  const refusals = new Map<ServeRefusal, number>();
  // 30 s of 8 readers asking for 10 KB every 200 ms each: 50 KB/s, half of each one's own budget
  // (1 MB per 10 s), 400 KB/s together against the node's 100 KB/s.
  for (; clock.now < 3 * PERIOD; clock.now += 200)
    for (let i = 0; i < 8; i++) {
      const why = budget.refuseBytes(`sybil${i}`, 10_000);
      if (why) refusals.set(why, (refusals.get(why) ?? 0) + 1);
      else taken += 10_000;
    }
  // One quota at once and the rate after it: 1 MB + 3 × 1 MB.
  assert.ok(taken <= 4_000_000, `${taken} bytes served in 30 s`);
  assert.ok(taken >= 2_500_000, `${taken} bytes: the node's upload is still used`);
  assert.equal(refusals.get('peer'), undefined, 'no one exceeded its own budget');
  assert.ok((refusals.get('share') ?? 0) + (refusals.get('node') ?? 0) > 0);
});

test('a newcomer finds its share at once while others drain the node-wide budget', () => {
  const clock = { now: 0 };
  const budget = budgetAt(clock);
  for (let i = 0; i < 8; i++) while (budget.refuseBytes(`sybil${i}`, 10_000) === undefined);
  // Every sybil is refused now; an honest syncing peer arriving is not.
  for (let i = 0; i < 8; i++)
    assert.ok(
      ['share', 'node'].includes(budget.refuseBytes(`sybil${i}`, 10_000) ?? 'none'),
      'refused by the node-wide budget, within its own',
    );
  assert.equal(budget.refuseBytes('honest', 10_000), undefined);
});

test('a lone syncing peer keeps the whole rate sustained', () => {
  const clock = { now: 0 };
  const budget = budgetAt(clock);
  let taken = 0;
  for (; clock.now < 3 * PERIOD; clock.now += 10)
    while (budget.refuseBytes('sync', 10_000) === undefined) taken += 10_000;
  // Half the quota as a burst (the rest is a newcomer's reserve), then the full rate: 0.5 + 3 MB.
  assert.ok(taken >= 3_400_000, `${taken} bytes in 30 s`);
  assert.ok(taken <= 4_000_000, `${taken} bytes in 30 s`);
});

test("over its own budget a peer is refused as 'peer' (it asked for too much)", () => {
  const clock = { now: 0 };
  const budget = budgetAt(clock);
  assert.equal(budget.refuseBlocks('p', 5_000), undefined);
  assert.equal(budget.refuseBlocks('p', 1), 'peer');
  assert.equal(budget.refuseBlocks('q', 1), undefined, "another peer's budget is its own");
});
