import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_TARGET } from '../../node/chain/pow.ts';
import { networkFigures } from './network-stats.ts';

test('network figures: lengths, peers and mempools over the live nodes', () => {
  const f = networkFigures(
    [
      { height: 9, peerCount: 2, mempoolSize: 4 },
      { height: 11, peerCount: 3, mempoolSize: 0 },
      { height: 10, peerCount: 1, mempoolSize: 2 },
    ],
    [],
  );
  assert.equal(f.totalNodes, 3);
  assert.equal(f.chainLengthMin, 10);
  assert.equal(f.chainLengthMax, 12);
  assert.equal(f.chainLengthAvg, 11);
  assert.equal(f.avgPeers, 2);
  assert.deepEqual([f.mempoolTotal, f.mempoolMin, f.mempoolMax], [6, 0, 4]);
  assert.equal(f.hashRate, 0);
});

test('hash rate is the recent blocks’ work over their time span; difficulty is hashes per block', () => {
  // target = MAX/1024 → about 1024 hashes per block; 5 blocks 2 s apart → 4 intervals of 2 s.
  const target = (MAX_TARGET / 1024n).toString();
  const t0 = Date.UTC(2026, 0, 1);
  const recent = [4, 3, 2, 1, 0].map((i) => ({ timestamp: new Date(t0 + i * 2000), target }));
  const f = networkFigures([], recent);
  assert.ok(Math.abs(f.difficulty - 1024) < 1, `difficulty ${f.difficulty}`);
  assert.ok(Math.abs(f.hashRate - 512) < 1, `hash rate ${f.hashRate}`);
  assert.equal(f.target, target);
  assert.equal(f.totalNodes, 0);
  assert.equal(f.chainLengthMin, 0);
});
