import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createEntry, merkleRootOf, signBlock } from '../chain/authoring.ts';
import type { Hex } from '../chain/bytes.ts';
import { Chain } from '../chain/chain.ts';
import { expectedTarget } from '../chain/difficulty.ts';
import { chainIdHex, type NetworkConfig } from '../chain/network-config.ts';
import { FORMAT_VERSION, type SealedBlock } from '../chain/types.ts';
import { NodeStore } from '../store/node-store.ts';
import { mineHeader, testKey } from './forge.ts';

/** The seeded chain's miner and entry author (test rosters list them as members). */
export const SEED_KEYS = [testKey(9_000), testKey(9_001)] as const;

export interface SeedOptions {
  readonly blocks: number;
  readonly entriesPerBlock?: number;
  /** Padding added to each entry's content (default none): large blocks for serving tests. */
  readonly entryPadding?: number;
  /** Timestamp gap between blocks (default: the network's block time, which keeps the target). */
  readonly spacingMs?: number;
  /** Called with each block written, in height order (tests that serve the same chain). */
  readonly onBlock?: (block: SealedBlock) => void;
}

/**
 * Writes a valid chain of `blocks` blocks straight into the store file of each data dir (as
 * `<dataDir>/chain.db`, where a node keeps it), so cluster tests and benchmarks can start nodes
 * that already hold a long chain. The network's target must be easy enough to mine quickly.
 */
export async function seedChain(
  dataDirs: readonly string[],
  network: NetworkConfig,
  opts: SeedOptions,
): Promise<{ tipHash: Hex; height: number }> {
  const stored = new Map<Hex, SealedBlock>();
  const chain = new Chain({
    config: network,
    loadBlock: async (h) => stored.get(h),
    now: () => Number.MAX_SAFE_INTEGER / 2,
    mempoolMaxEntries: 1,
  });
  const [first, ...rest] = dataDirs;
  if (!first) throw new Error('no data dir');
  await mkdir(first, { recursive: true });
  const store = await NodeStore.open({
    file: path.join(first, 'chain.db'),
    chainIdHex: chainIdHex(network),
    genesisHashHex: chain.genesis.hashHex,
  });
  const [miner, author] = SEED_KEYS;
  const spacing = opts.spacingMs ?? network.blockTimeMs;
  const pad = ' '.repeat(opts.entryPadding ?? 0);
  for (let h = 1; h <= opts.blocks; h++) {
    const parent = chain.tip;
    const ctx = chain.tree.parentContext(parent);
    const timestamp = network.genesisTimestamp + h * spacing;
    const entries = Array.from({ length: opts.entriesPerBlock ?? 0 }, (_, i) =>
      createEntry(
        { kind: 'knowledge', content: `seeded ${h}/${i}${pad}`, metadata: [] },
        author,
        timestamp - 1,
      ),
    );
    const header = mineHeader({
      version: FORMAT_VERSION,
      chainId: chain.chainId,
      height: h,
      prevHash: parent.hash,
      merkleRoot: merkleRootOf(entries),
      timestamp,
      target: expectedTarget(h, parent.header.target, (x) => ctx.timestampAt(x), network),
      miner: miner.publicKey,
      nonce: 0,
    });
    const block = signBlock(header, entries, miner);
    stored.set(block.hashHex, block);
    opts.onBlock?.(block);
    const r = await chain.processBlock(block);
    if (r.status !== 'connected') throw new Error(`seed block ${h}: ${JSON.stringify(r)}`);
    if (h % 500 === 0 || h === opts.blocks) {
      await store.apply(chain.takeUpdate());
      stored.clear();
    }
  }
  await store.close();
  for (const dir of rest) {
    await mkdir(dir, { recursive: true });
    await copyFile(path.join(first, 'chain.db'), path.join(dir, 'chain.db'));
    // A WAL that was not checkpointed on close holds committed pages too.
    await copyFile(path.join(first, 'chain.db-wal'), path.join(dir, 'chain.db-wal')).catch(() => {});
  }
  return { tipHash: chain.tip.hashHex, height: chain.tip.height };
}
