/**
 * A node reopened on a long stored chain (50,000 blocks of 2 entries, written straight into the
 * store) holds only its window of recent headers: it validates a new block on the tip, refuses a
 * block and an entry that repeat an old entry (through the store's entry index), reorgs to a
 * chain that forks below the window, and answers blocks-by-range and headers-by-range from deep
 * history over real libp2p hosts, while the tree stays bounded by the window.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { PeerId } from '@libp2p/interface';
import type { Hex } from '../chain/bytes.ts';
import { Chain, type ProcessResult } from '../chain/chain.ts';
import { genesisBlock } from '../chain/genesis.ts';
import { CHAIN_WINDOW_DEFAULTS } from '../chain/header-store.ts';
import { chainIdHex } from '../chain/network-config.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import { createLogger } from '../log.ts';
import type { Status } from '../p2p/messages.ts';
import { BLOCKS_BY_RANGE, HEADERS_BY_RANGE } from '../p2p/protocols.ts';
import { ReqResp } from '../p2p/reqresp.ts';
import { serveChainProtocols } from '../p2p/serve-chain.ts';
import { bulkSeed } from '../testing/bulk-seed.ts';
import { forgeBlock, forgeChain, knowledgeEntry, TEST_NOW, testKey, testNetwork } from '../testing/forge.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { NodeStore } from './node-store.ts';

const config = testNetwork();
const GENESIS = genesisBlock(config);
const BLOCKS = Number(process.env.LONG_CHAIN_BLOCKS ?? 50_000);
const OLD = 100;

const openStore = (file: string) =>
  NodeStore.open({
    file,
    chainIdHex: chainIdHex(config),
    genesisHashHex: GENESIS.hashHex,
    genesisTarget: GENESIS.header.target,
  });

test('a node reopened on 50,000 stored blocks holds a window: validates, refuses old entries, reorgs below it, serves deep ranges', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-long-'));
  const dirs: string[] = [];
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'chain.db');

  let t0 = performance.now();
  const seeding = await openStore(file);
  let old: SealedBlock | undefined;
  const seeded = await bulkSeed(seeding, config, {
    blocks: BLOCKS,
    onBlock: (b) => {
      if (b.header.height === OLD) old = b;
    },
  });
  await seeding.close();
  t.diagnostic(`seeded ${BLOCKS} blocks in ${(performance.now() - t0).toFixed(0)} ms`);

  t0 = performance.now();
  const store = await openStore(file);
  t.after(() => store.close());
  const chain = new Chain({
    config,
    loadBlock: (h) => store.loadBlock(h),
    entryIndex: store,
    headers: store,
    now: () => TEST_NOW,
    recentBlockCache: 16,
  });
  chain.restore(await store.load({ window: chain.windowSize }));
  t.diagnostic(`opened in ${(performance.now() - t0).toFixed(0)} ms, window ${chain.windowSize}`);
  assert.equal(chain.tip.height, BLOCKS);
  assert.equal(chain.tip.hashHex, seeded.tipHashHex);
  // The window's main-chain blocks and genesis, nothing older.
  assert.equal(chain.tree.size, chain.windowSize + 2);
  assert.equal(chain.tree.base, BLOCKS - chain.windowSize);
  assert.equal(chain.tree.get(old!.hashHex), undefined, 'an old block is not in memory');
  assert.equal(
    chain.tree.mainAt(OLD)?.hashHex,
    old!.hashHex,
    'but the main chain there is read from the store',
  );

  const submit = async (b: SealedBlock): Promise<ProcessResult> => {
    const r = await chain.processBlock(b);
    await store.apply(chain.takeUpdate());
    return r;
  };
  const fresh = (tag: string): SealedEntry =>
    knowledgeEntry(testKey(5), chain.tip.header.timestamp, `long ${tag}`);

  // A new block on the tip.
  assert.equal((await submit(forgeBlock(chain, chain.tip, { entries: [fresh('a')] }))).status, 'connected');

  // An old entry again: the block and the entry are refused, from the store's index.
  const oldEntry = old!.entries[1]!;
  const dup = await submit(forgeBlock(chain, chain.tip, { entries: [fresh('b'), oldEntry] }));
  assert.equal(dup.status === 'invalid' && dup.error.code, 'entry-already-included');
  const again = chain.addEntry(oldEntry);
  assert.equal(again.status === 'rejected' && again.reason, 'already-included');
  assert.equal(chain.mainBlockOf(oldEntry.idHex)?.hashHex, old!.hashHex);

  // A heavier chain forking 100 blocks below the window (a device that mined alone for a while).
  const forkHeight = chain.tree.base - 100;
  const fork = chain.tree.mainAt(forkHeight)!;
  assert.equal(chain.tree.get(fork.hashHex), undefined);
  const depth = chain.tip.height - forkHeight;
  const oldTip = chain.tip;
  const rival = forgeChain(chain, fork, depth + 1, { miner: testKey(21) });
  t0 = performance.now();
  let last: ProcessResult | undefined;
  for (let i = 0; i < rival.length; i += 64) {
    for (const b of rival.slice(i, i + 64)) last = await chain.processBlock(b);
    await store.apply(chain.takeUpdate());
  }
  t.diagnostic(`${rival.length}-block rival chain imported in ${(performance.now() - t0).toFixed(0)} ms`);
  assert.deepEqual(last, { status: 'reorg', hashHex: rival.at(-1)!.hashHex, depth });
  assert.equal(chain.tip.hashHex, rival.at(-1)!.hashHex);
  assert.ok(chain.tree.base <= forkHeight, 'the reorg brought the main chain down to its fork point');

  // The next block lets the window move up again: the tree is bounded by the window (its main
  // chain) and the reorged-out chain, which stays until the window passes it.
  assert.equal((await submit(forgeBlock(chain, chain.tip, { entries: [fresh('c')] }))).status, 'connected');
  assert.ok(
    chain.tree.base >= chain.tip.height - chain.windowSize - CHAIN_WINDOW_DEFAULTS.evictEvery,
    `base ${chain.tree.base} at tip ${chain.tip.height}`,
  );
  assert.ok(chain.tree.size <= 3 * chain.windowSize, `${chain.tree.size} nodes in memory`);
  t.diagnostic(`after the reorg and one block: ${chain.tree.size} nodes in memory, base ${chain.tree.base}`);
  // The reorged-out chain keeps its path down to the fork point: a block on it still validates.
  const onOld = forgeBlock(chain, chain.tree.get(oldTip.hashHex)!, { miner: testKey(22) });
  assert.equal((await submit(onOld)).status, 'side');
  // The entry of the block the reorg took out is back in the pool, and an entry from before the
  // fork is still refused.
  assert.equal(chain.addEntry(oldEntry).status, 'rejected');

  // Deep history over the wire, from the store.
  const side = async (seed: number) => {
    const { host, identity } = await startLoopbackHost(seed, 'long', dirs);
    const rr = new ReqResp(
      host,
      '/cairn/long-test',
      { penalise: () => {}, observe: () => {} },
      createLogger('silent'),
    );
    return { host, id: identity.peerId, rr };
  };
  const server = await side(41);
  const client = await side(42);
  t.after(async () => {
    await Promise.all([server.host.stop(), client.host.stop()]);
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  await serveChainProtocols(server.rr, chain, store, { receiveStatus: (_p: PeerId, s: Status) => s });
  await client.host.dial(server.host.getMultiaddrs());
  const want = store.mainHeaders(1_000, 1_063).map((h) => h.hashHex);
  assert.equal(want.length, 64);
  for (const h of want) assert.equal(chain.tree.get(h), undefined);
  const got = await client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1_000, count: 64 });
  assert.deepEqual(
    got.map((b) => b.hashHex as Hex),
    want,
  );
  const headers = await client.rr.request(server.id, HEADERS_BY_RANGE, { startHeight: OLD, count: 8 });
  assert.deepEqual(
    headers.map((h) => [h.header.height, h.hashHex]),
    store.mainHeaders(OLD, OLD + 7).map((h) => [h.height, h.hashHex]),
  );
  assert.equal(headers[0]!.hashHex, old!.hashHex);
});
