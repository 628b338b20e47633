/**
 * Cairn's signature rule has two implementations (noble in pure JS, libsodium natively) that
 * consensus needs to agree on every input. RFC 8032 vectors, random keys and messages with
 * corruptions, and the edge cases where Ed25519 verifiers are known to differ.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import fc from 'fast-check';
import { concatBytes, fromHex, toHex } from './bytes.ts';
import { keyPairFromSeed, sign, verifyNative, verifyNoble, verifyNodeCrypto } from './signature.ts';

const { Point } = ed25519;
const L = Point.Fn.ORDER;
const modL = (x: bigint) => ((x % L) + L) % L;
const sha512 = (...parts: Uint8Array[]) => {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/** Both verifiers on one input; asserts they agree and returns the common answer. */
function verifyBoth(sig: Uint8Array, msg: Uint8Array, key: Uint8Array): boolean {
  const noble = verifyNoble(sig, msg, key);
  const native = verifyNative(sig, msg, key);
  assert.equal(noble, native, `noble says ${noble}, libsodium says ${native}`);
  return noble;
}

const flipBit = (b: Uint8Array, bit: number) => {
  const c = b.slice();
  c[(bit >> 3) % c.length]! ^= 1 << (bit & 7);
  return c;
};

// RFC 8032, section 7.1 (Ed25519): TEST 1, TEST 2, TEST 3, TEST 1024 and TEST SHA(abc).
const RFC8032 = [
  {
    name: 'TEST 1',
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2',
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3',
    secret: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    publicKey: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
  {
    name: 'TEST 1024',
    secret: 'f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5',
    publicKey: '278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e',
    message: [
      '08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1',
      'e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d',
      '658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a',
      '7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e',
      '06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10',
      '3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1',
      '85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d',
      '502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270',
      '88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b',
      'eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba',
      'b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b',
      'e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7',
      '51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d',
      'cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df',
      'f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7',
      '984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4',
      '88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09',
      '43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f',
      'b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161',
      '0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d',
      'b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca',
      'c60c905c15fc910840b94c00a0b9d0',
    ].join(''),
    signature:
      '0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03',
  },
  {
    name: 'TEST SHA(abc)',
    secret: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
    publicKey: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
    message:
      'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    signature:
      'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704',
  },
] as const;

describe('RFC 8032 section 7.1 vectors', () => {
  test('the embedded vectors are the RFC ones (sizes, and SHA(abc) is SHA-512 of "abc")', () => {
    assert.equal(fromHex(RFC8032[3].message).length, 1023);
    assert.equal(RFC8032[4].message, toHex(sha512(new TextEncoder().encode('abc'))));
  });

  for (const v of RFC8032) {
    test(`${v.name}: derived key and signature match, noble, libsodium and OpenSSL accept`, () => {
      const [seed, pub, msg, sig] = [v.secret, v.publicKey, v.message, v.signature].map(fromHex) as [
        Uint8Array,
        Uint8Array,
        Uint8Array,
        Uint8Array,
      ];
      const key = keyPairFromSeed(seed);
      assert.equal(toHex(key.publicKey), v.publicKey);
      assert.deepStrictEqual(key.secretKey, concatBytes(seed, pub), 'libsodium layout: seed then public key');
      assert.equal(toHex(sign(msg, key)), v.signature);
      // An independent implementation signs the same bytes (Ed25519 is deterministic).
      assert.equal(toHex(ed25519.sign(msg, seed)), v.signature);
      assert.equal(verifyNoble(sig, msg, pub), true);
      assert.equal(verifyNative(sig, msg, pub), true);
      assert.equal(verifyNodeCrypto(sig, msg, pub), true);
      // And none of them accepts it for another message or with another vector's key.
      const other = RFC8032.find((w) => w !== v)!;
      assert.equal(verifyBoth(sig, concatBytes(msg, new Uint8Array([0])), pub), false);
      assert.equal(verifyBoth(sig, msg, fromHex(other.publicKey)), false);
      assert.equal(verifyNodeCrypto(sig, concatBytes(msg, new Uint8Array([0])), pub), false);
    });
  }
});

describe('random keys and messages', () => {
  const seed = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const message = fc.uint8Array({ maxLength: 300 });

  test('500 valid signatures: all three verifiers accept; every bit flip is rejected by both', () => {
    let runs = 0;
    fc.assert(
      fc.property(
        seed,
        message,
        fc.nat(511),
        fc.nat(),
        fc.nat(255),
        fc.uint8Array({ minLength: 1, maxLength: 1 }),
        (s, msg, sigBit, msgBit, keyBit, extra) => {
          runs++;
          const key = keyPairFromSeed(s);
          const sig = sign(msg, key);
          assert.equal(verifyBoth(sig, msg, key.publicKey), true);
          assert.equal(verifyNodeCrypto(sig, msg, key.publicKey), true);

          const badSig = flipBit(sig, sigBit);
          assert.equal(verifyBoth(badSig, msg, key.publicKey), false, `sig bit ${sigBit}`);
          assert.equal(verifyNodeCrypto(badSig, msg, key.publicKey), false);

          const badMsg = msg.length > 0 ? flipBit(msg, msgBit % (msg.length * 8)) : extra;
          assert.equal(verifyBoth(sig, badMsg, key.publicKey), false, 'message bit');
          assert.equal(verifyNodeCrypto(sig, badMsg, key.publicKey), false);

          const badKey = flipBit(key.publicKey, keyBit);
          assert.equal(verifyBoth(sig, msg, badKey), false, `key bit ${keyBit}`);
          assert.equal(verifyNodeCrypto(sig, msg, badKey), false);
        },
      ),
      { numRuns: 500, seed: 0x5eed },
    );
    assert.equal(runs, 500);
  });

  test('a signature by one key does not verify under another', () => {
    fc.assert(
      fc.property(seed, seed, message, (a, b, msg) => {
        fc.pre(toHex(a) !== toHex(b));
        const sig = sign(msg, keyPairFromSeed(a));
        assert.equal(verifyBoth(sig, msg, keyPairFromSeed(b).publicKey), false);
      }),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Edge cases. Where possible the input is a real forgery: it satisfies the cofactorless equation
// [S]B = R + [k]A, so it is only the rule under test that makes a verifier refuse it.

const hashScalar = (R: Uint8Array, A: Uint8Array, msg: Uint8Array) =>
  modL(bytesToNumberLE(sha512(R, A, msg)));
const scalarBytes = (s: bigint) => numberToBytesLE(s, 32);
/** [S]B == R + [k]A, evaluated directly on points (no encoding checks). */
function equationHolds(sig: Uint8Array, msg: Uint8Array, A: Uint8Array): boolean {
  const R = Point.fromBytes(sig.subarray(0, 32), true);
  const a = Point.fromBytes(A, true);
  const S = bytesToNumberLE(sig.subarray(32));
  const k = hashScalar(sig.subarray(0, 32), A, msg);
  return Point.BASE.multiplyUnsafe(modL(S)).equals(R.add(a.multiplyUnsafe(k)));
}

/** A point of order 8 (one of the encodings on libsodium's small-order blocklist). */
const T8 = Point.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a');
/** All eight points of the torsion subgroup, as canonical encodings. */
const TORSION = Array.from({ length: 8 }, (_, i) => Point.ZERO.add(T8.multiplyUnsafe(BigInt(i))).toBytes());
/** Non-canonical encodings of small-order points (y >= p, or x = 0 with the sign bit set). */
const NON_CANONICAL_SMALL = [
  '0100000000000000000000000000000000000000000000000000000000000080', // identity, sign bit set
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // y = -1, sign bit set
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1 (= 1)
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // y = p + 1, sign bit set
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p (= 0)
].map(fromHex);

const signer = keyPairFromSeed(new Uint8Array(32).fill(0x42));
const signerScalar = ed25519.utils.getExtendedPublicKey(signer.secretKey.subarray(0, 32)).scalar;
const msgOf = (n: number) => new TextEncoder().encode(`cairn edge case ${n}`);

describe('edge cases both verifiers reject', () => {
  test('the torsion points are what they claim to be', () => {
    assert.equal(new Set(TORSION.map(toHex)).size, 8);
    assert.ok(T8.multiplyUnsafe(4n).equals(Point.ZERO) === false);
    assert.ok(T8.multiplyUnsafe(8n).equals(Point.ZERO));
    for (const t of TORSION) assert.ok(Point.fromBytes(t).isSmallOrder());
    assert.ok(
      TORSION.some((t) => toHex(t) === `01${'00'.repeat(31)}`),
      'the identity is among them',
    );
    for (const t of NON_CANONICAL_SMALL) {
      assert.throws(() => Point.fromBytes(t, false), 'not a canonical encoding');
    }
  });

  test('non-canonical S (S + L, S + 2L) is rejected even though the equation holds', () => {
    for (let n = 0; n < 20; n++) {
      const msg = msgOf(n);
      const sig = sign(msg, signer);
      const s = bytesToNumberLE(sig.subarray(32));
      for (const bigS of [s + L, s + 2n * L, s + 15n * L]) {
        if (bigS >= 1n << 256n) continue;
        const forged = concatBytes(sig.subarray(0, 32), scalarBytes(bigS));
        assert.ok(equationHolds(forged, msg, signer.publicKey), 'S + L is the same scalar');
        assert.equal(verifyBoth(forged, msg, signer.publicKey), false);
        assert.equal(verifyNodeCrypto(forged, msg, signer.publicKey), false);
      }
    }
    // S = L exactly, and all ones.
    const sig = sign(msgOf(0), signer);
    for (const bad of [scalarBytes(L), new Uint8Array(32).fill(0xff)]) {
      assert.equal(verifyBoth(concatBytes(sig.subarray(0, 32), bad), msgOf(0), signer.publicKey), false);
    }
  });

  test('small-order public keys are rejected, including signatures that satisfy the equation', () => {
    let forgeries = 0;
    for (const A of [...TORSION, ...NON_CANONICAL_SMALL]) {
      for (let n = 0; n < 64; n++) {
        // R = [r]B and S = r: with a small-order A, [k]A vanishes whenever k is a multiple of its order.
        const r = modL(bytesToNumberLE(sha512(A, msgOf(n))));
        const R = Point.BASE.multiply(r).toBytes();
        const sig = concatBytes(R, scalarBytes(r));
        if (equationHolds(sig, msgOf(n), A)) forgeries++;
        assert.equal(verifyBoth(sig, msgOf(n), A), false, `key ${toHex(A)}`);
        // A real signature by another key, presented with the small-order key.
        assert.equal(verifyBoth(sign(msgOf(n), signer), msgOf(n), A), false);
      }
    }
    // With the identity as key every such signature is a forgery for any message.
    assert.ok(forgeries >= 64, `only ${forgeries} of the crafted signatures satisfied the equation`);
  });

  test('a small-order R is rejected, including R = identity with S = k·a', () => {
    let forgeries = 0;
    for (let n = 0; n < 30; n++) {
      const msg = msgOf(n);
      for (const R of TORSION) {
        // For R = identity, S = k·a satisfies [S]B = R + [k]A exactly.
        const k = hashScalar(R, signer.publicKey, msg);
        const sig = concatBytes(R, scalarBytes(modL(k * signerScalar)));
        if (equationHolds(sig, msg, signer.publicKey)) forgeries++;
        assert.equal(verifyBoth(sig, msg, signer.publicKey), false, `R ${toHex(R)}`);
      }
      for (const R of NON_CANONICAL_SMALL) {
        const sig = concatBytes(R, sign(msg, signer).subarray(32));
        assert.equal(verifyBoth(sig, msg, signer.publicKey), false, `R ${toHex(R)}`);
      }
    }
    assert.equal(forgeries, 30, 'the identity-R signature satisfies the equation for every message');
  });

  test('wrong lengths are rejected without throwing', () => {
    const msg = msgOf(1);
    const sig = sign(msg, signer);
    for (const s of [sig.subarray(0, 63), concatBytes(sig, new Uint8Array(1)), new Uint8Array(0)]) {
      assert.equal(verifyBoth(s, msg, signer.publicKey), false);
    }
    for (const k of [
      signer.publicKey.subarray(0, 31),
      concatBytes(signer.publicKey, new Uint8Array(1)),
      new Uint8Array(0),
    ]) {
      assert.equal(verifyBoth(sig, msg, k), false);
    }
    assert.equal(verifyBoth(sig, msg, signer.publicKey), true);
  });

  test('a valid R with a torsion component added is rejected', () => {
    for (let n = 0; n < 10; n++) {
      const msg = msgOf(n);
      const sig = sign(msg, signer);
      const R = Point.fromBytes(sig.subarray(0, 32)).add(T8).toBytes();
      assert.equal(verifyBoth(concatBytes(R, sig.subarray(32)), msg, signer.publicKey), false);
    }
  });

  test('non-canonical public key and R encodings (y >= p) are rejected', () => {
    // A point whose y-coordinate is below 19 can be written with y + p as well; find some.
    const p = (1n << 255n) - 19n;
    const alternates: Uint8Array[] = [];
    for (let y = 2n; y < 19n; y++) {
      try {
        Point.fromBytes(numberToBytesLE(y, 32), false);
        alternates.push(numberToBytesLE(y + p, 32));
      } catch {
        // no point with this y
      }
    }
    assert.ok(alternates.length > 0);
    const msg = msgOf(2);
    const sig = sign(msg, signer);
    for (const enc of alternates) {
      assert.ok(Point.fromBytes(enc, true), 'decodes leniently');
      assert.equal(verifyBoth(sig, msg, enc), false);
      assert.equal(verifyBoth(concatBytes(enc, sig.subarray(32)), msg, signer.publicKey), false);
    }
  });
});

describe('mixed-order public keys (agreement, not rejection)', () => {
  test('A + T8 verifies exactly when k is a multiple of 8, for both verifiers', () => {
    // The rule is cofactorless: [S]B = R + [k](A + T) holds iff [k]T = 0. Verifiers that
    // disagree here (cofactored vs cofactorless) would split the chain.
    const A2 = Point.fromBytes(signer.publicKey).add(T8).toBytes();
    assert.equal(Point.fromBytes(A2).isSmallOrder(), false);
    assert.equal(Point.fromBytes(A2).isTorsionFree(), false);
    let accepted = 0;
    let rejected = 0;
    for (let n = 0; accepted < 4 || rejected < 4; n++) {
      assert.ok(n < 500, 'enough of both outcomes');
      const msg = msgOf(n);
      const r = modL(bytesToNumberLE(sha512(new Uint8Array([n]), msg)));
      const R = Point.BASE.multiply(r).toBytes();
      const k = hashScalar(R, A2, msg);
      const sig = concatBytes(R, scalarBytes(modL(r + k * signerScalar)));
      const expected = k % 8n === 0n;
      assert.equal(verifyBoth(sig, msg, A2), expected, `k mod 8 = ${k % 8n}`);
      if (expected) accepted++;
      else rejected++;
    }
  });
});
