import { bytesToBigInt } from './bytes.ts';

export const MAX_TARGET = (1n << 256n) - 1n;

/** Expected number of hashes to find a block at this target: 2^256 / (target + 1). */
export function workForTarget(target: bigint): bigint {
  return (1n << 256n) / (target + 1n);
}

export function meetsTarget(hash: Uint8Array, target: bigint): boolean {
  return bytesToBigInt(hash) <= target;
}

/** Target at which a block takes `expectedHashes` hashes on average (inverse of workForTarget). */
export function targetForWork(expectedHashes: bigint): bigint {
  if (expectedHashes < 1n) throw new RangeError('expected hashes must be at least 1');
  const t = (1n << 256n) / expectedHashes - 1n;
  return t > MAX_TARGET ? MAX_TARGET : t;
}
