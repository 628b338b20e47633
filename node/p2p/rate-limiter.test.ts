/** The GCRA rate limiter and the serving budget built on it, on a hand-driven clock. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiterGRCA } from './rate-limiter.ts';
import { ServeBudget } from './serve-budget.ts';

test('a full quota is available at once, then tokens come back at the quota rate', () => {
  const clock = { now: 0 };
  const rl = new RateLimiterGRCA({ limit: 1024, periodMs: 10_000 }, () => clock.now);
  assert.equal(rl.available('a'), 1024);
  assert.equal(rl.allows('a', 1000), true);
  assert.equal(rl.allows('a', 25), false, 'over the quota');
  assert.equal(rl.allows('a', 24), true);
  assert.equal(rl.allows('a', 1), false);
  // 10 s / 1024 ≈ 9.77 ms per token: after 100 ms, 10 tokens.
  clock.now = 100;
  assert.equal(rl.available('a'), 10);
  assert.equal(rl.allows('a', 11), false);
  assert.equal(rl.allows('a', 10), true);
  // Another key has its own quota.
  assert.equal(rl.allows('b', 1024), true);
});

test('no window boundary to exploit: 2 quotas never fit in one period', () => {
  const clock = { now: 0 };
  const rl = new RateLimiterGRCA({ limit: 100, periodMs: 1000 }, () => clock.now);
  let taken = 0;
  for (clock.now = 0; clock.now <= 1000; clock.now += 10) while (rl.allows('x')) taken++;
  // One quota at once, plus what accrues in 1000 ms at 100/s.
  assert.ok(taken <= 201, `${taken} tokens in one period`);
  assert.ok(taken >= 199, `${taken} tokens in one period`);
});

test('a refused request takes nothing; a request over the whole quota never fits', () => {
  const clock = { now: 0 };
  const rl = new RateLimiterGRCA({ limit: 10, periodMs: 1000 }, () => clock.now);
  assert.equal(rl.allows('a', 11), false);
  assert.equal(rl.available('a'), 10);
  assert.throws(() => rl.allows('a', 0));
});

test('memory is bounded by the keys active within the last period', () => {
  const clock = { now: 0 };
  const rl = new RateLimiterGRCA({ limit: 10, periodMs: 1000 }, () => clock.now);
  for (let i = 0; i < 5000; i++) rl.allows(`k${i}`);
  clock.now = 10_000;
  for (let i = 0; i < 2048; i++) rl.allows('same');
  assert.ok(rl.size <= 2, `${rl.size} keys tracked`);
});

test('the serving budget charges blocks per request and bytes per chunk, per peer', () => {
  const clock = { now: 0 };
  const budget = new ServeBudget({
    blocks: { limit: 1024, periodMs: 10_000 },
    bytes: { limit: 1_000_000, periodMs: 10_000 },
    now: () => clock.now,
  });
  for (let i = 0; i < 8; i++) assert.equal(budget.takeBlocks('p', 128), true);
  assert.equal(budget.takeBlocks('p', 128), false, 'the 9th full range in 10 s');
  assert.equal(budget.takeBlocks('q', 128), true, "another peer's budget is its own");
  assert.equal(budget.takeBytes('p', 900_000), true);
  assert.equal(budget.takeBytes('p', 200_000), false);
  clock.now = 10_000;
  assert.deepEqual(budget.available('p'), { blocks: 1024, bytes: 1_000_000 });
});
