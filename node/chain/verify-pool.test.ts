import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { forgeChain, knowledgeEntry, TEST_NOW, testChain, testKey } from '../testing/forge.ts';
import { sealBlock } from './block-codec.ts';
import { CachedVerifier } from './signature-cache.ts';
import { type BlockValidationError, validateBlockIntrinsic } from './validation.ts';
import { VerifyPool } from './verify-pool.ts';

const pool = new VerifyPool(2);
after(() => pool.close());

test('the pool marks blocks whose signatures all hold, and the valid signatures of the others, in the cache', async () => {
  const { chain } = testChain();
  const entries = [0, 1, 2].map((i) => knowledgeEntry(testKey(10 + i), TEST_NOW - 1000 * i));
  const blocks = forgeChain(chain, chain.tip, 4, { entries });
  // Block 2 carries a corrupted miner signature; the hash is unchanged, so only the signature is wrong.
  const sig = blocks[2]!.signature.slice();
  sig[0]! ^= 1;
  const tampered = sealBlock({ ...blocks[2]!, signature: sig });
  const batch = [blocks[0]!, blocks[1]!, tampered, blocks[3]!];
  let nativeCalls = 0;
  const cache = new CachedVerifier(1000, () => {
    nativeCalls++;
    return false;
  });
  await pool.verifyBlocks(batch, cache);
  for (const b of [blocks[0]!, blocks[1]!, blocks[3]!]) {
    assert.ok(cache.hasCheckedBlock(b), `block ${b.header.height}: all its signatures checked`);
    validateBlockIntrinsic(b, chain.config, chain.chainId, TEST_NOW, cache);
  }
  assert.equal(cache.hasCheckedBlock(tampered), false);
  // The tampered block's entries are still remembered one by one.
  for (const e of tampered.entries) assert.ok(cache.verify(e.signature, e.id, e.author, e));
  assert.equal(nativeCalls, 0, 'valid signatures come from the cache');
  assert.throws(
    () => validateBlockIntrinsic(tampered, chain.config, chain.chainId, TEST_NOW, cache),
    (err: BlockValidationError) => err.code === 'bad-block-signature',
  );
  assert.equal(nativeCalls, 1, 'the invalid one is checked again on the caller side');
  // The mark belongs to the checked object, not to equal bytes elsewhere.
  const copy = sealBlock({ ...blocks[0]! });
  assert.equal(cache.hasCheckedBlock(copy), false);
  assert.equal(cache.verify(copy.signature, copy.hash, copy.header.miner, copy), false);
  assert.equal(nativeCalls, 2);
});

test('an empty batch resolves', async () => {
  await pool.verifyBlocks([], new CachedVerifier());
});

test('the pool marks the entries whose signature holds, and only those', async () => {
  const entries = Array.from({ length: 9 }, (_, i) => knowledgeEntry(testKey(40 + i), TEST_NOW - i));
  const sig = entries[4]!.signature.slice();
  sig[0]! ^= 1;
  const forged = { ...entries[4]!, signature: sig };
  const batch = [...entries.slice(0, 4), forged, ...entries.slice(5)];
  const cache = new CachedVerifier();
  await pool.verifyEntries(batch, cache);
  batch.forEach((e, i) => {
    assert.equal(cache.hasCheckedHolder(e), i !== 4, `entry ${i}`);
  });
  assert.equal(cache.hasCheckedHolder(entries[4]!), false, 'the mark belongs to the checked object');
  // The same entry decoded again (from the block that includes it) is found by its bytes.
  let nativeCalls = 0;
  const counted = new CachedVerifier(1000, () => {
    nativeCalls++;
    return false;
  });
  await pool.verifyEntries(entries, counted);
  for (const e of entries) assert.ok(counted.verify(e.signature, e.id, e.author, { ...e }));
  assert.equal(nativeCalls, 0, 'copies of the checked entries come from the cache');
  await pool.verifyEntries([], cache);
});

test('workers start on first use, stop when idle and start again for the next batch', async () => {
  const lazy = new VerifyPool({ size: 2, idleMs: 200 });
  try {
    assert.equal(lazy.running, 0, 'an idle node holds no worker threads');
    const entries = Array.from({ length: 6 }, (_, i) => knowledgeEntry(testKey(60 + i), TEST_NOW - i));
    const cache = new CachedVerifier();
    await lazy.verifyEntries(entries, cache);
    assert.equal(lazy.running, 2);
    assert.ok(entries.every((e) => cache.hasCheckedHolder(e)));
    const deadline = Date.now() + 5_000;
    while (lazy.running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(lazy.running, 0, 'stopped after the idle time');
    const more = Array.from({ length: 4 }, (_, i) => knowledgeEntry(testKey(70 + i), TEST_NOW - i));
    const again = new CachedVerifier();
    await lazy.verifyEntries(more, again);
    assert.ok(
      more.every((e) => again.hasCheckedHolder(e)),
      'restarted workers still verify',
    );
    assert.equal(lazy.starts, 2);
  } finally {
    await lazy.close();
  }
  assert.equal(lazy.running, 0);
});
