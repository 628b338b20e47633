/**
 * Messaging keys. A node's X25519 messaging key is derived from its identity seed by HKDF with
 * its own info string, so it is stable across restarts yet never the Ed25519 signing key reused
 * (a key used for both signing and agreement lets an attack on one protocol spill into the other).
 * The public half is published in a key record the identity key signs:
 *
 *   tag 0x20 · version 1 · chain id (32) · identity key (32) · X25519 key (32) · issued-at (u64 ms)
 *   · Ed25519 signature (64) over SHA-256 of everything before it
 *
 * The chain id makes a record of one network worthless on another; the signature lets any
 * peer (a mailbox, a node that learned it second hand) hand it on without being trusted.
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bytesEqual, type Hex, toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { sha256 } from '../chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../chain/signature.ts';
import { MessagingError } from './errors.ts';

export const KEY_RECORD_TAG = 0x20;
export const KEY_RECORD_VERSION = 1;
export const KEY_RECORD_BYTES = 1 + 1 + 32 + 32 + 32 + 8 + 64;
const utf8 = new TextEncoder();
/** HKDF info of the messaging key: a change here is a new key for every node. */
const MESSAGING_KEY_INFO = utf8.encode('cairn/messaging/x25519/v1');
const MESSAGING_KEY_SALT = utf8.encode('cairn/messaging');

export interface MessagingKeyPair {
  readonly secretKey: Uint8Array;
  readonly publicKey: Uint8Array;
}

/** The X25519 messaging key of an identity seed (32 bytes). */
export function messagingKeyFromSeed(seed: Uint8Array): MessagingKeyPair {
  if (seed.length !== 32) throw new RangeError('identity seed must be 32 bytes');
  const secretKey = hkdf(nobleSha256, seed, MESSAGING_KEY_SALT, MESSAGING_KEY_INFO, 32);
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

export interface KeyRecord {
  readonly chainId: Uint8Array;
  /** The member's Ed25519 identity key (its peer id's key). */
  readonly identity: Uint8Array;
  readonly messagingKey: Uint8Array;
  readonly issuedAtMs: number;
  readonly signature: Uint8Array;
  readonly encoded: Uint8Array;
  readonly identityHex: Hex;
}

function unsignedRecord(chainId: Uint8Array, identity: Uint8Array, key: Uint8Array, at: number): Uint8Array {
  const w = new Writer(KEY_RECORD_BYTES);
  w.u8(KEY_RECORD_TAG).u8(KEY_RECORD_VERSION).fixed(chainId, 32).fixed(identity, 32).fixed(key, 32).u64(at);
  return w.finish();
}

/** This node's key record: its messaging key, signed with its identity key. */
export function signKeyRecord(
  chainId: Uint8Array,
  identity: SigningKey,
  messagingKey: Uint8Array,
  issuedAtMs: number,
): KeyRecord {
  const unsigned = unsignedRecord(chainId, identity.publicKey, messagingKey, issuedAtMs);
  const signature = sign(sha256(unsigned), identity);
  const encoded = new Uint8Array(KEY_RECORD_BYTES);
  encoded.set(unsigned);
  encoded.set(signature, unsigned.length);
  return {
    chainId,
    identity: identity.publicKey,
    messagingKey,
    issuedAtMs,
    signature,
    encoded,
    identityHex: toHex(identity.publicKey),
  };
}

/**
 * Decodes and verifies a key record of this network; a record that does not decode is
 * `malformed`, one of another network `misaddressed`, a wrong signature `bad-signature`.
 */
export function openKeyRecord(bytes: Uint8Array, chainId: Uint8Array): KeyRecord {
  let r: Reader;
  let fields: { chain: Uint8Array; identity: Uint8Array; key: Uint8Array; at: number; sig: Uint8Array };
  const own = bytes.slice();
  try {
    if (own.length !== KEY_RECORD_BYTES) throw new DecodeError('invalid-value', `${own.length} bytes`);
    r = new Reader(own);
    const tag = r.u8('key record tag');
    if (tag !== KEY_RECORD_TAG) throw new DecodeError('unknown-tag', `tag ${tag}`);
    const version = r.u8('key record version');
    if (version !== KEY_RECORD_VERSION) throw new DecodeError('unsupported-version', `version ${version}`);
    fields = {
      chain: r.fixed(32, 'chain id'),
      identity: r.fixed(32, 'identity'),
      key: r.fixed(32, 'messaging key'),
      at: r.u64('issued-at'),
      sig: r.fixed(64, 'signature'),
    };
    r.end('key record');
  } catch (err) {
    throw new MessagingError('malformed', `key record: ${(err as Error).message}`);
  }
  if (!bytesEqual(fields.chain, chainId))
    throw new MessagingError('misaddressed', 'key record of another network');
  const digest = sha256(own.subarray(0, KEY_RECORD_BYTES - 64));
  if (!verifyNative(fields.sig, digest, fields.identity))
    throw new MessagingError('bad-signature', 'key record signature');
  return {
    chainId: fields.chain,
    identity: fields.identity,
    messagingKey: fields.key,
    issuedAtMs: fields.at,
    signature: fields.sig,
    encoded: own,
    identityHex: toHex(fields.identity),
  };
}
