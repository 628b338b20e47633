/**
 * Command results sealed to the gateway that asked: whoever reads Redis (a client blocked on
 * XREAD sees every completion live) reads ciphertext only. An admin.inviteDevice result is a
 * bearer invitation; the rest (peer lists, rosters) is no one else's business either, so every
 * result is sealed, and no list of "secret" commands can miss a new one.
 *
 * The gateway puts a fresh X25519 public key (the reply key) in each command it signs
 * (command-codec.ts), so the key reaching the node is the one the gateway chose, and it drops the
 * secret half once the command is answered: a later theft of the gateway's files opens nothing
 * recorded earlier. The node seals with a key of its own made for this one result:
 *
 *   ephemeral X25519 public key (32) · XChaCha20-Poly1305 nonce (24) · ciphertext with tag (16)
 *
 * key = HKDF-SHA256(X25519(ephemeral, reply key), salt = the command's digest,
 *                   info = SEAL_INFO · ephemeral public · reply key), 32 bytes.
 *
 * The salt ties the key to one command: a sealed result copied to another command's answer does
 * not open. Who sealed it is not this module's business: the node signs the sealed bytes
 * (result-codec.ts), and the gateway checks that signature before it opens anything.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { managedNonce } from '@noble/ciphers/utils.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';

export const REPLY_KEY_BYTES = 32;
const NONCE_BYTES = 24;
const TAG_BYTES = 16;
/** What sealing adds to the plaintext. */
export const SEAL_OVERHEAD = REPLY_KEY_BYTES + NONCE_BYTES + TAG_BYTES;
const SEAL_INFO = new TextEncoder().encode('cairn/jobs/result-seal/v1');

/** Sealing or opening failed; `unsealable` is a well-formed box this key and command do not open. */
export class SealError extends Error {
  readonly code: 'bad-key' | 'malformed' | 'unsealable';
  constructor(code: 'bad-key' | 'malformed' | 'unsealable', message: string) {
    super(message);
    this.code = code;
    this.name = 'SealError';
  }
}

export interface ReplyKey {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** A fresh reply key pair: one per command. */
export function newReplyKey(): ReplyKey {
  const secretKey = x25519.utils.randomSecretKey();
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

function agree(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  try {
    return x25519.getSharedSecret(secret, peerPublic);
  } catch (err) {
    // A low-order point gives an all-zero secret, which noble refuses.
    throw new SealError('bad-key', `unusable X25519 public key: ${(err as Error).message}`);
  }
}

function boxKey(shared: Uint8Array, context: Uint8Array, ephemeral: Uint8Array, reply: Uint8Array) {
  const info = new Uint8Array(SEAL_INFO.length + 2 * REPLY_KEY_BYTES);
  info.set(SEAL_INFO);
  info.set(ephemeral, SEAL_INFO.length);
  info.set(reply, SEAL_INFO.length + REPLY_KEY_BYTES);
  return hkdf(sha256, shared, context, info, 32);
}

/** Seals `plaintext` to `replyKey` for the command whose digest is `context`. */
export function seal(plaintext: Uint8Array, replyKey: Uint8Array, context: Uint8Array): Uint8Array {
  if (replyKey.length !== REPLY_KEY_BYTES) throw new SealError('bad-key', 'a reply key is 32 bytes');
  const ephemeral = newReplyKey();
  const key = boxKey(agree(ephemeral.secretKey, replyKey), context, ephemeral.publicKey, replyKey);
  // managedNonce draws a random 24-byte nonce and puts it in front of the ciphertext.
  const box = managedNonce(xchacha20poly1305)(key).encrypt(plaintext);
  const out = new Uint8Array(REPLY_KEY_BYTES + box.length);
  out.set(ephemeral.publicKey);
  out.set(box, REPLY_KEY_BYTES);
  return out;
}

/** Opens what `seal` made with the reply key's secret half; a SealError for anything else. */
export function open(sealed: Uint8Array, reply: ReplyKey, context: Uint8Array): Uint8Array {
  if (sealed.length < SEAL_OVERHEAD)
    throw new SealError('malformed', `a sealed result is at least ${SEAL_OVERHEAD} bytes`);
  const ephemeral = sealed.subarray(0, REPLY_KEY_BYTES);
  const key = boxKey(agree(reply.secretKey, ephemeral), context, ephemeral, reply.publicKey);
  try {
    return managedNonce(xchacha20poly1305)(key).decrypt(sealed.subarray(REPLY_KEY_BYTES));
  } catch {
    throw new SealError('unsealable', 'the sealed result does not open with this reply key and command');
  }
}
