import type { MembershipErrorCode } from '../membership/roster-state.ts';
import { bytesEqual, toHex } from './bytes.ts';
import { malformedCheckpoint } from './checkpoint.ts';
import { expectedTarget } from './difficulty.ts';
import { merkleRoot } from './merkle.ts';
import type { NetworkConfig } from './network-config.ts';
import { meetsTarget } from './pow.ts';
import type { SignatureVerifier } from './signature-cache.ts';
import { FORMAT_VERSION, type SealedBlock, type SealedEntry } from './types.ts';

/**
 * What the header rules look at: a header and its hash (a whole block, or a header alone, as
 * headers-first sync receives them).
 */
export type SealedHeader = Pick<SealedBlock, 'header' | 'hash' | 'hashHex'>;

export type BlockErrorCode =
  | 'unsupported-version'
  | 'wrong-chain-id'
  | 'block-too-large'
  | 'too-many-entries'
  | 'bad-merkle-root'
  | 'duplicate-entry'
  | 'insufficient-work'
  | 'target-out-of-range'
  | 'bad-block-signature'
  | 'bad-prev-hash'
  | 'bad-height'
  | 'timestamp-too-early'
  | 'timestamp-in-future'
  | 'bad-difficulty'
  | 'entry-already-included'
  | 'invalid-parent'
  | 'below-checkpoint'
  | 'checkpoint-not-in-chain'
  | EntryErrorCode
  | ModelHeadErrorCode
  | MembershipErrorCode;

/** The model-head rule (model-ledger.ts): a `model` entry must extend the head at its place. */
export type ModelHeadErrorCode = 'model-round-not-next' | 'model-parent-not-head';

export type EntryErrorCode =
  | 'bad-entry-signature'
  | 'entry-timestamp-in-future'
  | 'unauthorized-config'
  | 'bad-checkpoint'
  | 'unsupported-entry-version'
  | MembershipErrorCode;

export class BlockValidationError extends Error {
  override readonly name = 'BlockValidationError';
  readonly code: BlockErrorCode;
  constructor(code: BlockErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }

  /** Errors that may go away by themselves (a clock that was behind); the block is not marked invalid. */
  get isTransient(): boolean {
    return this.code === 'timestamp-in-future' || this.code === 'entry-timestamp-in-future';
  }

  /**
   * Errors in the parts of a block that its hash does not commit to: the miner signature, an
   * entry signature (entry ids exclude signatures), or an entry list that does not match the
   * header's Merkle root (size, count and duplicates are checked before the root). Anyone can
   * produce them from a valid block by tampering with a copy, so they condemn that copy, not
   * the block hash: the genuine block may still arrive.
   */
  get isBodyError(): boolean {
    return BODY_ERRORS.has(this.code);
  }
}

const BODY_ERRORS: ReadonlySet<BlockErrorCode> = new Set<BlockErrorCode>([
  'block-too-large',
  'too-many-entries',
  'duplicate-entry',
  'bad-merkle-root',
  'bad-block-signature',
  'bad-entry-signature',
]);

export class EntryValidationError extends BlockValidationError {
  constructor(code: EntryErrorCode, message: string) {
    super(code, message);
  }
}

/** Admin keys are hex in any case (the chain id lowercases them), author keys lowercase hex. */
const isAdmin = (config: NetworkConfig, authorHex: string) =>
  config.admins.some((a) => a.toLowerCase() === authorHex);

/** Rules of a single entry, shared by the mempool and block validation. */
export function validateEntry(
  e: SealedEntry,
  config: NetworkConfig,
  now: number,
  verifier: SignatureVerifier,
  signatureChecked = false,
): void {
  if (e.version !== FORMAT_VERSION)
    throw new EntryValidationError('unsupported-entry-version', `version ${e.version}`);
  if (e.timestamp > now + config.maxFutureDriftMs) {
    throw new EntryValidationError(
      'entry-timestamp-in-future',
      `entry ${e.idHex} is ${e.timestamp - now} ms ahead`,
    );
  }
  // In roster mode the admin set is chain state (node/membership): the chain judges config
  // authors against the roster at the block's parent, not against the genesis list.
  if (e.payload.kind === 'config' && config.membership !== 'roster' && !isAdmin(config, toHex(e.author))) {
    throw new EntryValidationError(
      'unauthorized-config',
      `config entry ${e.idHex} is not signed by an admin key`,
    );
  }
  const malformed = malformedCheckpoint(e);
  if (malformed !== undefined) {
    throw new EntryValidationError(
      'bad-checkpoint',
      `config entry ${e.idHex}: checkpoint "${malformed.slice(0, 80)}" is not <height>:<block hash>`,
    );
  }
  if (!signatureChecked && !verifier.verify(e.signature, e.id, e.author, e)) {
    throw new EntryValidationError('bad-entry-signature', `entry ${e.idHex}`);
  }
}

/**
 * Rules of the header alone, in order of cost, so that a block fails on the cheapest rule it
 * breaks. The chain id comes first: a block of another network is that, whatever else it
 * breaks, and its sender is on the wrong network (a fatal penalty); the comparison costs as
 * little as the next one. Then the target bounds (Bitcoin's CheckProofOfWork checks the limit
 * before the hash): a target outside them makes the proof of work free, so nothing else about
 * such a block deserves any work. Then the version and the proof of work (one comparison). The clock is checked apart (validateHeaderTime): an orphan may wait in the
 * pool while ahead of our clock, and is checked against it when its parent arrives.
 */
