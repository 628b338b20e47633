/**
 * The sealed message, after Session's sealed boxes: a relay sees whom it is for and nothing else.
 *
 * Outer envelope (what travels and what mailboxes hold):
 *   tag 0x30 · version 1 · recipient identity key (32) · ephemeral X25519 key (32) · nonce (24)
 *   · ciphertext (varint length, at most maxBodyBytes + INNER_OVERHEAD + 16)
 * The first 90 bytes are the AEAD's associated data, so a changed recipient, key or nonce fails
 * like a changed ciphertext bit. The key is HKDF-SHA256 of X25519(ephemeral, recipient's messaging
 * key), salted with both public keys; a fresh ephemeral key per message means a leaked message key
 * opens one message, and the sender's long-term keys never appear outside the ciphertext.
 *
 * Inner plaintext:
 *   tag 0x31 · version 1 · sender identity key (32) · sequence (u64) · sent-at (u64 ms)
 *   · body (varint length, UTF-8) · Ed25519 signature (64)
 * The signature covers the chain id, the recipient and the ephemeral key as well as the fields, so
 * a recipient cannot re-seal a message to a third member as if it had been sent to them, and a
 * message of one network is worthless on another.
 *
 * Two ids: `contentId` (SHA-256 of the envelope bytes) for relays, which cannot see more, and
 * (sender, recipient, sequence) for the application, which dedups and orders by it.
 */
import { randomBytes } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import sodium from 'sodium-native';
import { bytesEqual, concatBytes, type Hex, toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { sha256 } from '../chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../chain/signature.ts';
import { MessagingError } from './errors.ts';

export const ENVELOPE_TAG = 0x30;
export const INNER_TAG = 0x31;
export const ENVELOPE_VERSION = 1;
const HEADER_BYTES = 1 + 1 + 32 + 32 + 24;
const TAG_BYTES = 16;
/** Inner fields besides the body and its length prefix. */
const INNER_FIXED = 1 + 1 + 32 + 8 + 8 + 64;
/** Default largest body (UTF-8 bytes); a network may configure another (MESSAGING_DEFAULTS). */
export const DEFAULT_MAX_BODY_BYTES = 16 * 1024;
const utf8 = new TextEncoder();
const KEY_INFO = utf8.encode('cairn/msg/v1/key');
const SIGN_DOMAIN = utf8.encode('cairn/msg/v1/sig');

const varintBytes = (n: number) => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4);

/** Envelope bytes for a body of `bodyBytes`: header, ciphertext length prefix, inner fields, tag. */
export function envelopeBytesFor(bodyBytes: number): number {
  const inner = INNER_FIXED + varintBytes(bodyBytes) + bodyBytes;
  const ct = inner + TAG_BYTES;
  return HEADER_BYTES + varintBytes(ct) + ct;
}

/** The largest envelope a node accepts with bodies of at most `maxBodyBytes`. */
export const maxEnvelopeBytes = (maxBodyBytes: number): number => envelopeBytesFor(maxBodyBytes);

export interface MessageContent {
  readonly sender: Uint8Array;
  readonly sequence: number;
  readonly sentAtMs: number;
  readonly body: string;
}

export interface OpenedMessage extends MessageContent {
  readonly senderHex: Hex;
  readonly recipientHex: Hex;
  readonly contentId: Uint8Array;
  readonly contentIdHex: Hex;
}

export interface SealInput {
  readonly chainId: Uint8Array;
  readonly sender: SigningKey;
  readonly recipient: Uint8Array;
  readonly recipientMessagingKey: Uint8Array;
  readonly sequence: number;
  readonly sentAtMs: number;
  readonly body: string;
  readonly maxBodyBytes?: number;
  /** For tests: the ephemeral secret and nonce (random by default). */
  readonly ephemeralSecret?: Uint8Array;
  readonly nonce?: Uint8Array;
}

/*
 * X25519 and XChaCha20-Poly1305 through libsodium (sodium-native, as the chain's signatures):
 * the same constructions as @noble's, at a small fraction of their cost per message.
 */
