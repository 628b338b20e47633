import { decodeBlock, decodeHeader, HEADER_BYTES } from '../chain/block-codec.ts';
import { toHex } from '../chain/bytes.ts';
import { sha256 } from '../chain/hash.ts';
import { LIMITS, type SealedBlock } from '../chain/types.ts';
import type { SealedHeader } from '../chain/validation.ts';
import {
  type BlockRef,
  decodeBlockRef,
  decodeHashes,
  decodeHeights,
  decodeRangeRequest,
  decodeStatus,
  encodeBlockRef,
  encodeHashes,
  encodeHeights,
  encodeRangeRequest,
  encodeStatus,
  MAX_BLOCKS_PER_REQUEST,
  MAX_HASHES_PER_REQUEST,
  MAX_HEADERS_PER_REQUEST,
  type RangeRequest,
  type Status,
} from './messages.ts';
import type { ProtocolSpec } from './reqresp.ts';

/** Cairn's request/response protocols: bounds, deadlines and per-peer budgets in one place. */

/** A block as served: its stored bytes, sent without decoding them first. */
export type WireBlock = Pick<SealedBlock, 'encoded'>;

/**
 * Bytes of blocks one answer carries at most (a short answer ends before it would exceed it):
 * without it, one blocks-by-range answer could make the requester hold 128 × the block bound
 * (128 MiB on a default network). 8 MiB is still 128 blocks of 64 KB, two of the codec's 4 MiB
 * ceiling, and a few seconds of a slow link; a requester continues a short answer from the
 * next height.
 */
export const MAX_BLOCK_RESPONSE_BYTES = 8 * 1024 * 1024;

const blockResponse = {
  maxChunkBytes: LIMITS.blockBytes,
  maxResponseBytes: MAX_BLOCK_RESPONSE_BYTES,
  encodeResponse: (b: WireBlock) => b.encoded,
  decodeResponse: (bytes: Uint8Array) => decodeBlock(bytes),
};

/** Both sides send their status; the request carries the requester's, the answer the responder's. */
export const STATUS: ProtocolSpec<Status, Status> = {
  name: 'status',
  maxRequestBytes: 256,
  maxChunkBytes: 256,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 5_000,
  rateLimit: { points: 10, durationSec: 10 },
  encodeRequest: encodeStatus,
  decodeRequest: decodeStatus,
  encodeResponse: encodeStatus,
  decodeResponse: decodeStatus,
};

export const BLOCKS_BY_RANGE: ProtocolSpec<RangeRequest, WireBlock, SealedBlock> = {
  name: 'blocks-by-range',
  maxRequestBytes: 16,
  maxChunks: MAX_BLOCKS_PER_REQUEST,
  timeoutMs: 20_000,
  // Counted in blocks: 20,000 blocks per 10 s per peer is ample for a syncing node.
  rateLimit: { points: 20_000, durationSec: 10 },
  cost: (q) => q.count,
  chunksFor: (q) => q.count,
  encodeRequest: encodeRangeRequest,
  decodeRequest: decodeRangeRequest,
  ...blockResponse,
};

/**
 * Main-chain headers by height, for headers-first sync: a fork's work is proven from its
 * headers before any of its blocks is downloaded. Each chunk is a header's canonical encoding;
 * its hash is computed here, so the answer proves its own work.
 */
export const HEADERS_BY_RANGE: ProtocolSpec<RangeRequest, Uint8Array, SealedHeader> = {
  name: 'headers-by-range',
  maxRequestBytes: 16,
  maxChunkBytes: HEADER_BYTES,
  maxChunks: MAX_HEADERS_PER_REQUEST,
  timeoutMs: 10_000,
  // Counted in headers: served from memory, 182 bytes each.
  rateLimit: { points: 50_000, durationSec: 10 },
  cost: (q) => q.count,
  chunksFor: (q) => q.count,
  encodeRequest: encodeRangeRequest,
  decodeRequest: (b) => decodeRangeRequest(b, MAX_HEADERS_PER_REQUEST),
  encodeResponse: (headerBytes) => headerBytes,
  decodeResponse: (bytes) => {
    const header = decodeHeader(bytes);
    const hash = sha256(bytes);
    return { header, hash, hashHex: toHex(hash) };
  },
};

export const BLOCKS_BY_HASH: ProtocolSpec<Uint8Array[], WireBlock, SealedBlock> = {
  name: 'blocks-by-hash',
  maxRequestBytes: 2 + 32 * MAX_HASHES_PER_REQUEST,
  maxChunks: MAX_HASHES_PER_REQUEST,
  timeoutMs: 10_000,
  rateLimit: { points: 2_000, durationSec: 10 },
  cost: (q) => Math.max(1, q.length),
  chunksFor: (q) => q.length,
  encodeRequest: encodeHashes,
  decodeRequest: (b) => decodeHashes(b),
  ...blockResponse,
};

/**
 * A block protocol as a requester on one network uses it: a chunk may be no longer than the
 * network's `maxBlockBytes` (a valid block never is), not the codec's 4 MiB ceiling, so a peer
 * answering a range of 128 blocks can make us hold at most 128 × maxBlockBytes, and an oversized
 * chunk is refused (and penalised) from its length prefix, before its bytes are read.
 */
export function forNetwork<Req>(
  spec: ProtocolSpec<Req, WireBlock, SealedBlock>,
  maxBlockBytes: number,
): ProtocolSpec<Req, WireBlock, SealedBlock> {
  const maxChunkBytes = Math.min(LIMITS.blockBytes, maxBlockBytes);
  // One block of the largest size always fits in an answer.
  return { ...spec, maxChunkBytes, maxResponseBytes: Math.max(spec.maxResponseBytes ?? 0, maxChunkBytes) };
}

/** A block locator in, the first of its hashes on the responder's main chain out (the fork point). */
export const ANCESTOR: ProtocolSpec<Uint8Array[], BlockRef> = {
  name: 'ancestor',
  maxRequestBytes: 2 + 32 * MAX_HASHES_PER_REQUEST,
  maxChunkBytes: 64,
  maxChunks: 1,
  timeoutMs: 5_000,
  rateLimit: { points: 20, durationSec: 10 },
  encodeRequest: encodeHashes,
  decodeRequest: (b) => decodeHashes(b),
  encodeResponse: encodeBlockRef,
  decodeResponse: decodeBlockRef,
};

/** Main-chain hashes at given heights, for checkpoint agreement. */
export const HASHES_AT: ProtocolSpec<number[], BlockRef> = {
  name: 'hashes-at',
  maxRequestBytes: 2 + 4 * MAX_HASHES_PER_REQUEST,
  maxChunkBytes: 64,
  maxChunks: MAX_HASHES_PER_REQUEST,
  timeoutMs: 5_000,
  rateLimit: { points: 50, durationSec: 10 },
  encodeRequest: encodeHeights,
  decodeRequest: decodeHeights,
  encodeResponse: encodeBlockRef,
  decodeResponse: decodeBlockRef,
};

/** Where a network's request/response protocols live: `/cairn/<first 16 hex digits of the chain id>`. */
export const reqRespPrefix = (chainIdHex: string): string => `/cairn/${chainIdHex.slice(0, 16)}`;
