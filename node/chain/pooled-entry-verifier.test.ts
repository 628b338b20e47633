/**
 * Entries the mempool holds are not verified again inside a block: validation must not depend on
 * the signature cache still holding them (a bounded cache missed on every entry of a mempool
 * that had taken more than its capacity, and warm import went super-linear).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countingChain, forgeBlock, knowledgeEntry, TEST_NOW, testKey } from '../testing/forge.ts';
import { sealEntry } from './entry-codec.ts';

const author = testKey(40);

test('a block of pooled entries costs one signature check (the miner’s), not one per entry', async () => {
  const { t, calls } = countingChain();
  const entries = Array.from({ length: 8 }, (_, i) => knowledgeEntry(author, TEST_NOW - 1000, `pooled ${i}`));
  for (const e of entries) assert.equal(t.chain.addEntry(e).status, 'added');
  const before = calls();
  const block = forgeBlock(t.chain, t.chain.tip, { entries });
  const r = await t.submit(block);
  assert.equal(r.status, 'connected');
  assert.equal(calls() - before, 1, 'only the miner’s signature was checked');
  assert.equal(t.chain.bodyVerifier.pooledHits, 8);
});

test('an entry the pool does not hold is verified; a pooled id with another signature is too', async () => {
  const { t, calls } = countingChain();
  const pooled = knowledgeEntry(author, TEST_NOW - 1000, 'pooled');
  const fresh = knowledgeEntry(author, TEST_NOW - 1000, 'fresh');
  assert.equal(t.chain.addEntry(pooled).status, 'added');
  let before = calls();
  assert.equal((await t.submit(forgeBlock(t.chain, t.chain.tip, { entries: [fresh] }))).status, 'connected');
  assert.equal(calls() - before, 2, 'the miner’s and the unpooled entry’s');

  // Same id (the id covers everything but the signature), forged signature: checked, refused.
  const signature = pooled.signature.slice();
  signature[5]! ^= 1;
  const forged = sealEntry({ ...pooled, signature });
  assert.equal(forged.idHex, pooled.idHex);
  before = calls();
  const r = await t.submit(forgeBlock(t.chain, t.chain.tip, { entries: [forged] }));
  assert.equal(r.status, 'invalid');
  assert.ok(r.status === 'invalid' && r.error.code === 'bad-entry-signature', JSON.stringify(r));
  assert.ok(calls() - before >= 2, 'the forged signature was verified, not taken from the pool');
});
