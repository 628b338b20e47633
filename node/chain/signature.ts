import { createPublicKey, type KeyObject, verify as nodeVerify } from 'node:crypto';
import sodium from 'sodium-native';

export { type PublicKey, verifyNoble } from './signature-rule.ts';

import type { PublicKey } from './signature-rule.ts';

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