export function validateHeader(block: SealedHeader, config: NetworkConfig, chainId: Uint8Array): void {
  const h = block.header;
  if (!bytesEqual(h.chainId, chainId)) throw new BlockValidationError('wrong-chain-id', toHex(h.chainId));
  if (h.target < config.minTarget || h.target > config.maxTarget) {
    throw new BlockValidationError(
      'target-out-of-range',
      `target ${h.target.toString(16)} outside [${config.minTarget.toString(16)}, ${config.maxTarget.toString(16)}]`,
    );
  }
  if (h.version !== FORMAT_VERSION)
    throw new BlockValidationError('unsupported-version', `version ${h.version}`);
  if (!meetsTarget(block.hash, h.target)) throw new BlockValidationError('insufficient-work', block.hashHex);
}

/**
 * The one transient header rule: not ahead of our clock by more than the drift. Checked after
 * the proof of work, so a future-stamped block has at least paid for that before it is
 * remembered (Chain keeps it as transient until it could pass), and before its body.
 */
export function validateHeaderTime(block: SealedHeader, config: NetworkConfig, now: number): void {
  if (block.header.timestamp > now + config.maxFutureDriftMs) {
    throw new BlockValidationError('timestamp-in-future', `${block.header.timestamp - now} ms ahead`);
  }
}

/**
 * Rules of the body: sizes and duplicates, the Merkle root, then signatures, the expensive part
 * (a malformed block costs little). Called only for blocks whose header passed.
 */
export function validateBlockBody(
  block: SealedBlock,
  config: NetworkConfig,
  now: number,
  verifier: SignatureVerifier,
): void {
  const allChecked = verifier.hasCheckedBlock?.(block) ?? false;
  validateBlockShell(block, config, verifier, allChecked);
  for (const e of block.entries) validateEntry(e, config, now, verifier, allChecked);
}

/**
 * The body without its entries' signatures: sizes, duplicates, the Merkle root (hashes only)
 * and the miner's one signature. What an orphan must pass to be held: its entries' signatures
 * wait for its parent (Chain.connectOrphansOf), so orphans that never connect cost no more than
 * one signature each (attack review #11: 1,000-entry orphans cost 263 ms of main thread each).
 */
export function validateBlockShell(
  block: SealedBlock,
  config: NetworkConfig,
  verifier: SignatureVerifier,
  allChecked = verifier.hasCheckedBlock?.(block) ?? false,
): void {
  if (block.encoded.length > config.maxBlockBytes) {
    throw new BlockValidationError(
      'block-too-large',
      `${block.encoded.length} > ${config.maxBlockBytes} bytes`,
    );
  }
  if (block.entries.length > config.maxEntriesPerBlock) {
    throw new BlockValidationError(
      'too-many-entries',
      `${block.entries.length} > ${config.maxEntriesPerBlock}`,
    );
  }
  const seen = new Set<string>();
  for (const e of block.entries) {
    if (seen.has(e.idHex))
      throw new BlockValidationError('duplicate-entry', `entry ${e.idHex} twice in block`);
    seen.add(e.idHex);
  }
  if (!bytesEqual(merkleRoot(block.entries.map((e) => e.id)), block.header.merkleRoot)) {
    throw new BlockValidationError('bad-merkle-root', block.hashHex);
  }
  if (!allChecked && !verifier.verify(block.signature, block.hash, block.header.miner, block)) {
    throw new BlockValidationError('bad-block-signature', block.hashHex);
  }
}

/** Rules that need nothing but the block and the network config: the header's, then the body's. */
export function validateBlockIntrinsic(
  block: SealedBlock,
  config: NetworkConfig,
  chainId: Uint8Array,
  now: number,
  verifier: SignatureVerifier,
): void {
  validateHeader(block, config, chainId);
  validateBlockBody(block, config, now, verifier);
}

/**
 * The moment a block rejected for a transient reason can pass at the earliest: when its
 * latest timestamp (header or entry) is no longer ahead of the clock by more than the drift.
 */
export function retryAfter(block: SealedBlock, config: NetworkConfig): number {
  let latest = block.header.timestamp;
  for (const e of block.entries) if (e.timestamp > latest) latest = e.timestamp;
  return latest - config.maxFutureDriftMs;
}

/** What contextual validation needs to know about the parent and its ancestors. */
export interface ParentContext {
  readonly hash: Uint8Array;
  readonly height: number;
  readonly target: bigint;
  /** Timestamp of the parent's ancestor (or the parent itself) at a height. */
  timestampAt(height: number): number;
}

export function medianTimePast(parent: ParentContext, span: number): number {
  const ts: number[] = [];
  for (let h = parent.height; h >= 0 && ts.length < span; h--) ts.push(parent.timestampAt(h));
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)]!;
}

/** Rules relating a block to its parent: linkage, height, time and difficulty. */
export function validateBlockContext(
  block: SealedHeader,
  parent: ParentContext,
  config: NetworkConfig,
  now: number,
): void {
  const h = block.header;
  if (!bytesEqual(h.prevHash, parent.hash)) throw new BlockValidationError('bad-prev-hash', block.hashHex);
  if (h.height !== parent.height + 1) {
    throw new BlockValidationError('bad-height', `height ${h.height}, parent at ${parent.height}`);
  }
  // The difficulty first: it depends on the parent alone, and a block whose work is wrong is
  // invalid for good, so an easy block stamped in the future is refused (and its sender blamed)
  // rather than treated as "too early, retry later".
  const want = expectedTarget(h.height, parent.target, (x) => parent.timestampAt(x), config);
  if (h.target !== want) throw new BlockValidationError('bad-difficulty', `target ${h.target} != ${want}`);
  const mtp = medianTimePast(parent, config.medianTimeSpan);
  if (h.timestamp <= mtp)
    throw new BlockValidationError('timestamp-too-early', `${h.timestamp} <= median ${mtp}`);
  if (h.timestamp > now + config.maxFutureDriftMs) {
    throw new BlockValidationError('timestamp-in-future', `${h.timestamp - now} ms ahead`);
  }
}
