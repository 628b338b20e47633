import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forgeChain, knowledgeEntry, testKey, testNetwork } from '../testing/forge.ts';
import { Chain } from './chain.ts';

test('a forged chain connects and a heavier fork reorgs it', async () => {
  const chain = new Chain({
    config: testNetwork(),
    loadBlock: async () => undefined,
    now: () => 1_800_000_000_000,
  });
  const e = knowledgeEntry(testKey(1), 1_700_000_000_500);
  assert.equal(chain.addEntry(e).status, 'added');
  const main = forgeChain(chain, chain.tip, 3, { entries: [e] });
  const [first, ...rest] = main;
  assert.equal((await chain.processBlock(first!)).status, 'connected');
  assert.equal(chain.mempool.size, 0);
  for (const b of forgeChain(chain, chain.tip, 2))
    assert.equal((await chain.processBlock(b)).status, 'connected');
  assert.equal(chain.tip.height, 3);
  assert.equal(rest.length, 2);
  const fork = forgeChain(chain, chain.tree.genesis, 4, { miner: testKey(2) });
  const results = [];
  for (const b of fork) results.push((await chain.processBlock(b)).status);
  assert.deepEqual(results, ['side', 'side', 'side', 'reorg']);
  assert.equal(chain.tip.height, 4);
  assert.equal(chain.mempool.size, 1, 'the entry of the reorged-out block is back in the mempool');
});
