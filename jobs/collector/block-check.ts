/**
 * What a `block.accepted` report must prove before the collector indexes it, judged with the
 * chain's own pure rules (node/chain): the block is rebuilt from the header and entry encodings
 * the report carries, so every field the index stores is derived from bytes whose hash, proof of
 * work and signatures were checked, never taken from the report's word.
 */
import { decodeHeader, sealBlock } from '../../node/chain/block-codec.ts';
import { fromHex, toHex } from '../../node/chain/bytes.ts';
import { DecodeError } from '../../node/chain/codec/errors.ts';
import { decodeEntry } from '../../node/chain/entry-codec.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf, type NetworkConfig } from '../../node/chain/network-config.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import { CachedVerifier, type SignatureVerifier } from '../../node/chain/signature-cache.ts';
import type { SealedBlock, SealedEntry } from '../../node/chain/types.ts';
import {
  BlockValidationError,
  type ParentContext,
  validateBlockBody,
  validateBlockContext,
  validateHeader,
} from '../../node/chain/validation.ts';
import type { BlockAcceptedReport } from '../payloads.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';

/** The network the collector indexes: the trust anchor every report is judged against. */
export interface IndexedNetwork {
  readonly config: NetworkConfig;
  readonly chainId: Uint8Array;
  readonly genesis: SealedBlock;
  /** Cumulative work of the genesis block (the chain's BlockTree counts its target). */
  readonly genesisWork: bigint;
  readonly verifier: SignatureVerifier;
}

export function indexedNetwork(config: NetworkConfig, verifier: SignatureVerifier = new CachedVerifier()) {
  const genesis = genesisBlock(config);
  return {
    config,
    chainId: chainIdOf(config),
    genesis,
    genesisWork: workForTarget(genesis.header.target),
    verifier,
  } satisfies IndexedNetwork;
}

function decodeParts(r: BlockAcceptedReport): SealedBlock {
  try {
    const header = decodeHeader(fromHex(r.header));
    const entries: SealedEntry[] = r.entries.map((hex, i) => {
      const e = decodeEntry(fromHex(hex));
      // The decoder stops at the entry's end; bytes after it would go unchecked.
      if (e.encoded.length * 2 !== hex.length) throw new DecodeError('trailing-bytes', `entry ${i}`);
      return e;
    });
    return sealBlock({ header, signature: fromHex(r.signature), entries });
  } catch (err) {
    if (err instanceof DecodeError || err instanceof RangeError)
      throw new ReportRefused('malformed-block', err.message);
    throw err;
  }
}

/** The summary fields a report repeats must say what its header says. */
function mismatch(r: BlockAcceptedReport, b: SealedBlock): string | undefined {
  const h = b.header;
  const claims: [string, string | number, string | number][] = [
    ['height', r.height, h.height],
    ['prevHash', r.prevHash, toHex(h.prevHash)],
    ['merkleRoot', r.merkleRoot, toHex(h.merkleRoot)],
    ['timestamp', r.timestamp, h.timestamp],
    ['target', r.target, h.target.toString()],
    ['nonce', r.nonce, String(h.nonce)],
    ['miner', r.miner, toHex(h.miner)],
    ['sizeBytes', r.sizeBytes, b.encoded.length],
  ];
  return claims.find(([, claimed, actual]) => claimed !== actual)?.[0];
}

/**
 * The block a report describes, if it passes every rule that needs nothing but the block and
 * the network: hash, header fields, chain id, target bounds, proof of work, size, Merkle root,
 * the miner's and every entry's signature. Throws ReportRefused (or ReportHeld for a clock
 * ahead of ours). Parent, total work and membership are judged against the index (IndexWriter).
 */
export function checkBlockReport(r: BlockAcceptedReport, net: IndexedNetwork, now: number): SealedBlock {
  const block = decodeParts(r);
  if (block.hashHex !== r.hash) throw new ReportRefused('bad-hash', `sha256(header) is ${block.hashHex}`);
  // A header that decodes but re-encodes otherwise would make `hash` cover other bytes.
  if (toHex(block.headerBytes) !== r.header)
    throw new ReportRefused('malformed-block', 'non-canonical header');
  const field = mismatch(r, block);
  if (field) throw new ReportRefused('header-mismatch', `${field} disagrees with the header`);
  if (block.header.height === 0) {
    if (block.hashHex !== net.genesis.hashHex)
      throw new ReportRefused('bad-genesis', `${block.hashHex} is not this network's genesis`);
    return block;
  }
  judged(() => {
    validateHeader(block, net.config, net.chainId);
    validateBlockBody(block, net.config, now, net.verifier);
  });
  return block;
}

/**
 * The rules relating a block to its parent, as nodes apply them (Chain.connect): linkage,
 * height, the retarget rule's exact target and the median time past. Without them a block
 * every node refuses as bad-difficulty (a harder target than the rule allows buys more work
 * per block) could take `canonical` from the honest chain in the index.
 */
export function checkBlockContext(
  block: SealedBlock,
  parent: ParentContext,
  net: IndexedNetwork,
  now: number,
) {
  judged(() => validateBlockContext(block, parent, net.config, now));
}

/** Runs chain rules, turning their errors into the collector's: held if transient, else refused. */
function judged(rules: () => void): void {
  try {
    rules();
  } catch (err) {
    if (!(err instanceof BlockValidationError)) throw err;
    if (err.isTransient) throw new ReportHeld(err.code as 'entry-timestamp-in-future', err.message);
    throw new ReportRefused(err.code, err.message);
  }
}
