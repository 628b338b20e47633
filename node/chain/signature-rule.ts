import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, equalBytes } from '@noble/curves/utils.js';
import { sha512 } from '@noble/hashes/sha2.js';

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

/** Pure-JS path, free of Node APIs: the browser console imports this file. */
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
