import { createPublicKey, type KeyObject, verify as nodeVerify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';
import sodium from 'sodium-native';

/**
 * Cairn's signature rule, one definition for every node (consensus depends on it):
 * Ed25519 per RFC 8032 with canonical encodings of A, R and S, public key and R not of small
 * order, and the cofactorless equation [S]B = R + [k]A compared on encodings. This is exactly
 * what libsodium's crypto_sign_verify_detached accepts; the noble path below implements the
 * same rule so that both agree on every input, including crafted torsion-component signatures.
 */
export type PublicKey = Uint8Array;

const L = ed25519.Point.Fn.ORDER;
const { Point } = ed25519;

/** Pure-JS path (also what the browser console uses). */
export function verifyNoble(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  try {
    const A = Point.fromBytes(publicKey, false);
    const rBytes = signature.subarray(0, 32);
    const R = Point.fromBytes(rBytes, false);
    if (A.isSmallOrder() || R.isSmallOrder()) return false;
    const s = bytesToNumberLE(signature.subarray(32));
    if (s >= L) return false;
    const k = bytesToNumberLE(sha512(new Uint8Array([...rBytes, ...publicKey, ...message]))) % L;
    const check = Point.BASE.multiplyUnsafe(s).subtract(A.multiplyUnsafe(k));
    return equalBytes(check.toBytes(), rBytes);
  } catch {
    return false;
  }
}

const asBuffer = (b: Uint8Array) =>
  Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Native path: libsodium through an N-API binding, about 25× the noble path on this machine. */
export function verifyNative(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey): boolean {
  if (signature.length !== 64 || publicKey.length !== 32) return false;
  return sodium.crypto_sign_verify_detached(asBuffer(signature), asBuffer(message), asBuffer(publicKey));
}

const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const keyObjects = new Map<string, KeyObject>();

/**
 * node:crypto (OpenSSL) path, kept for comparison in the benchmark only: it is slower than
 * libsodium here and does not reject small-order keys, so it is not Cairn's rule.
 */
export function verifyNodeCrypto(signature: Uint8Array, message: Uint8Array, publicKey: PublicKey): boolean {
  const id = Buffer.from(publicKey).toString('hex');
  let key = keyObjects.get(id);
  if (!key) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    if (keyObjects.size > 10_000) keyObjects.clear();
    keyObjects.set(id, key);
  }
  return nodeVerify(null, message, key, signature);
}

export interface SigningKey {
  readonly publicKey: PublicKey;
  /** libsodium layout: 32-byte seed followed by the public key. */
  readonly secretKey: Uint8Array;
}

export function keyPairFromSeed(seed: Uint8Array): SigningKey {
  if (seed.length !== 32) throw new RangeError('seed must be 32 bytes');
  const publicKey = Buffer.alloc(32);
  const secretKey = Buffer.alloc(64);
  sodium.crypto_sign_seed_keypair(publicKey, secretKey, asBuffer(seed));
  return { publicKey: new Uint8Array(publicKey), secretKey: new Uint8Array(secretKey) };
}

export function generateSigningKey(): SigningKey {
  const seed = Buffer.alloc(32);
  sodium.randombytes_buf(seed);
  return keyPairFromSeed(seed);
}

export function sign(message: Uint8Array, key: SigningKey): Uint8Array {
  const sig = Buffer.alloc(64);
  sodium.crypto_sign_detached(sig, asBuffer(message), asBuffer(key.secretKey));
  return new Uint8Array(sig);
}
