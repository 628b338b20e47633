/**
 * The orphan pool's byte bounds: besides 100 orphans and a quarter of them per sender, the pool
 * holds at most ORPHAN_POOL_DEFAULTS.maxBytes in all and perPeerMaxBytes per sender, evicting
 * as the count rules do (a sender over its quota loses its oldest; a full pool evicts the
 * oldest orphan of the sender holding most bytes). Blocks are real (mined, signed), submitted
 * through the Chain as gossip.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  forgeBlock,
  knowledgeEntry,
  TEST_NOW,
  type TestChain,
  testChain,
  testKey,
} from '../testing/forge.ts';
import type { ChainEvent, ProcessResult } from './chain.ts';
import { ORPHAN_POOL_DEFAULTS } from './orphan-pool.ts';
import type { SealedBlock } from './types.ts';

const author = testKey(5);
let serial = 0;

/** An orphan (random unknown parent) carrying `entries` entries of `chars` characters each. */
function bulkyOrphan(t: TestChain, entries: number, chars = 8_000): SealedBlock {
  const es = Array.from({ length: entries }, () =>
    knowledgeEntry(author, TEST_NOW - 60_000, `${serial++}:${'z'.repeat(chars)}`),
  );
  return forgeBlock(t.chain, t.chain.tip, {
    entries: es,
    header: { prevHash: randomBytes(32), height: 1 + (serial % 20), timestamp: TEST_NOW - 30_000 },
  });
}

function gossip(t: TestChain, b: SealedBlock, from: string): Promise<ProcessResult> {
  t.stored.set(b.hashHex, b);
  return t.chain.processBlock(b, from, { requested: false });
}

const dropped = (t: TestChain) =>
  t.chain
    .takeUpdate()
    .events.filter((e): e is Extract<ChainEvent, { type: 'orphan-dropped' }> => e.type === 'orphan-dropped');

describe('orphan pool byte bounds', () => {
  test('a sender over its byte quota loses its own oldest orphans, counted as byte evictions', async () => {
    const probe = testChain();
    const size = bulkyOrphan(probe, 1).encoded.length;
    // Room for three of them per sender, far below the count quota (25).
    const t = testChain({}, { orphanPeerMaxBytes: Math.floor(size * 3.5) });
    const fromB = bulkyOrphan(t, 1);
    assert.equal((await gossip(t, fromB, 'b')).status, 'orphan');
    const fromA = Array.from({ length: 6 }, () => bulkyOrphan(t, 1));
    for (const b of fromA) assert.equal((await gossip(t, b, 'a')).status, 'orphan');

    assert.equal(t.chain.orphans.countFrom('a'), 3);
    assert.ok(t.chain.orphans.bytesFrom('a') <= size * 3.5, `${t.chain.orphans.bytesFrom('a')} bytes`);
    assert.deepEqual(
      t.chain.orphans.from('a').map((o) => o.block.hashHex),
      fromA.slice(3).map((b) => b.hashHex),
      'its newest three',
    );
    assert.ok(t.chain.orphans.has(fromB.hashHex), 'another sender is untouched');
    assert.deepEqual(
      dropped(t).map((e) => [e.block.hashHex, e.reason, e.from]),
      fromA.slice(0, 3).map((b) => [b.hashHex, 'orphan-evicted-bytes', 'a']),
    );
  });

  test('a pool at its byte bound evicts the oldest orphan of the sender holding most bytes', async () => {
    const probe = testChain();
    const size = bulkyOrphan(probe, 1).encoded.length;
    const t = testChain({}, { orphanMaxBytes: size * 10, orphanPeerMaxBytes: size * 6 });
    // a: 5 orphans, b: 2 of twice the size (4 units), c: 1.
    const fromA = Array.from({ length: 5 }, () => bulkyOrphan(t, 1));
    const fromB = Array.from({ length: 2 }, () => bulkyOrphan(t, 2));
    const fromC = bulkyOrphan(t, 1);
    for (const b of fromA) await gossip(t, b, 'a');
    for (const b of fromB) await gossip(t, b, 'b');
    await gossip(t, fromC, 'c');
    assert.equal(t.chain.orphans.size, 8);
    assert.equal(dropped(t).length, 0, 'all fit: 10 units');

    // One more unit from d: a holds most bytes (5 units), so its oldest goes.
    const fromD = bulkyOrphan(t, 1);
    assert.equal((await gossip(t, fromD, 'd')).status, 'orphan');
    assert.ok(t.chain.orphans.bytes <= size * 10 + 64, `${t.chain.orphans.bytes} bytes held`);
    assert.deepEqual(
      dropped(t).map((e) => [e.block.hashHex, e.reason, e.from]),
      [[fromA[0]!.hashHex, 'orphan-evicted-bytes', 'a']],
    );
    assert.ok(fromB.every((b) => t.chain.orphans.has(b.hashHex)));
    assert.ok(t.chain.orphans.has(fromC.hashHex));
    // The bytes follow removals: connected, expired or dropped orphans free their share.
    t.chain.dropOrphansFrom('a');
    assert.equal(t.chain.orphans.bytesFrom('a'), 0);
    const left = [...fromB, fromC, fromD].reduce((n, b) => n + b.encoded.length, 0);
    assert.equal(t.chain.orphans.bytes, left);
  });

  test('an orphan larger than a sender may hold is ignored and displaces nothing', async () => {
    const probe = testChain();
    const size = bulkyOrphan(probe, 1).encoded.length;
    const t = testChain({}, { orphanPeerMaxBytes: size * 2 });
    const small = bulkyOrphan(t, 1);
    await gossip(t, small, 'a');
    const huge = bulkyOrphan(t, 3);
    const r = await gossip(t, huge, 'a');
    assert.equal(r.status, 'ignored');
    assert.equal(r.status === 'ignored' && r.reason, 'orphan-too-large');
    assert.ok(t.chain.orphans.has(small.hashHex));
    assert.ok(!t.chain.orphans.has(huge.hashHex));
  });

  test('by default, 100 orphans of 190 KB from ten peers hold no more than the byte bound', async () => {
    const t = testChain();
    let sent = 0;
    for (let peer = 0; peer < 10; peer++) {
      for (let i = 0; i < 10; i++) {
        const b = bulkyOrphan(t, 6, 31_000);
        sent += b.encoded.length;
        assert.equal((await gossip(t, b, `p${peer}`)).status, 'orphan');
      }
    }
    assert.ok(sent > ORPHAN_POOL_DEFAULTS.maxBytes, `${sent} bytes sent`);
    assert.ok(
      t.chain.orphans.bytes <= ORPHAN_POOL_DEFAULTS.maxBytes,
      `${t.chain.orphans.bytes} bytes held for a bound of ${ORPHAN_POOL_DEFAULTS.maxBytes}`,
    );
    for (let peer = 0; peer < 10; peer++)
      assert.ok(t.chain.orphans.bytesFrom(`p${peer}`) <= ORPHAN_POOL_DEFAULTS.perPeerMaxBytes);
    const reasons = new Set(dropped(t).map((e) => e.reason));
    assert.deepEqual([...reasons], ['orphan-evicted-bytes']);
  });
});
