/**
 * The physical limit of block import on this machine, measured in the same run as the import
 * it qualifies: the signature worker pool checking a set of blocks' signatures alone, with
 * nothing else running. This host's speed drifts by up to 3× within minutes, so an import rate
 * is reported together with the share of this limit it reaches.
 */
import { merkleRootOf, signBlock } from '../node/chain/authoring.ts';
import { Chain } from '../node/chain/chain.ts';
import type { NetworkConfig } from '../node/chain/network-config.ts';
import { CachedVerifier } from '../node/chain/signature-cache.ts';
import { FORMAT_VERSION, type SealedBlock } from '../node/chain/types.ts';
import type { VerifyPool } from '../node/chain/verify-pool.ts';
import { knowledgeEntry, mineHeader, testKey } from '../node/testing/forge.ts';

/** Signatures a block carries: the miner's and one per entry. */
export const signaturesOf = (b: SealedBlock): number => 1 + b.entries.length;

/**
 * A valid chain of `count` blocks of `entriesPerBlock` entries on `config` (whose initial target
 * must be easy), every block on schedule so every retarget keeps the target.
 */
export function benchBlocks(config: NetworkConfig, count: number, entriesPerBlock: number): SealedBlock[] {
  const scratch = new Chain({ config, loadBlock: async () => undefined });
  const miner = testKey(0);
  const authors = Array.from({ length: 16 }, (_, i) => testKey(100 + i));
  const blocks: SealedBlock[] = [];
  let prev = scratch.genesis;
  for (let h = 1; h <= count; h++) {
    const ts = config.genesisTimestamp + h * config.blockTimeMs;
    const entries = Array.from({ length: entriesPerBlock }, (_, i) =>
      knowledgeEntry(
        authors[(h + i) % authors.length]!,
        ts - 1000,
        `block ${h} entry ${i}: ${'x'.repeat(100)}`,
      ),
    );
    const header = mineHeader({
      version: FORMAT_VERSION,
      chainId: scratch.chainId,
      height: h,
      prevHash: prev.hash,
      merkleRoot: merkleRootOf(entries),
      timestamp: ts,
      target: config.initialTarget,
      miner: miner.publicKey,
      nonce: 0,
    });
    prev = signBlock(header, entries, miner);
    blocks.push(prev);
  }
  return blocks;
}

/**
 * Signatures per second the pool verifies for `blocks` in batches of `batch`, two batches in
 * flight (as import keeps it fed), with a fresh cache so every signature is really checked.
 */
export async function poolVerifyPerSec(
  pool: VerifyPool,
  blocks: readonly SealedBlock[],
  batch = 250,
): Promise<number> {
  // Untimed first: the workers' first batches run in V8's first tiers.
  await pool.verifyBlocks(blocks.slice(0, batch * 2), new CachedVerifier());
  const cache = new CachedVerifier();
  let signatures = 0;
  for (const b of blocks) signatures += signaturesOf(b);
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < blocks.length; i += batch) {
    inFlight.push(pool.verifyBlocks(blocks.slice(i, i + batch), cache));
    if (inFlight.length >= 2) await inFlight.shift();
  }
  await Promise.all(inFlight);
  return Math.round(signatures / ((performance.now() - start) / 1000));
}

/** Blocks per second × signatures per block ÷ the pool's rate: the share of the limit reached. */
export const efficiency = (blocksPerSec: number, signaturesPerBlock: number, limitPerSec: number): number =>
  Number(((blocksPerSec * signaturesPerBlock) / limitPerSec).toFixed(3));
