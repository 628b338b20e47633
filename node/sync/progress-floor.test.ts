import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProgressFloor } from './progress-floor.ts';

test('the allowance is the grace plus the bytes at the floor rate', () => {
  let now = 1_000;
  const f = new ProgressFloor({ graceMs: 10_000, minBytesPerSec: 1_000 }, () => now);
  now += 10_000;
  assert.equal(f.behind(), false, 'exactly the grace');
  now += 1;
  assert.equal(f.behind(), true, 'past the grace with nothing received');
  f.add(2_000);
  assert.equal(f.behind(), false, '2,000 bytes buy 2 s more');
  now += 2_000;
  assert.equal(f.behind(), true);
  assert.equal(f.bytes, 2_000);
  assert.match(f.describe(), /^2000 bytes in 12001 ms, below 1000 B\/s after 10000 ms$/);
});
