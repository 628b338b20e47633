import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MEMBERSHIP_DEFAULTS } from '../options.ts';
import { bestAdmittedWork, isBehind } from './catch-up.ts';

const NOW = 1_800_000_000_000;
const AFTER = MEMBERSHIP_DEFAULTS.behindAfterMs;

const at = (ageMs: number, claimed?: bigint, admittedPeers = 0) =>
  isBehind({
    tipTimestampMs: NOW - ageMs,
    tipWork: 100n,
    bestAdmittedWork: claimed,
    admittedPeers,
    nowMs: NOW,
  });

test('behind: an old tip with no admitted peer (a new device at genesis), or an admitted peer claiming more work', () => {
  assert.equal(at(AFTER + 1), true, 'tip older than the bound, nobody admitted');
  assert.equal(at(AFTER), false);
  assert.equal(at(1000), false, 'fresh tip, no peer status');
  assert.equal(at(1000, 100n, 1), false, 'an admitted peer with as much work as ours');
  assert.equal(at(1000, 101n, 1), true, 'an admitted peer claims more work');
  assert.equal(
    isBehind({
      tipTimestampMs: NOW - 5000,
      tipWork: 1n,
      bestAdmittedWork: undefined,
      admittedPeers: 0,
      nowMs: NOW,
      behindAfterMs: 1000,
    }),
    true,
  );
});

test('a quiet network (no block for longer than the bound) with members connected is not behind', () => {
  assert.equal(at(AFTER + 60_000, 100n, 2), false, 'members connected, none ahead');
  assert.equal(at(AFTER + 60_000, undefined, 1), false, 'a member connected, its status not in yet');
  assert.equal(at(AFTER + 60_000, 101n, 1), true, 'a member ahead of us still makes us behind');
});

test('only admitted peers claims count: a read-only liar claiming huge work does not make us behind', () => {
  const records = [
    { peer: 'member', status: { totalWork: 100n } },
    { peer: 'read-only-liar', status: { totalWork: 2n ** 200n } },
  ];
  const admitted = (p: string) => p === 'member';
  const best = bestAdmittedWork(records, admitted);
  assert.equal(best, 100n);
  assert.equal(at(1000, best, 1), false);
  assert.equal(
    bestAdmittedWork(records, () => false),
    undefined,
    'no admitted peer: no claim',
  );
  assert.equal(
    bestAdmittedWork(records, () => true),
    2n ** 200n,
  );
});
