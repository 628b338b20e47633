/**
 * Entries a reorg hands back are never lost silently: when they are more than the mempool
 * holds, the rest wait in a counted hold until they fit or a block includes them, they push
 * out peers' entries (never the other way round), and the admitted ones are announced again.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Hex } from '../chain/bytes.ts';
import { Chain } from '../chain/chain.ts';
import { chainIdHex } from '../chain/network-config.ts';
import { CachedVerifier } from '../chain/signature-cache.ts';
import type { SealedEntry } from '../chain/types.ts';
import { createLogger } from '../log.ts';
import { createNodeMetrics } from '../metrics.ts';
import { ChainService } from '../service/chain-service.ts';
import { NodeStore } from '../store/node-store.ts';
import {
  forgeBlock,
  forgeChain,
  knowledgeEntry,
  TEST_NOW,
  testChain,
  testKey,
  testNetwork,
} from '../testing/forge.ts';
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
  for (const e of mined) assert.equal(chain.mainBlockOf(e.idHex) !== undefined, true);
});

/** A node's chain, store and service over `dir`, rebuilt from the store as on start. */
async function openNode(dir: string, mempoolMaxEntries: number) {
  const config = testNetwork();
  let store: NodeStore | undefined;
  const chain = new Chain({
    config,
    loadBlock: (h) => store!.loadBlock(h),
    now: () => TEST_NOW,
    mempoolMaxEntries,
  });
  store = await NodeStore.open({
    file: path.join(dir, 'chain.db'),
    chainIdHex: chainIdHex(config),
    genesisHashHex: chain.genesis.hashHex,
  });
  chain.restore(await store.load());
  const service = new ChainService(
    chain,
    store,
    new CachedVerifier(),
    undefined,
    createNodeMetrics(),
    createLogger('silent'),
  );
  return { chain, store, service, pool: chain.mempool };
}

test('returned entries survive restarts mid-way: none lost, none pushed out by peers after reopening', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-returned-'));
  try {
    let node = await openNode(dir, 5);
    const mined = Array.from({ length: 20 }, entry);
    const genesis = node.chain.tip;
    const a1 = forgeBlock(node.chain, genesis, { entries: mined });
    assert.equal((await node.service.submitBlocks([a1], 'test'))[0]!.status, 'connected');
    const fork = forgeChain(node.chain, genesis, 2, { miner: testKey(1) });
    assert.equal((await node.service.submitBlocks(fork, 'test'))[1]!.status, 'reorg');
    assert.equal(node.pool.size, 5);
    assert.equal(node.pool.returned.size, 15);
    const returned = new Set(mined.map((e) => e.idHex));
    /** Where each returned entry is now: pool, hold or main chain; none may be anywhere else. */
    const whereabouts = () => {
      const out = { pool: 0, held: 0, mined: 0, lost: 0 };
      for (const id of returned) {
        if (node.pool.has(id)) out.pool++;
        else if (node.pool.returned.has(id)) out.held++;
        else if (node.chain.mainBlockOf(id) !== undefined) out.mined++;
        else out.lost++;
      }
      return out;
    };
    const restart = async () => {
      await node.store.close();
      node = await openNode(dir, 5);
    };

    await restart();
    assert.deepEqual(whereabouts(), { pool: 5, held: 15, mined: 0, lost: 0 });
    // Peers still cannot push a returned entry out of the reopened pool.
    const flood = await node.service.submitEntries(
      Array.from({ length: 10 }, (_, i) => ({ entry: entry(), source: `mallory-${i}` })),
    );
    assert.ok(
      flood.every((r) => r.status === 'rejected' && r.quota === 'pool'),
      JSON.stringify(flood.map((r) => r.status)),
    );
    assert.deepEqual(whereabouts(), { pool: 5, held: 15, mined: 0, lost: 0 });

    // A block takes the pool's 5; the hold refills the pool; restart between every step.
    while (whereabouts().mined < 20) {
      const batch = node.pool.all();
      assert.ok(batch.length > 0, JSON.stringify(whereabouts()));
      const b = forgeBlock(node.chain, node.chain.tip, { entries: batch });
      assert.equal((await node.service.submitBlocks([b], 'test'))[0]!.status, 'connected');
      await restart();
      await node.service.readmitHeld();
      await restart();
      assert.equal(whereabouts().lost, 0, JSON.stringify(whereabouts()));
    }
    assert.deepEqual(whereabouts(), { pool: 0, held: 0, mined: 20, lost: 0 });
    await node.store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
