import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MEMBERSHIP_DEFAULTS } from '../options.ts';
import { isBehind } from './catch-up.ts';

const NOW = 1_800_000_000_000;
const AFTER = MEMBERSHIP_DEFAULTS.behindAfterMs;

test('behind: an old tip (a new device at genesis), or a peer claiming more work', () => {
  const at = (ageMs: number, claimed?: bigint) =>
    isBehind({ tipTimestampMs: NOW - ageMs, tipWork: 100n, bestClaimedWork: claimed, nowMs: NOW });
  assert.equal(at(AFTER + 1), true, 'tip older than the bound');
  assert.equal(at(AFTER), false);
  assert.equal(at(1000), false, 'fresh tip, no peer status');
  assert.equal(at(1000, 100n), false, 'a peer with as much work as ours');
  assert.equal(at(1000, 101n), true, 'a peer claims more work');
  assert.equal(
    isBehind({
      tipTimestampMs: NOW - 5000,
      tipWork: 1n,
      bestClaimedWork: undefined,
      nowMs: NOW,
      behindAfterMs: 1000,
    }),
    true,
  );
});
