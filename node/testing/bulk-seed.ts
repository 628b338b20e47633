import { createEntry, merkleRootOf, signBlock } from '../chain/authoring.ts';
import type { BlockNode } from '../chain/block-tree.ts';
import type { ChainUpdate } from '../chain/chain.ts';
import { expectedTarget } from '../chain/difficulty.ts';
import { genesisBlock } from '../chain/genesis.ts';
import { chainIdOf, type NetworkConfig } from '../chain/network-config.ts';
import { workForTarget } from '../chain/pow.ts';
import { FORMAT_VERSION, type SealedBlock } from '../chain/types.ts';
import type { NodeStore } from '../store/node-store.ts';
import { mineHeader } from './forge.ts';
import { SEED_KEYS } from './seed-store.ts';

export interface BulkSeedOptions {
  readonly blocks: number;
  readonly entriesPerBlock?: number;
  /** Blocks per store transaction (default 2,000). */
  readonly batch?: number;
  /** Called with each block written, in height order. */
  readonly onBlock?: (block: SealedBlock) => void;
}

/**
 * Writes a long valid chain straight into an open store through its own write path (apply), in
 * big transactions and without validating or indexing anything in memory: what lets a test
 * reopen a node on 50,000 blocks in seconds (seedChain validates every block through a Chain,
 * which costs about a millisecond per block and holds them all). Blocks are one block time
 * apart, so the target never moves; entries are real signed entries, as the miner's block is.
 */
export async function bulkSeed(
  store: NodeStore,
  network: NetworkConfig,
  opts: BulkSeedOptions,
): Promise<{ tipHashHex: string; height: number }> {
  const genesis = genesisBlock(network);
  const chainId = chainIdOf(network);
  const [miner, author] = SEED_KEYS;
  const batch = opts.batch ?? 2_000;
  const ts = (h: number) => network.genesisTimestamp + h * network.blockTimeMs;
  let parent = {
    hash: genesis.hash,
    target: genesis.header.target,
    work: workForTarget(genesis.header.target),
  };
  let pending: ChainUpdate['blocks'][number][] = [];
  let head: BlockNode | undefined;
  const flush = async () => {
    if (!pending.length) return;
    await store.apply({
      blocks: pending,
      head,
      finalized: undefined,
      stale: new Map(),
      orphans: new Map(),
      mempool: new Map(),
      events: [],
    });
    pending = [];
  };
  for (let h = 1; h <= opts.blocks; h++) {
    const timestamp = ts(h);
    const entries = Array.from({ length: opts.entriesPerBlock ?? 2 }, (_, i) =>
      createEntry({ kind: 'knowledge', content: `bulk ${h}/${i}`, metadata: [] }, author, timestamp - 1),
    );
    const header = mineHeader({
      version: FORMAT_VERSION,
      chainId,
      height: h,
      prevHash: parent.hash,
      merkleRoot: merkleRootOf(entries),
      timestamp,
      target: expectedTarget(h, parent.target, ts, network),
      miner: miner.publicKey,
      nonce: 0,
    });
    const block = signBlock(header, entries, miner);
    const work = parent.work + workForTarget(header.target);
    // What apply reads of a node: its hash, height and cumulative work.
    head = {
      hash: block.hash,
      hashHex: block.hashHex,
      header,
      parent: undefined,
      height: h,
      chainWork: work,
      entryIds: [],
      onMain: true,
    };
    pending.push({ block, node: head, receivedAt: timestamp });
    opts.onBlock?.(block);
    parent = { hash: block.hash, target: header.target, work };
    if (pending.length >= batch) await flush();
  }
  await flush();
  return { tipHashHex: head?.hashHex ?? genesis.hashHex, height: opts.blocks };
}
