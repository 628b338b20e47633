/**
 * Building blocks for tests and benchmarks: a fast test network, keys, entries and blocks that
 * are properly mined and signed — optionally with one field overridden to break exactly one rule.
 */
import { createEntry, merkleRootOf, signBlock } from '../chain/authoring.ts';
import { encodeHeader } from '../chain/block-codec.ts';
import type { BlockNode } from '../chain/block-tree.ts';
import type { Hex } from '../chain/bytes.ts';
import { Chain, type ChainOptions, type ProcessResult } from '../chain/chain.ts';
import { expectedTarget } from '../chain/difficulty.ts';
import { DEFAULT_NETWORK, type NetworkConfig } from '../chain/network-config.ts';
import { MAX_TARGET } from '../chain/pow.ts';
import { keyPairFromSeed, type SigningKey, verifyNative } from '../chain/signature.ts';
import { type BlockHeader, FORMAT_VERSION, type SealedBlock, type SealedEntry } from '../chain/types.ts';
import { medianTimePast } from '../chain/validation.ts';
import { searchNonce } from '../mining/nonce-search.ts';

/** A network where one hash in four meets the easiest target, so tests mine instantly. */
export function testNetwork(overrides: Partial<NetworkConfig> = {}): NetworkConfig {
  return {
    ...DEFAULT_NETWORK,
    name: 'cairn-test',
    genesisTimestamp: 1_700_000_000_000,
    initialTarget: MAX_TARGET >> 2n,
    minTarget: 1n,
    maxTarget: MAX_TARGET >> 2n,
    ...overrides,
  };
}

/** Deterministic key number `n`. */
export function testKey(n: number): SigningKey {
  const seed = new Uint8Array(32);
  new DataView(seed.buffer).setUint32(0, n + 1);
  return keyPairFromSeed(seed);
}

let entryCounter = 0;
export function knowledgeEntry(key: SigningKey, timestamp: number, content?: string): SealedEntry {
  return createEntry(
    { kind: 'knowledge', content: content ?? `fact #${entryCounter++}`, metadata: [['topic', 'test']] },
    key,
    timestamp,
  );
}

/** Finds a nonce for a header; throws if none is found in a generous budget. */
export function mineHeader(header: BlockHeader): BlockHeader {
  const nonce = searchNonce(encodeHeader(header), header.target, 0, 50_000_000);
  if (nonce === null) throw new Error('no nonce found');
  return { ...header, nonce };
}

/** Finds a nonce whose hash does NOT meet the target (for the insufficient-work test). */
export function unmineHeader(header: BlockHeader): BlockHeader {
  for (let nonce = 0; ; nonce++) {
    const h = { ...header, nonce };
    if (searchNonce(encodeHeader(h), header.target, nonce, 1) === null) return h;
  }
}

export interface ForgeOptions {
  readonly entries?: readonly SealedEntry[];
  readonly miner?: SigningKey;
  /** Milliseconds after the parent (default: one block time). */
  readonly gapMs?: number;
  readonly header?: Partial<BlockHeader>;
  /** Skip mining (the header as given must already be acceptable or is meant to fail PoW). */
  readonly mine?: boolean;
}

/** A valid block on `parent` as `chain` sees it, with optional overrides applied before mining and signing. */
export function forgeBlock(chain: Chain, parent: BlockNode, opts: ForgeOptions = {}): SealedBlock {
  const entries = opts.entries ?? [];
  const ctx = chain.tree.parentContext(parent);
  const height = parent.height + 1;
  const timestamp = Math.max(
    parent.header.timestamp + (opts.gapMs ?? chain.config.blockTimeMs),
    medianTimePast(ctx, chain.config.medianTimeSpan) + 1,
  );
  const miner = opts.miner ?? testKey(0);
  let header: BlockHeader = {
    version: FORMAT_VERSION,
    chainId: chain.chainId,
    height,
    prevHash: parent.hash,
    merkleRoot: merkleRootOf(entries),
    timestamp,
    target: expectedTarget(height, parent.header.target, (h) => ctx.timestampAt(h), chain.config),
    miner: miner.publicKey,
    nonce: 0,
    ...opts.header,
  };
  if (opts.mine !== false) header = mineHeader(header);
  return signBlock(header, entries, miner);
}

/** Forges `n` blocks in a row on `parent` (without adding them to the chain). */
export function forgeChain(
  chain: Chain,
  parent: BlockNode,
  n: number,
  opts: ForgeOptions = {},
): SealedBlock[] {
  // A scratch chain that accepts them lets each next block see its real ancestors.
  const out: SealedBlock[] = [];
  let tip = parent;
  const scratch = new Map<string, BlockNode>();
  for (let i = 0; i < n; i++) {
    const b = forgeBlock(chain, tip, opts);
    out.push(b);
    const node = scratchNode(b, tip);
    scratch.set(b.hashHex, node);
    tip = node;
  }
  return out;
}

/** Forges consecutive blocks on `parent`, one per element of `perBlock`, each with its own options. */
export function forgeBranch(
  chain: Chain,
  parent: BlockNode,
  perBlock: readonly ForgeOptions[],
): SealedBlock[] {
  const out: SealedBlock[] = [];
  let tip = parent;
  for (const opts of perBlock) {
    const b = forgeBlock(chain, tip, opts);
    out.push(b);
    tip = scratchNode(b, tip);
  }
  return out;
}

/**
 * A stand-in tree node for a block the chain does not hold (rejected, withheld or not yet
 * sent), so that blocks can be forged on top of it.
 */
export function scratchNode(block: SealedBlock, parent: BlockNode): BlockNode {
  return {
    hash: block.hash,
    hashHex: block.hashHex,
    header: block.header,
    parent,
    height: parent.height + 1,
    chainWork: 0n,
    entryIds: block.entries.map((e) => e.idHex),
    onMain: false,
  };
}

export interface TestChain {
  readonly chain: Chain;
  /** Every block handed to `submit`, as a store would hold them; `loadBlock` reads from here. */
  readonly stored: Map<Hex, SealedBlock>;
  /** The chain's clock; tests move it by assigning `clock.now`. */
  readonly clock: { now: number };
  submit(block: SealedBlock, from?: string): Promise<ProcessResult>;
}

/** The fixed "current time" of test chains: well after the test network's genesis. */
export const TEST_NOW = 1_800_000_000_000;

/** A test chain whose signature checks are counted (each really verified, none cached). */
export function countingChain(
  overrides: Partial<NetworkConfig> = {},
  options: Partial<Omit<ChainOptions, 'config' | 'loadBlock' | 'now' | 'verifier'>> = {},
): { t: TestChain; calls: () => number } {
  let calls = 0;
  const t = testChain(overrides, {
    ...options,
    verifier: {
      verify(s, m, p) {
        calls++;
        return verifyNative(s, m, p);
      },
    },
  });
  return { t, calls: () => calls };
}

/** A chain on the test network (with config overrides) whose block store is an in-memory map. */
export function testChain(
  overrides: Partial<NetworkConfig> = {},
  options: Partial<Omit<ChainOptions, 'config' | 'loadBlock' | 'now'>> = {},
): TestChain {
  const stored = new Map<Hex, SealedBlock>();
  const clock = { now: TEST_NOW };
  const chain = new Chain({
    ...options,
    config: testNetwork(overrides),
    loadBlock: async (hashHex) => stored.get(hashHex),
    now: () => clock.now,
  });
  return {
    chain,
    stored,
    clock,
    submit(block, from) {
      stored.set(block.hashHex, block);
      return chain.processBlock(block, from);
    },
  };
}
