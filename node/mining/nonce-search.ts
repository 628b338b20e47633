import { createHash } from 'node:crypto';
import { NONCE_OFFSET } from '../chain/block-codec.ts';
import { bytesToBigInt } from '../chain/bytes.ts';

/**
 * Tries `count` nonces from `start` on an encoded header. The fixed prefix is hashed once and
 * its state copied per attempt. Returns the first nonce whose hash meets the target, or null.
 * `shouldStop` is polled every 4096 attempts so a worker can be cancelled promptly.
 */
export function searchNonce(
  headerBytes: Uint8Array,
  target: bigint,
  start: number,
  count: number,
  shouldStop: () => boolean = () => false,
): number | null {
  const prefix = createHash('sha256').update(headerBytes.subarray(0, NONCE_OFFSET));
  const tail = Buffer.alloc(8);
  const end = start + count;
  for (let nonce = start; nonce < end; nonce++) {
    if ((nonce & 0xfff) === 0 && shouldStop()) return null;
    tail.writeBigUInt64BE(BigInt(nonce));
    const digest = prefix.copy().update(tail).digest();
    // Cheap reject on the top 48 bits before building a bigint.
    const top = digest.readUIntBE(0, 6);
    const targetTop = Number(target >> 208n);
    if (top > targetTop) continue;
    if (bytesToBigInt(digest) <= target) return nonce;
  }
  return null;
}
