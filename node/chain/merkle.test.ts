import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { sha256 } from './hash.ts';
import { EMPTY_MERKLE_ROOT, type MerkleProof, merkleProof, merkleRoot, verifyMerkleProof } from './merkle.ts';

const leaf = fc.uint8Array({ minLength: 32, maxLength: 32 });
const leaves = (maxLength = 200) => fc.array(leaf, { maxLength, size: 'max' });
const nonEmptyLeaves = (maxLength = 200) => fc.array(leaf, { minLength: 1, maxLength, size: 'max' });

const H = (...parts: (number | Uint8Array)[]) =>
  sha256(...parts.map((p) => (typeof p === 'number' ? new Uint8Array([p]) : p)));
const leafHash = (l: Uint8Array) => H(0, l);
const nodeHash = (l: Uint8Array, r: Uint8Array) => H(1, l, r);

/** Reference root written from the definition: split at the largest power of two below n. */
function referenceRoot(ls: readonly Uint8Array[]): Uint8Array {
  if (ls.length === 0) return sha256(new Uint8Array(0));
  const hashes = ls.map(leafHash);
  // Pairwise levels with promotion, written independently of merkle.ts.
  let level = hashes;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(nodeHash(level[i]!, level[i + 1]!));
    if (level.length % 2 === 1) next.push(level[level.length - 1]!);
    level = next;
  }
  return level[0]!;
}

/** Left/right position at each level where the path has a sibling: what a proof's shape encodes. */
function pathShape(index: number, leafCount: number): string {
  let shape = '';
  for (let i = index, w = leafCount; w > 1; i >>= 1, w = Math.ceil(w / 2)) {
    if ((i ^ 1) < w) shape += i & 1 ? 'R' : 'L';
  }
  return shape;
}

const flipBit = (b: Uint8Array, bit: number) => {
  const c = b.slice();
  c[(bit >> 3) % c.length]! ^= 1 << (bit & 7);
  return c;
};