const buf = (b: Uint8Array) => (Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function x25519Public(secret: Uint8Array): Uint8Array {
  const out = Buffer.alloc(32);
  sodium.crypto_scalarmult_base(out, buf(secret));
  return new Uint8Array(out);
}

/** Throws for a low-order public key (an all-zero shared secret), as libsodium refuses it. */
function x25519Shared(secret: Uint8Array, publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new RangeError('X25519 public key must be 32 bytes');
  const out = Buffer.alloc(32);
  sodium.crypto_scalarmult(out, buf(secret), buf(publicKey));
  return out;
}

function seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array): Uint8Array {
  const out = Buffer.alloc(plain.length + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, buf(plain), buf(aad), null, buf(nonce), buf(key));
  return new Uint8Array(out);
}

/** Throws when the tag does not verify. */
function unseal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ct: Uint8Array): Uint8Array {
  const tag = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES;
  if (ct.length < tag) throw new Error('ciphertext shorter than its tag');
  const out = Buffer.alloc(ct.length - tag);
  sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, buf(ct), buf(aad), buf(nonce), buf(key));
  return new Uint8Array(out);
}

function messageKey(shared: Uint8Array, ephemeral: Uint8Array, recipientKey: Uint8Array): Uint8Array {
  return hkdf(nobleSha256, shared, concatBytes(ephemeral, recipientKey), KEY_INFO, 32);
}

function signedDigest(
  chainId: Uint8Array,
  recipient: Uint8Array,
  ephemeral: Uint8Array,
  sender: Uint8Array,
  sequence: number,
  sentAtMs: number,
  body: Uint8Array,
): Uint8Array {
  const w = new Writer(128 + body.length);
  w.fixed(chainId, 32).fixed(recipient, 32).fixed(ephemeral, 32).fixed(sender, 32);
  w.u64(sequence).u64(sentAtMs).bytes(body);
  return sha256(SIGN_DOMAIN, w.finish());
}

/** Seals a message for one recipient; `oversized` when the body is over the bound. */
export function sealMessage(m: SealInput): { envelope: Uint8Array; contentId: Uint8Array } {
  const body = utf8.encode(m.body);
  const max = m.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  if (body.length > max)
    throw new MessagingError('oversized', `body of ${body.length} bytes, at most ${max}`);
  if (!Number.isSafeInteger(m.sequence) || m.sequence < 1) throw new RangeError('sequence must be >= 1');
  const ephSecret = m.ephemeralSecret ?? new Uint8Array(randomBytes(32));
  const ephemeral = x25519Public(ephSecret);
  const nonce = m.nonce ?? new Uint8Array(randomBytes(24));
  const signature = sign(
    signedDigest(m.chainId, m.recipient, ephemeral, m.sender.publicKey, m.sequence, m.sentAtMs, body),
    m.sender,
  );
  const inner = new Writer(INNER_FIXED + 4 + body.length);
  inner.u8(INNER_TAG).u8(ENVELOPE_VERSION).fixed(m.sender.publicKey, 32).u64(m.sequence).u64(m.sentAtMs);
  inner.bytes(body).fixed(signature, 64);
  const header = new Writer(HEADER_BYTES);
  header.u8(ENVELOPE_TAG).u8(ENVELOPE_VERSION).fixed(m.recipient, 32).fixed(ephemeral, 32).fixed(nonce, 24);
  const aad = header.finish();
  const key = messageKey(
    x25519Shared(ephSecret, m.recipientMessagingKey),
    ephemeral,
    m.recipientMessagingKey,
  );
  const ct = seal(key, nonce, aad, inner.finish());
  const out = new Writer(HEADER_BYTES + 4 + ct.length);
  out.fixed(aad, HEADER_BYTES).bytes(ct);
  const envelope = out.finish();
  return { envelope, contentId: sha256(envelope) };
}

export interface EnvelopeHeader {
  readonly recipient: Uint8Array;
  readonly recipientHex: Hex;
  readonly ephemeral: Uint8Array;
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly contentId: Uint8Array;
  readonly contentIdHex: Hex;
  /** The envelope's own bytes (a copy). */
  readonly encoded: Uint8Array;
}

