/**
 * The process that crash.test.ts kills: it opens the store in the directory given as the first
 * argument, restores the chain from it and then forges and imports blocks until it is killed —
 * batches of 1..50 blocks with several entries each, committed with one apply per batch, now and
 * then a short fork that reorgs the tip, an orphan whose parent arrives a batch later, and fresh
 * mempool entries. It prints `running <height> <tipHash>` once restored and
 * `committed <height> <tipHash>` after every apply that returned (stdout to a pipe is synchronous,
 * so a printed line was written before anything that follows it).
 *
 * Usage: node --import tsx node/store/crash-child.ts <dir> [seed] [maxBatches]
 */
import path from 'node:path';
import { Chain } from '../chain/chain.ts';
import { genesisBlock } from '../chain/genesis.ts';
import { chainIdHex } from '../chain/network-config.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import {
  type ForgeOptions,
  forgeBranch,
  knowledgeEntry,
  TEST_NOW,
  testKey,
  testNetwork,
} from '../testing/forge.ts';
import { seededRandom } from '../testing/prng.ts';
import { NodeStore } from './node-store.ts';

const [dir, seedArg = '1', maxArg = 'Infinity'] = process.argv.slice(2);
if (!dir) throw new Error('usage: crash-child.ts <dir> [seed] [maxBatches]');
const seed = Number(seedArg);
const maxBatches = Number(maxArg);

const rng = seededRandom;

const config = testNetwork();
const store = await NodeStore.open({
  file: path.join(dir, 'store.db'),
  chainIdHex: chainIdHex(config),
  genesisHashHex: genesisBlock(config).hashHex,
});
const chain = new Chain({ config, loadBlock: (h) => store.loadBlock(h), now: () => TEST_NOW });
chain.restore(await store.load());
process.stdout.write(`running ${chain.tip.height} ${chain.tip.hashHex}\n`);

const rand = rng(seed);
const author = testKey(10);
const miners = [testKey(0), testKey(11), testKey(12)];
let counter = 0;
const fresh = () => knowledgeEntry(author, TEST_NOW - 60_000, `crash ${seed} ${process.pid} ${counter++}`);
const pick = <T>(items: readonly T[]) => items[Math.floor(rand() * items.length)]!;

async function importAll(blocks: readonly SealedBlock[]): Promise<void> {
  for (const b of blocks) {
    const r = await chain.processBlock(b, 'crash-peer');
    if (r.status === 'invalid') throw new Error(`forged block rejected: ${r.error.message}`);
  }
}

let withheld: SealedBlock | undefined;
for (let batch = 0; batch < maxBatches; batch++) {
  // A parent withheld last batch arrives: its orphan connects (on the side, or as a reorg).
  if (withheld) await importAll([withheld]);
  withheld = undefined;

  // New entries reach the mempool; blocks take up to two of those each plus fresh ones.
  for (let i = Math.floor(rand() * 8); i > 0; i--) chain.addEntry(fresh());
  const pool: SealedEntry[] = chain.mempool.all();
  const n = 1 + Math.floor(rand() * 50);
  const perBlock: ForgeOptions[] = Array.from({ length: n }, () => ({
    miner: pick(miners),
    entries: [
      ...pool.splice(0, Math.floor(rand() * 3)),
      ...Array.from({ length: 2 + Math.floor(rand() * 3) }, fresh),
    ],
  }));
  await importAll(forgeBranch(chain, chain.tip, perBlock));

  const roll = rand();
  if (roll < 0.2 && chain.tip.height >= 3) {
    // A short fork from two below the tip, one block longer: a reorg of depth 2.
    const base = chain.tree.mainAt(chain.tip.height - 2)!;
    const fork = forgeBranch(
      chain,
      base,
      Array.from({ length: 3 }, () => ({ miner: testKey(13), entries: [fresh(), fresh()] })),
    );
    await importAll(fork);
  } else if (roll < 0.4) {
    // Two blocks on the tip, the child sent first: an orphan until its parent comes next batch.
    const [parent, child] = forgeBranch(chain, chain.tip, [
      { miner: testKey(14), entries: [fresh()] },
      { miner: testKey(14), entries: [fresh(), fresh()] },
    ]);
    await importAll([child!]);
    withheld = parent;
  }

  await store.apply(chain.takeUpdate());
  process.stdout.write(`committed ${chain.tip.height} ${chain.tip.hashHex}\n`);
}
await store.close();
