import { hash } from 'node:crypto';
import { sha256 } from './hash.ts';

/**
 * Binary Merkle tree over entry ids. Leaves and inner nodes are hashed with distinct prefixes
 * (RFC 6962 style) and an odd node is promoted rather than duplicated, so no two different
 * entry lists share a root (the duplication flaw of CVE-2012-2459 cannot occur).
 */
export const EMPTY_MERKLE_ROOT = sha256(new Uint8Array(0));

// Block validation hashes 2n-1 nodes per block; writing into one scratch buffer instead of
// concatenating halves the cost. Only 32-byte leaves and nodes ever go through here.
const scratch = Buffer.alloc(65);
function hashPrefixed(prefix: number, a: Uint8Array, b?: Uint8Array): Uint8Array {
  if (a.length !== 32 || (b && b.length !== 32)) throw new RangeError('merkle leaves and nodes are 32 bytes');
  scratch[0] = prefix;
  scratch.set(a, 1);
  if (b) scratch.set(b, 33);
  const out = hash('sha256', scratch.subarray(0, b ? 65 : 33), 'buffer');
  return new Uint8Array(out.buffer, out.byteOffset, 32);
}
const hashLeaf = (id: Uint8Array) => hashPrefixed(0, id);
const hashNode = (l: Uint8Array, r: Uint8Array) => hashPrefixed(1, l, r);

function nextLevel(level: Uint8Array[]): Uint8Array[] {
  const next: Uint8Array[] = [];
  for (let i = 0; i < level.length; i += 2) {
    next.push(i + 1 < level.length ? hashNode(level[i]!, level[i + 1]!) : level[i]!);
  }
  return next;
}

export function merkleRoot(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return EMPTY_MERKLE_ROOT;
  let level = leaves.map(hashLeaf);
  while (level.length > 1) level = nextLevel(level);
  return level[0]!;
}

export interface MerkleProof {
  readonly index: number;
  readonly leafCount: number;
  /** Sibling hashes from the leaf level upwards; levels where the node was promoted have none. */
  readonly siblings: readonly Uint8Array[];
}

export function merkleProof(leaves: readonly Uint8Array[], index: number): MerkleProof {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length)
    throw new RangeError('leaf index out of range');
  const siblings: Uint8Array[] = [];
  let level = leaves.map(hashLeaf);
  let i = index;
  while (level.length > 1) {
    const sib = i ^ 1;
    if (sib < level.length) siblings.push(level[sib]!);
    level = nextLevel(level);
    i >>= 1;
  }
  return { index, leafCount: leaves.length, siblings };
}

export function verifyMerkleProof(leaf: Uint8Array, proof: MerkleProof, root: Uint8Array): boolean {
  const { index, leafCount, siblings } = proof;
  if (!Number.isInteger(index) || !Number.isInteger(leafCount) || index < 0 || index >= leafCount)
    return false;
  // A malformed proof input is a failed proof, not an exception (hashLeaf throws on it).
  if (leaf.length !== 32) return false;
  let hash = hashLeaf(leaf);
  let i = index;
  let width = leafCount;
  let used = 0;
  while (width > 1) {
    const sib = i ^ 1;
    if (sib < width) {
      const s = siblings[used++];
      if (s?.length !== 32) return false;
      hash = i & 1 ? hashNode(s, hash) : hashNode(hash, s);
    }
    i >>= 1;
    width = Math.ceil(width / 2);
  }
  if (used !== siblings.length) return false;
  return Buffer.compare(hash, root) === 0;
}
