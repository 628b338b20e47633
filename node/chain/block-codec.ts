import { bigIntToBytes, bytesToBigInt, toHex } from './bytes.ts';
import { DecodeError } from './codec/errors.ts';
import { Reader } from './codec/reader.ts';
import { Writer } from './codec/writer.ts';
import { readEntry } from './entry-codec.ts';
import { sha256 } from './hash.ts';
import { type Block, type BlockHeader, FORMAT_VERSION, LIMITS, type SealedBlock, TAG } from './types.ts';

/** tag, version, chain id, height, prev, merkle root, timestamp, target, miner, nonce. */
export const HEADER_BYTES = 1 + 1 + 32 + 4 + 32 + 32 + 8 + 32 + 32 + 8;
/** The nonce is the last field, so a miner hashes a fixed prefix and only rewrites the tail. */
export const NONCE_OFFSET = HEADER_BYTES - 8;

export function encodeHeader(h: BlockHeader): Uint8Array {
  const w = new Writer(HEADER_BYTES);
  w.u8(TAG.header).u8(h.version).fixed(h.chainId, 32).u32(h.height).fixed(h.prevHash, 32);
  w.fixed(h.merkleRoot, 32).u64(h.timestamp).fixed(bigIntToBytes(h.target, 32), 32);
  w.fixed(h.miner, 32).u64(h.nonce);
  return w.finish();
}

function readHeader(r: Reader): BlockHeader {
  const tag = r.u8('header tag');
  if (tag !== TAG.header) throw new DecodeError('unknown-tag', `expected header tag, got ${tag}`);
  const version = r.u8('header version');
  if (version !== FORMAT_VERSION) throw new DecodeError('unsupported-version', `header version ${version}`);
  return {
    version,
    chainId: r.fixed(32, 'chain id'),
    height: r.u32('height'),
    prevHash: r.fixed(32, 'prev hash'),
    merkleRoot: r.fixed(32, 'merkle root'),
    timestamp: r.u64('timestamp'),
    target: bytesToBigInt(r.fixed(32, 'target')),
    miner: r.fixed(32, 'miner'),
    nonce: r.u64('nonce'),
  };
}

function readHeaderExactly(bytes: Uint8Array): BlockHeader {
  const r = new Reader(bytes);
  const h = readHeader(r);
  r.end('header');
  return h;
}

/** Decodes a header; the result shares no memory with `bytes`. */
export function decodeHeader(bytes: Uint8Array): BlockHeader {
  if (bytes.length !== HEADER_BYTES) {
    throw new DecodeError(
      bytes.length > HEADER_BYTES ? 'trailing-bytes' : 'truncated',
      `header of ${bytes.length} bytes`,
    );
  }
  return readHeaderExactly(bytes.slice());
}

export function blockHashOf(header: BlockHeader): Uint8Array {
  return sha256(encodeHeader(header));
}

/** Encodes a block and derives its hash; the result is what every other part passes around. */
export function sealBlock(block: Block): SealedBlock {
  const headerBytes = encodeHeader(block.header);
  if (block.entries.length > LIMITS.entriesPerBlock) throw new RangeError('too many entries');
  const w = new Writer(HEADER_BYTES + 80 + block.entries.reduce((n, e) => n + e.encoded.length + 3, 0));
  w.u8(TAG.block).u8(FORMAT_VERSION).fixed(headerBytes, HEADER_BYTES).fixed(block.signature, 64);
  w.varint(block.entries.length);
  for (const e of block.entries) w.bytes(e.encoded);
  const encoded = w.finish();
  if (encoded.length > LIMITS.blockBytes) throw new RangeError(`block encodes to ${encoded.length} bytes`);
  const hash = sha256(headerBytes);
  return { ...block, hash, hashHex: toHex(hash), headerBytes, encoded };
}

export function decodeBlock(bytes: Uint8Array, maxBytes: number = LIMITS.blockBytes): SealedBlock {
  if (bytes.length > Math.min(maxBytes, LIMITS.blockBytes)) {
    throw new DecodeError('oversized', `block of ${bytes.length} bytes`);
  }
  // One copy of the input; every field of the result is a view into it.
  const own = bytes.slice();
  const r = new Reader(own);
  const tag = r.u8('block tag');
  if (tag !== TAG.block) throw new DecodeError('unknown-tag', `expected block tag, got ${tag}`);
  const version = r.u8('block version');
  if (version !== FORMAT_VERSION) throw new DecodeError('unsupported-version', `block version ${version}`);
  const headerBytes = r.fixed(HEADER_BYTES, 'header');
  const header = readHeaderExactly(headerBytes);
  const signature = r.fixed(64, 'block signature');
  const count = r.varint(LIMITS.entriesPerBlock, 'entry count');
  // Each entry needs at least its tag, version, author, timestamp, kind and signature.
  if (count * 107 > r.remaining) throw new DecodeError('truncated', `${count} entries cannot fit`);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const length = r.varint(LIMITS.entryBytes, `entry ${i} length`);
    entries.push(readEntry(r.sub(length, `entry ${i}`)));
  }
  r.end('block');
  const hash = sha256(headerBytes);
  return { header, signature, entries, hash, hashHex: toHex(hash), headerBytes, encoded: own };
}
