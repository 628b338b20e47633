/**
 * Entries a reorg hands back are never lost silently: when they are more than the mempool
 * holds, the rest wait in a counted hold until they fit or a block includes them, they push
 * out peers' entries (never the other way round), and the admitted ones are announced again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Hex } from '../chain/bytes.ts';
import { CachedVerifier } from '../chain/signature-cache.ts';
import type { SealedEntry } from '../chain/types.ts';
import { createLogger } from '../log.ts';
import { createNodeMetrics } from '../metrics.ts';
import { ChainService } from '../service/chain-service.ts';
import type { NodeStore } from '../store/node-store.ts';
import { forgeBlock, forgeChain, knowledgeEntry, TEST_NOW, testChain, testKey } from '../testing/forge.ts';
import { SOURCE } from './mempool.ts';
import { ReturnedEntries } from './returned-entries.ts';

let n = 0;
const entry = () => knowledgeEntry(testKey(500 + (n % 7)), TEST_NOW - 1000, `returned ${n++}`);

test('a reorg that returns more entries than the mempool holds loses none of them (counted)', async () => {
  const t = testChain({}, { mempoolMaxEntries: 5 });
  const { chain } = t;
  let commits = 0;
  const store = { apply: async () => void commits++ } as unknown as NodeStore;
  const service = new ChainService(
    chain,
    store,
    new CachedVerifier(),
    undefined,
    createNodeMetrics(),
    createLogger('silent'),
  );
  const pool = chain.mempool;
  const mined = Array.from({ length: 20 }, entry);
  const genesis = chain.tip;
  const a1 = forgeBlock(chain, genesis, { entries: mined });
  assert.equal((await service.submitBlocks([a1], 'test'))[0]!.status, 'connected');
  // A stranger's entries fill the pool.
  const flood = Array.from({ length: 5 }, entry);
  await service.submitEntries(flood.map((e, i) => ({ entry: e, source: `mallory-${i}` })));
  assert.equal(pool.size, 5);

  // A heavier fork without a1: its 20 entries come back.
  const fork = forgeChain(chain, genesis, 2, { miner: testKey(1) });
  const results = await service.submitBlocks(fork, 'test');
  assert.equal(results[1]!.status, 'reorg');
  const c = pool.returned.counts;
  const accounted = () => c.readmitted + c.mined + c.invalid + c.dropped + pool.returned.size;
  assert.equal(pool.returnedTotal, 20);
  assert.equal(accounted(), 20, JSON.stringify({ ...c, held: pool.returned.size }));
  // They pushed out the stranger's entries, and the rest are held, not dropped.
  assert.equal(pool.size, 5);
  assert.deepEqual(
    pool.ids(),
    mined.slice(0, 5).map((e) => e.idHex),
  );
  assert.equal(pool.returned.size, 15);
  assert.equal(c.dropped, 0);
  for (const e of flood) assert.equal(pool.has(e.idHex), false);
  // The readmitted ones are announced again (their block no longer carries them).
  assert.deepEqual(
    (await service.readmitHeld()).map((e) => e.idHex),
    mined.slice(0, 5).map((e) => e.idHex),
  );
  // A peer cannot push a returned entry out.
  const r = await service.submitEntries([{ entry: entry(), source: 'mallory' }]);
  assert.equal(r[0]!.status === 'rejected' && r[0]!.quota, 'pool');

  // A block includes the 5 in the pool and 3 of the held ones; 5 more then fit.
  const b3 = forgeBlock(chain, chain.tip, { entries: [...mined.slice(0, 5), ...mined.slice(17)] });
  assert.equal((await service.submitBlocks([b3], 'test'))[0]!.status, 'connected');
  assert.equal(c.mined, 3);
  const back = await service.readmitHeld();
  assert.deepEqual(
    back.map((e) => e.idHex),
    mined.slice(5, 10).map((e) => e.idHex),
  );
  assert.equal(pool.returned.size, 7);
  assert.equal(accounted(), 20);

  // Until every one of them is mined.
  const included = new Set<Hex>([...mined.slice(0, 5), ...mined.slice(17)].map((e) => e.idHex));
  while (included.size < 20) {
    const batch: SealedEntry[] = pool.all();
    const b = forgeBlock(chain, chain.tip, { entries: batch });
    assert.equal((await service.submitBlocks([b], 'test'))[0]!.status, 'connected');
    for (const e of batch) included.add(e.idHex);
    await service.readmitHeld();
    assert.equal(accounted(), 20);
  }
  assert.equal(pool.returned.size, 0);
  assert.equal(c.readmitted + c.mined, 20);
  for (const e of mined) assert.equal(chain.tree.includedInMain(e.idHex), true);
});

test('the hold has a generous bound; what goes over it is counted as dropped', () => {
  const hold = new ReturnedEntries(3, 1_000_000);
  const es = Array.from({ length: 5 }, entry);
  const dropped = es.flatMap((e) => hold.hold(e));
  assert.deepEqual(
    dropped.map((e) => e.idHex),
    es.slice(0, 2).map((e) => e.idHex),
  );
  assert.equal(hold.counts.dropped, 2);
  assert.equal(hold.size, 3);
});

test('without the returned mark (tools adding directly) the pool keeps its old oldest-first eviction', () => {
  const t = testChain({}, { mempoolMaxEntries: 2 });
  const [a, b, c] = [entry(), entry(), entry()];
  for (const e of [a, b, c]) t.chain.addEntry(e!);
  assert.deepEqual(t.chain.mempool.ids(), [b!.idHex, c!.idHex]);
  assert.equal(
    t.chain.mempool.withSource(SOURCE.local, () => t.chain.mempool.size),
    2,
  );
});