/** What a relay can read: routing only. `malformed` or `oversized` otherwise. */
export function readEnvelope(bytes: Uint8Array, maxBodyBytes = DEFAULT_MAX_BODY_BYTES): EnvelopeHeader {
  const max = maxEnvelopeBytes(maxBodyBytes);
  if (bytes.length > max)
    throw new MessagingError('oversized', `envelope of ${bytes.length} bytes, at most ${max}`);
  const own = bytes.slice();
  try {
    const r = new Reader(own);
    const tag = r.u8('envelope tag');
    if (tag !== ENVELOPE_TAG) throw new DecodeError('unknown-tag', `tag ${tag}`);
    const version = r.u8('envelope version');
    if (version !== ENVELOPE_VERSION) throw new DecodeError('unsupported-version', `version ${version}`);
    const recipient = r.fixed(32, 'recipient');
    const ephemeral = r.fixed(32, 'ephemeral key');
    const nonce = r.fixed(24, 'nonce');
    const ciphertext = r.bytes(max, 'ciphertext');
    r.end('envelope');
    if (ciphertext.length < INNER_FIXED + 1 + TAG_BYTES)
      throw new DecodeError('truncated', `ciphertext of ${ciphertext.length} bytes`);
    const contentId = sha256(own);
    return {
      recipient,
      recipientHex: toHex(recipient),
      ephemeral,
      nonce,
      ciphertext,
      contentId,
      contentIdHex: toHex(contentId),
      encoded: own,
    };
  } catch (err) {
    throw new MessagingError('malformed', `envelope: ${(err as Error).message}`);
  }
}

export interface OpenInput {
  readonly chainId: Uint8Array;
  /** The recipient's identity key (what the envelope must be addressed to). */
  readonly self: Uint8Array;
  readonly messagingSecret: Uint8Array;
  /** Its public half, when the caller has it (saves a scalar multiplication per message). */
  readonly messagingPublic?: Uint8Array;
  readonly maxBodyBytes?: number;
}

/**
 * Opens an envelope addressed to `self`: `misaddressed` when it is for someone else, `tampered`
 * when the AEAD fails, `malformed` when the plaintext is not canonical, `bad-signature` when the
 * sender's signature fails. Whether the sender is a member is the caller's business.
 */
export function openMessage(bytes: Uint8Array, o: OpenInput): OpenedMessage {
  const maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const h = readEnvelope(bytes, maxBody);
  if (!bytesEqual(h.recipient, o.self))
    throw new MessagingError('misaddressed', `for ${h.recipientHex.slice(0, 16)}…`);
  const recipientKey = o.messagingPublic ?? x25519Public(o.messagingSecret);
  let plain: Uint8Array;
  try {
    const shared = x25519Shared(o.messagingSecret, h.ephemeral);
    const key = messageKey(shared, h.ephemeral, recipientKey);
    plain = unseal(key, h.nonce, h.encoded.subarray(0, HEADER_BYTES), h.ciphertext);
  } catch (err) {
    throw new MessagingError('tampered', `does not decrypt (${(err as Error).message})`);
  }
  let fields: { sender: Uint8Array; sequence: number; sentAtMs: number; body: Uint8Array; sig: Uint8Array };
  try {
    const r = new Reader(plain);
    const tag = r.u8('inner tag');
    if (tag !== INNER_TAG) throw new DecodeError('unknown-tag', `tag ${tag}`);
    const version = r.u8('inner version');
    if (version !== ENVELOPE_VERSION) throw new DecodeError('unsupported-version', `version ${version}`);
    fields = {
      sender: r.fixed(32, 'sender'),
      sequence: r.u64('sequence'),
      sentAtMs: r.u64('sent-at'),
      body: r.bytes(maxBody, 'body'),
      sig: r.fixed(64, 'signature'),
    };
    r.end('message');
    if (fields.sequence < 1) throw new DecodeError('invalid-value', 'sequence 0');
  } catch (err) {
    // Only the sender (who knew the key) can produce a plaintext that decrypts: theirs is the fault.
    throw new MessagingError(
      err instanceof DecodeError && err.code === 'oversized' ? 'oversized' : 'malformed',
      `message: ${(err as Error).message}`,
    );
  }
  let body: string;
  try {
    body = new TextDecoder('utf-8', { fatal: true }).decode(fields.body);
  } catch {
    throw new MessagingError('malformed', 'body is not UTF-8');
  }
  const digest = signedDigest(
    o.chainId,
    h.recipient,
    h.ephemeral,
    fields.sender,
    fields.sequence,
    fields.sentAtMs,
    fields.body,
  );
  // A wrong chain id shows up here: the sender signed for another network.
  if (!verifyNative(fields.sig, digest, fields.sender))
    throw new MessagingError('bad-signature', 'sender signature');
  return {
    sender: fields.sender,
    senderHex: toHex(fields.sender),
    recipientHex: h.recipientHex,
    sequence: fields.sequence,
    sentAtMs: fields.sentAtMs,
    body,
    contentId: h.contentId,
    contentIdHex: h.contentIdHex,
  };
}