describe('merkle root', () => {
  test('the empty root is EMPTY_MERKLE_ROOT, the SHA-256 of nothing', () => {
    assert.deepStrictEqual(merkleRoot([]), EMPTY_MERKLE_ROOT);
    assert.equal(
      Buffer.from(EMPTY_MERKLE_ROOT).toString('hex'),
      'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    // A one-leaf tree is not the empty tree, whatever the leaf.
    assert.notDeepStrictEqual(merkleRoot([new Uint8Array(32)]), EMPTY_MERKLE_ROOT);
    // Leaves are entry ids: anything but 32 bytes is a programming error, not a tree.
    assert.throws(() => merkleRoot([new Uint8Array(0)]), RangeError);
    assert.throws(() => merkleRoot([new Uint8Array(32), new Uint8Array(33)]), RangeError);
  });

  test('small trees hash leaves and nodes with distinct prefixes and promote the odd node', () => {
    const [a, b, c] = [1, 2, 3].map((n) => new Uint8Array(32).fill(n)) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    assert.deepStrictEqual(merkleRoot([a]), leafHash(a));
    assert.deepStrictEqual(merkleRoot([a, b]), nodeHash(leafHash(a), leafHash(b)));
    assert.deepStrictEqual(merkleRoot([a, b, c]), nodeHash(nodeHash(leafHash(a), leafHash(b)), leafHash(c)));
    // Order matters.
    assert.notDeepStrictEqual(merkleRoot([b, a]), merkleRoot([a, b]));
  });

  test('matches a reference implementation (property)', () => {
    fc.assert(
      fc.property(leaves(), (ls) => {
        assert.deepStrictEqual(merkleRoot(ls), referenceRoot(ls));
      }),
      { numRuns: 100 },
    );
  });

  test('no CVE-2012-2459: duplicating the last leaf changes the root (property)', () => {
    fc.assert(
      fc.property(nonEmptyLeaves(), (ls) => {
        const dup = [...ls, ls[ls.length - 1]!];
        assert.notDeepStrictEqual(merkleRoot(dup), merkleRoot(ls));
      }),
      { numRuns: 200 },
    );
    // The classic shape: [a, b, c] against [a, b, c, c] (Bitcoin's tree gives both one root).
    const [a, b, c] = [1, 2, 3].map((n) => new Uint8Array(32).fill(n)) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    assert.notDeepStrictEqual(merkleRoot([a, b, c, c]), merkleRoot([a, b, c]));
    assert.notDeepStrictEqual(merkleRoot([a, b, c, c, c, c]), merkleRoot([a, b, c]));
  });

  test('distinct leaf lists have distinct roots (property)', () => {
    fc.assert(
      fc.property(leaves(40), leaves(40), (x, y) => {
        const same = x.length === y.length && x.every((l, i) => Buffer.compare(l, y[i]!) === 0);
        assert.equal(Buffer.compare(merkleRoot(x), merkleRoot(y)) === 0, same);
      }),
    );
    // An inner node's hash used as a leaf does not collapse two levels into one.
    const [a, b] = [1, 2].map((n) => new Uint8Array(32).fill(n)) as [Uint8Array, Uint8Array];
    assert.notDeepStrictEqual(merkleRoot([nodeHash(leafHash(a), leafHash(b))]), merkleRoot([a, b]));
  });
});

describe('merkle proofs', () => {
  test('every leaf of every tree up to 40 leaves has a verifying proof of the expected length', () => {
    for (let n = 1; n <= 40; n++) {
      const ls = Array.from({ length: n }, (_, i) => sha256(new Uint8Array([n, i])));
      const root = merkleRoot(ls);
      for (let i = 0; i < n; i++) {
        const proof = merkleProof(ls, i);
        assert.deepStrictEqual(proof.index, i);
        assert.equal(proof.leafCount, n);
        assert.equal(proof.siblings.length, pathShape(i, n).length);
        assert.ok(proof.siblings.length <= Math.ceil(Math.log2(n)));
        assert.ok(verifyMerkleProof(ls[i]!, proof, root), `n=${n} i=${i}`);
      }
    }
  });

  test('every index of random lists (0..200 leaves) verifies against merkleRoot (property)', () => {
    fc.assert(
      fc.property(leaves(), (ls) => {
        const root = merkleRoot(ls);
        for (let i = 0; i < ls.length; i++) assert.ok(verifyMerkleProof(ls[i]!, merkleProof(ls, i), root));
        assert.throws(() => merkleProof(ls, ls.length), RangeError);
        assert.throws(() => merkleProof(ls, -1), RangeError);
      }),
      { numRuns: 40 },
    );
  });

  // Everything below picks one tree and one index and then breaks one thing about the proof.
  const treeAndIndex = nonEmptyLeaves().chain((ls) =>
    fc.record({ ls: fc.constant(ls), i: fc.nat({ max: ls.length - 1 }) }),
  );

  test('a wrong leaf fails (property)', () => {
    fc.assert(
      fc.property(treeAndIndex, fc.nat(255), leaf, ({ ls, i }, bit, other) => {
        const root = merkleRoot(ls);
        const proof = merkleProof(ls, i);
        assert.equal(verifyMerkleProof(flipBit(ls[i]!, bit), proof, root), false);
        if (Buffer.compare(other, ls[i]!) !== 0) assert.equal(verifyMerkleProof(other, proof, root), false);
        // A leaf one byte short or long fails (and does not throw).
        assert.equal(verifyMerkleProof(ls[i]!.subarray(1), proof, root), false);
        assert.equal(verifyMerkleProof(new Uint8Array([...ls[i]!, 0]), proof, root), false);
        assert.equal(verifyMerkleProof(new Uint8Array(0), proof, root), false);
        // And the right proof against another root fails.
        assert.equal(verifyMerkleProof(ls[i]!, proof, merkleRoot([...ls, other])), false);
      }),
      { numRuns: 300 },
    );
  });

  test('a wrong index fails (property)', () => {
    fc.assert(
      fc.property(
        treeAndIndex.filter(({ ls }) => ls.length > 1),
        fc.nat(),
        ({ ls, i }, pick) => {
          const root = merkleRoot(ls);
          const proof = merkleProof(ls, i);
          const j = (i + 1 + (pick % (ls.length - 1))) % ls.length;
          assert.notEqual(j, i);
          assert.equal(verifyMerkleProof(ls[i]!, { ...proof, index: j }, root), false);
          // Out of range or not an integer.
          for (const index of [ls.length, ls.length + 1, -1, i + 0.5, Number.NaN]) {
            assert.equal(verifyMerkleProof(ls[i]!, { ...proof, index }, root), false);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('a tampered sibling fails (property)', () => {
    fc.assert(
      fc.property(
        treeAndIndex.filter(({ ls }) => ls.length > 1),
        fc.nat(),
        fc.nat(255),
        ({ ls, i }, s, bit) => {
          const root = merkleRoot(ls);
          const proof = merkleProof(ls, i);
          const k = s % proof.siblings.length;
          const siblings = proof.siblings.map((x, n) => (n === k ? flipBit(x, bit) : x));
          assert.equal(verifyMerkleProof(ls[i]!, { ...proof, siblings }, root), false);
          // A sibling that is not 32 bytes.
          const short = proof.siblings.map((x, n) => (n === k ? x.subarray(0, 31) : x));
          assert.equal(verifyMerkleProof(ls[i]!, { ...proof, siblings: short }, root), false);
          // Swapping two siblings (when they differ) fails too.
          if (proof.siblings.length > 1) {
            const swapped = [...proof.siblings].reverse();
            if (swapped.some((x, n) => Buffer.compare(x, proof.siblings[n]!) !== 0)) {
              assert.equal(verifyMerkleProof(ls[i]!, { ...proof, siblings: swapped }, root), false);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('an extra or a missing sibling fails (property)', () => {
    fc.assert(
      fc.property(treeAndIndex, leaf, fc.nat(), ({ ls, i }, extra, at) => {
        const root = merkleRoot(ls);
        const proof = merkleProof(ls, i);
        const s = proof.siblings;
        const pos = at % (s.length + 1);
        const withExtra = [...s.slice(0, pos), extra, ...s.slice(pos)];
        assert.equal(verifyMerkleProof(ls[i]!, { ...proof, siblings: withExtra }, root), false);
        assert.equal(verifyMerkleProof(ls[i]!, { ...proof, siblings: [...s, s[0] ?? extra] }, root), false);
        if (s.length > 0) {
          const without = s.filter((_, n) => n !== at % s.length);
          assert.equal(verifyMerkleProof(ls[i]!, { ...proof, siblings: without }, root), false);
        }
      }),
      { numRuns: 300 },
    );
  });

  test('a different leafCount fails unless it gives the path exactly the same shape (property)', () => {
    fc.assert(
      fc.property(treeAndIndex, fc.integer({ min: 1, max: 400 }), ({ ls, i }, count) => {
        if (count === ls.length || i >= count) return;
        const root = merkleRoot(ls);
        const proof: MerkleProof = { ...merkleProof(ls, i), leafCount: count };
        const sameShape = pathShape(i, count) === pathShape(i, ls.length);
        assert.equal(verifyMerkleProof(ls[i]!, proof, root), sameShape);
      }),
      { numRuns: 500 },
    );
    // Not integers, or too small for the index.
    const ls = [1, 2, 3, 4, 5].map((n) => new Uint8Array(32).fill(n));
    const proof = merkleProof(ls, 4);
    const root = merkleRoot(ls);
    for (const leafCount of [4, 0, -5, 5.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.equal(verifyMerkleProof(ls[4]!, { ...proof, leafCount }, root), false, `leafCount ${leafCount}`);
    }
  });

  test('a different leafCount with the same path shape does not break membership', () => {
    // The root does not commit to the number of leaves, so the proof's leafCount and index are
    // only as good as the verifier's own knowledge of them (take both from the block, not the
    // proof). What cannot happen is a proof for a leaf that is not in the tree.
    const [a, b, c] = [1, 2, 3].map((n) => new Uint8Array(32).fill(n)) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    const root = merkleRoot([a, b, c]);
    const p = merkleProof([a, b, c], 2);
    assert.ok(verifyMerkleProof(c, p, root));
    // c is leaf 2 of 3, and its one sibling is the hash of (a, b): the same computation as leaf 1 of 2.
    assert.ok(verifyMerkleProof(c, { ...p, index: 1, leafCount: 2 }, root));
    // Leaf 0 of 3 and leaf 0 of 4 share a shape as well.
    assert.ok(verifyMerkleProof(a, { ...merkleProof([a, b, c], 0), leafCount: 4 }, root));
    // But nothing makes a leaf that is not in the list verify, at any index or count.
    const d = new Uint8Array(32).fill(4);
    for (let count = 1; count <= 8; count++) {
      for (let index = 0; index < count; index++) {
        for (const siblings of [
          p.siblings,
          merkleProof([a, b, c], 0).siblings,
          merkleProof([a, b, c], 1).siblings,
        ]) {
          assert.equal(verifyMerkleProof(d, { index, leafCount: count, siblings }, root), false);
        }
      }
    }
  });
});
