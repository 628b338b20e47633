/**
 * bench:scale — what a node costs as its chain grows (issue #19): a real node process started
 * on an empty store (the bare node) and on stores seeded with 10,000 and 200,000 blocks of 2 entries (written straight into the
 * store by bulkSeed), its start-up time (spawn to "ready") and its RSS and V8 heap after idling
 * (BENCH_SCALE_IDLE_MS, default 60 s); then bench:chain's warm import (entries in the mempool
 * first, then blocks validated and committed in batches of 250) of 10,000 and of 20,000 blocks
 * into fresh stores, alternating, BENCH_RUNS times each (default 3), whose median rates give
 * warmImportRatio (1: linear in work).
 * Last line: one JSON object with the figures.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Cluster, seedableNetwork } from '../e2e/cluster/harness.ts';
import { Chain } from '../node/chain/chain.ts';
import { decodeEntry } from '../node/chain/entry-codec.ts';
import { genesisBlock } from '../node/chain/genesis.ts';
import { chainIdHex, type NetworkConfig } from '../node/chain/network-config.ts';
import type { SealedBlock } from '../node/chain/types.ts';
import { readNetworkConfig } from '../node/config-file.ts';
import { NodeStore } from '../node/store/node-store.ts';
import { bulkSeed } from '../node/testing/bulk-seed.ts';
import { testNetwork } from '../node/testing/forge.ts';
import { median } from './stats.ts';
import { benchBlocks } from './verify-limit.ts';

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const SIZES = (process.env.BENCH_SCALE_SIZES ?? '0,10000,200000').split(',').filter(Boolean).map(Number);
const IDLE_MS = Number(process.env.BENCH_SCALE_IDLE_MS ?? 60_000);
const WARM_BLOCKS = Number(process.env.BENCH_SCALE_WARM_BLOCKS ?? 10_000);
const ENTRIES = 2;
const BATCH = 250;
/** Warm imports of each size, alternating; their medians are the figures (this host drifts). */
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const kilo = (n: number) => `${Math.round(n / 1000)}k`;
const mb = (bytes: number | undefined) => Math.round(((bytes ?? Number.NaN) / 2 ** 20) * 10) / 10;

const openStore = (file: string, network: NetworkConfig) => {
  const genesis = genesisBlock(network);
  return NodeStore.open({
    file,
    chainIdHex: chainIdHex(network),
    genesisHashHex: genesis.hashHex,
    genesisTarget: genesis.header.target,
  });
};

/** A node on a seeded store of `blocks` blocks: start-up time, then RSS and heap after idling. */
async function nodeOn(blocks: number) {
  // Genesis far enough back that the seeded chain (one block a second) ends in the past.
  const cluster = new Cluster({
    network: seedableNetwork({ genesisTimestamp: Date.now() - (Math.max(...SIZES) + 86_400) * 1000 }),
  });
  try {
    const network = await readNetworkConfig(cluster.networkConfigPath!);
    const dataDir = path.join(cluster.runDir, `n${blocks}`);
    const seeding = performance.now();
    const store = await openStore(path.join(dataDir, 'chain.db'), network);
    await bulkSeed(store, network, { blocks, entriesPerBlock: ENTRIES });
    await store.close();
    log(`seeded ${blocks} blocks in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
    const started = performance.now();
    const node = await cluster.addNode({ name: `n${blocks}`, dataDir, bootstrap: [], mine: false });
    const startMs = Math.round(performance.now() - started);
    const height = (await node.status()).height;
    if (height !== blocks) throw new Error(`the node opened at height ${height}, not ${blocks}`);
    await new Promise((r) => setTimeout(r, IDLE_MS));
    const rssMb = mb(await node.metric('process_resident_memory_bytes'));
    const heapMb = mb(await node.metric('nodejs_heap_size_used_bytes'));
    log(
      `${blocks} blocks: started in ${startMs} ms; after ${IDLE_MS / 1000} s idle RSS ${rssMb} MB, heap ${heapMb} MB`,
    );
    return { startMs, rssMb, heapMb };
  } finally {
    await cluster.stopAll();
  }
}

/** bench:chain's warm import of the first `count` blocks into a fresh store; blocks per second. */
async function warmImport(
  blocks: readonly SealedBlock[],
  count: number,
  config: NetworkConfig,
): Promise<number> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-bench-scale-'));
  const store = await openStore(path.join(dir, 'node.db'), config);
  try {
    const chain = new Chain({
      config,
      loadBlock: (h) => store.loadBlock(h),
      entryIndex: store,
      headers: store,
      mempoolMaxEntries: count * ENTRIES,
      mempoolMaxBytes: 1 << 30,
    });
    for (const b of blocks.slice(0, count)) for (const e of b.entries) chain.addEntry(decodeEntry(e.encoded));
    await store.apply(chain.takeUpdate());
    const start = performance.now();
    for (let i = 0; i < count; i += BATCH) {
      for (const b of blocks.slice(i, Math.min(i + BATCH, count))) {
        const r = await chain.processBlock(b);
        if (r.status !== 'connected') throw new Error(`block ${b.header.height}: ${JSON.stringify(r)}`);
      }
      await store.apply(chain.takeUpdate());
    }
    const seconds = (performance.now() - start) / 1000;
    if (chain.tip.height !== count || chain.mempool.size !== 0) throw new Error('import incomplete');
    log(`warm: ${count} blocks in ${seconds.toFixed(2)} s, ${chain.tree.size} nodes in memory`);
    return count / seconds;
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const figures: Record<string, number | number[]> = {};
for (const n of SIZES) {
  const r = await nodeOn(n);
  // Size 0 is the bare node (no blocks): issue #19's bareRssMb.
  const k = n === 0 ? undefined : kilo(n);
  figures[k ? `startMs${k}` : 'bareStartMs'] = r.startMs;
  figures[k ? `rssMb${k}` : 'bareRssMb'] = r.rssMb;
  figures[k ? `heapMb${k}` : 'bareHeapMb'] = r.heapMb;
}

const config = testNetwork();
log(`generating ${2 * WARM_BLOCKS} blocks of ${ENTRIES} entries…`);
const blocks = benchBlocks(config, 2 * WARM_BLOCKS, ENTRIES);
// Untimed first, so the timed imports run compiled code.
await warmImport(blocks, Math.min(1000, WARM_BLOCKS), config);
const singles: number[] = [];
const doubles: number[] = [];
for (let i = 0; i < RUNS; i++) {
  singles.push(await warmImport(blocks, WARM_BLOCKS, config));
  doubles.push(await warmImport(blocks, 2 * WARM_BLOCKS, config));
}
const single = median(singles);
const double = median(doubles);
figures[`warmBlocksPerSec${kilo(WARM_BLOCKS)}`] = Math.round(single);
figures[`warmBlocksPerSec${kilo(2 * WARM_BLOCKS)}`] = Math.round(double);
figures.warmImportRatio = Math.round((double / single) * 100) / 100;

console.log(JSON.stringify({ idleMs: IDLE_MS, ...figures }));
