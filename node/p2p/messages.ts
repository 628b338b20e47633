import { bigIntToBytes, bytesToBigInt } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { CAPABILITIES, type Capability, ROLES, type Role } from '../identity/identity.ts';

/** Canonical encodings of the request/response payloads (blocks and entries use the chain codec). */

export interface Status {
  readonly chainId: Uint8Array;
  readonly genesisHash: Uint8Array;
  readonly headHash: Uint8Array;
  readonly headHeight: number;
  readonly totalWork: bigint;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
}

export function encodeStatus(s: Status): Uint8Array {
  let caps = 0;
  for (const c of s.capabilities) caps |= 1 << CAPABILITIES.indexOf(c);
  return new Writer(170)
    .u8(1)
    .fixed(s.chainId, 32)
    .fixed(s.genesisHash, 32)
    .fixed(s.headHash, 32)
    .u32(s.headHeight)
    .fixed(bigIntToBytes(s.totalWork, 32), 32)
    .u8(ROLES.indexOf(s.role))
    .u8(caps)
    .finish();
}

export function decodeStatus(bytes: Uint8Array): Status {
  const r = new Reader(bytes);
  const v = r.u8('status version');
  if (v !== 1) throw new DecodeError('unsupported-version', `status version ${v}`);
  const chainId = r.fixed(32, 'chain id').slice();
  const genesisHash = r.fixed(32, 'genesis').slice();
  const headHash = r.fixed(32, 'head').slice();
  const headHeight = r.u32('height');
  const totalWork = bytesToBigInt(r.fixed(32, 'work'));
  const role = ROLES[r.u8('role')];
  if (!role) throw new DecodeError('invalid-value', 'unknown role');
  const caps = r.u8('capabilities');
  if (caps >> CAPABILITIES.length) throw new DecodeError('invalid-value', 'unknown capability bits');
  r.end('status');
  return {
    chainId,
    genesisHash,
    headHash,
    headHeight,
    totalWork,
    role,
    capabilities: CAPABILITIES.filter((_, i) => caps & (1 << i)),
  };
}

export const MAX_BLOCKS_PER_REQUEST = 128;
/** Headers are 182 bytes: a headers-by-range answer of 512 is about 93 KB. */
export const MAX_HEADERS_PER_REQUEST = 512;
export const MAX_HASHES_PER_REQUEST = 64;

export interface RangeRequest {
  readonly startHeight: number;
  readonly count: number;
}

export const encodeRangeRequest = (q: RangeRequest) =>
  new Writer(9).u8(1).u32(q.startHeight).u32(q.count).finish();

export function decodeRangeRequest(bytes: Uint8Array, maxCount = MAX_BLOCKS_PER_REQUEST): RangeRequest {
  const r = new Reader(bytes);
  if (r.u8('version') !== 1) throw new DecodeError('unsupported-version', 'range request');
  const startHeight = r.u32('start');
  const count = r.u32('count');
  r.end('range request');
  if (count < 1 || count > maxCount) {
    throw new DecodeError('invalid-value', `count ${count} outside 1..${maxCount}`);
  }
  return { startHeight, count };
}

/** A list of 32-byte hashes (blocks by hash, block locators). */
export function encodeHashes(hashes: readonly Uint8Array[]): Uint8Array {
  const w = new Writer(2 + hashes.length * 32).u8(1).varint(hashes.length);
  for (const h of hashes) w.fixed(h, 32);
  return w.finish();
}

export function decodeHashes(bytes: Uint8Array, max = MAX_HASHES_PER_REQUEST): Uint8Array[] {
  const r = new Reader(bytes);
  if (r.u8('version') !== 1) throw new DecodeError('unsupported-version', 'hash list');
  const n = r.varint(max, 'hash count');
  const out = Array.from({ length: n }, () => r.fixed(32, 'hash').slice());
  r.end('hash list');
  return out;
}

/** Heights to ask a peer for its main-chain hashes (checkpoint agreement). */
export function encodeHeights(heights: readonly number[]): Uint8Array {
  const w = new Writer(2 + heights.length * 4).u8(1).varint(heights.length);
  for (const h of heights) w.u32(h);
  return w.finish();
}

export function decodeHeights(bytes: Uint8Array): number[] {
  const r = new Reader(bytes);
  if (r.u8('version') !== 1) throw new DecodeError('unsupported-version', 'height list');
  const n = r.varint(MAX_HASHES_PER_REQUEST, 'height count');
  const out = Array.from({ length: n }, () => r.u32('height'));
  r.end('height list');
  return out;
}

/** A main-chain block reference: the answer to a locator. */
export interface BlockRef {
  readonly height: number;
  readonly hash: Uint8Array;
}

export const encodeBlockRef = (b: BlockRef) => new Writer(37).u8(1).u32(b.height).fixed(b.hash, 32).finish();

export function decodeBlockRef(bytes: Uint8Array): BlockRef {
  const r = new Reader(bytes);
  if (r.u8('version') !== 1) throw new DecodeError('unsupported-version', 'block ref');
  const height = r.u32('height');
  const hash = r.fixed(32, 'hash').slice();
  r.end('block ref');
  return { height, hash };
}
