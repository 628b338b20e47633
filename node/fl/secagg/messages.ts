/**
 * Wire formats of the secure-aggregation messages. Every message is a fixed layout with its
 * length checked before anything is read, so a malformed or oversized message is a typed
 * SecAggError for its sender alone and never disturbs the rest of the round.
 *
 * Common header: type u8 | version u8 | roundId 32 bytes | from u16 (big-endian).
 */

export type SecAggErrorCode =
  | 'malformed'
  | 'oversized'
  | 'wrong-round'
  | 'unknown-participant'
  | 'duplicate'
  | 'dimension-mismatch'
  | 'decryption-failed'
  | 'too-few-participants'
  | 'protocol-violation'
  /** A signature over a message (net/advert-signature.ts) does not verify against its signer. */
  | 'bad-signature'
  | 'reconstruction-failed';

export class SecAggError extends Error {
  override readonly name = 'SecAggError';
  readonly code: SecAggErrorCode;
  constructor(code: SecAggErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

export const VERSION = 1;
export const ROUND_ID_BYTES = 32;
export const KEY_BYTES = 32;
/** Upper bound on a masked update's length (coordinates), whatever the round announces. */
export const MAX_DIM = 1 << 20;
/** Share points are bytes (GF(256) Shamir), so ids are 1..255. */
export const MAX_PARTICIPANTS = 255;

export const MessageType = { Advertise: 1, Share: 2, Masked: 3, Unmask: 4 } as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const HEADER = 2 + ROUND_ID_BYTES + 2;
export const ADVERTISE_BYTES = HEADER + 3 * KEY_BYTES;
/** Shamir shares of the mask key and the self-mask seed: 2 × 32 bytes, plus the Poly1305 tag. */
export const SHARE_PLAINTEXT_BYTES = 2 * KEY_BYTES;
export const SHARE_BYTES = HEADER + 2 + SHARE_PLAINTEXT_BYTES + 16;
export const maskedBytes = (dim: number): number => HEADER + 4 + 4 * dim;
const UNMASK_ENTRY = 2 + 1 + KEY_BYTES;
export const unmaskBytes = (entries: number): number => HEADER + 2 + entries * UNMASK_ENTRY;

export interface KeyAdvertisement {
  readonly roundId: Uint8Array;
  readonly from: number;
  /** X25519 public key for the pairwise masks. */
  readonly maskPublic: Uint8Array;
  /** X25519 public key for encrypting the Shamir shares to this participant. */
  readonly encPublic: Uint8Array;
  /** SHA-256 of the self-mask seed, so a reconstructed seed can be checked. */
  readonly selfMaskCommitment: Uint8Array;
}

export interface EncryptedShare {
  readonly roundId: Uint8Array;
  readonly from: number;
  readonly to: number;
  /** ChaCha20-Poly1305 of (mask-key share ‖ self-mask share). */
  readonly ciphertext: Uint8Array;
}

export interface MaskedUpdate {
  readonly roundId: Uint8Array;
  readonly from: number;
  readonly masked: Uint32Array;
}

export interface RevealedShare {
  /** Whose secret this is a share of. */
  readonly of: number;
  /** `self`: of survived, its self mask must go; `mask`: of dropped, its pairwise masks must go. */
  readonly kind: 'self' | 'mask';
  readonly share: Uint8Array;
}

export interface UnmaskingShares {
  readonly roundId: Uint8Array;
  readonly from: number;
  readonly shares: readonly RevealedShare[];
}

/** What the receiver expects; every decoded field is checked against it. */
export interface Expect {
  readonly roundId: Uint8Array;
  /** Ids allowed as senders. */
  readonly participants: ReadonlySet<number>;
}

function header(type: MessageType, roundId: Uint8Array, from: number, size: number): [Uint8Array, DataView] {
  if (roundId.length !== ROUND_ID_BYTES) throw new SecAggError('malformed', 'round id must be 32 bytes');
  if (!Number.isInteger(from) || from < 1 || from > MAX_PARTICIPANTS) {
    throw new SecAggError('malformed', `participant id ${from} out of range`);
  }
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  buf[0] = type;
  buf[1] = VERSION;
  buf.set(roundId, 2);
  view.setUint16(2 + ROUND_ID_BYTES, from);
  return [buf, view];
}

function readHeader(
  type: MessageType,
  buf: Uint8Array,
  minSize: number,
  maxSize: number,
  expect: Expect,
): { view: DataView; from: number } {
  if (!(buf instanceof Uint8Array)) throw new SecAggError('malformed', 'not a byte string');
  if (buf.length > maxSize) throw new SecAggError('oversized', `${buf.length} bytes > ${maxSize}`);
  if (buf.length < minSize) throw new SecAggError('malformed', `${buf.length} bytes < ${minSize}`);
  if (buf[0] !== type) throw new SecAggError('malformed', `message type ${buf[0]}, expected ${type}`);
  if (buf[1] !== VERSION) throw new SecAggError('malformed', `unsupported version ${buf[1]}`);
  for (let i = 0; i < ROUND_ID_BYTES; i++) {
    if (buf[2 + i] !== expect.roundId[i])
      throw new SecAggError('wrong-round', 'message is for another round');
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const from = view.getUint16(2 + ROUND_ID_BYTES);
  if (!expect.participants.has(from)) throw new SecAggError('unknown-participant', `sender ${from}`);
  return { view, from };
}

const copy = (buf: Uint8Array, at: number, n: number) => buf.slice(at, at + n);

export function encodeAdvertisement(m: KeyAdvertisement): Uint8Array {
  const [buf] = header(MessageType.Advertise, m.roundId, m.from, ADVERTISE_BYTES);
  for (const k of [m.maskPublic, m.encPublic, m.selfMaskCommitment]) {
    if (k.length !== KEY_BYTES) throw new SecAggError('malformed', 'keys are 32 bytes');
  }
  buf.set(m.maskPublic, HEADER);
  buf.set(m.encPublic, HEADER + KEY_BYTES);
  buf.set(m.selfMaskCommitment, HEADER + 2 * KEY_BYTES);
  return buf;
}

export function decodeAdvertisement(buf: Uint8Array, expect: Expect): KeyAdvertisement {
  const { from } = readHeader(MessageType.Advertise, buf, ADVERTISE_BYTES, ADVERTISE_BYTES, expect);
  return {
    roundId: expect.roundId,
    from,
    maskPublic: copy(buf, HEADER, KEY_BYTES),
    encPublic: copy(buf, HEADER + KEY_BYTES, KEY_BYTES),
    selfMaskCommitment: copy(buf, HEADER + 2 * KEY_BYTES, KEY_BYTES),
  };
}

export function encodeShare(m: EncryptedShare): Uint8Array {
  const [buf, view] = header(MessageType.Share, m.roundId, m.from, SHARE_BYTES);
  if (m.ciphertext.length !== SHARE_PLAINTEXT_BYTES + 16)
    throw new SecAggError('malformed', 'ciphertext length');
  view.setUint16(HEADER, m.to);
  buf.set(m.ciphertext, HEADER + 2);
  return buf;
}

export function decodeShare(buf: Uint8Array, expect: Expect): EncryptedShare {
  const { view, from } = readHeader(MessageType.Share, buf, SHARE_BYTES, SHARE_BYTES, expect);
  const to = view.getUint16(HEADER);
  if (!expect.participants.has(to) || to === from)
    throw new SecAggError('unknown-participant', `recipient ${to}`);
  return { roundId: expect.roundId, from, to, ciphertext: copy(buf, HEADER + 2, SHARE_PLAINTEXT_BYTES + 16) };
}

export function encodeMasked(m: MaskedUpdate): Uint8Array {
  const dim = m.masked.length;
  if (dim > MAX_DIM) throw new SecAggError('oversized', `dimension ${dim} > ${MAX_DIM}`);
  const [buf, view] = header(MessageType.Masked, m.roundId, m.from, maskedBytes(dim));
  view.setUint32(HEADER, dim);
  // Little-endian words, the ring's in-memory order (ring.ts refuses big-endian hosts).
  buf.set(new Uint8Array(m.masked.buffer, m.masked.byteOffset, dim * 4), HEADER + 4);
  return buf;
}

export function decodeMasked(buf: Uint8Array, expect: Expect & { readonly dim: number }): MaskedUpdate {
  const size = maskedBytes(expect.dim);
  const { view, from } = readHeader(MessageType.Masked, buf, HEADER + 4, size, expect);
  const dim = view.getUint32(HEADER);
  if (dim !== expect.dim)
    throw new SecAggError('dimension-mismatch', `dimension ${dim}, expected ${expect.dim}`);
  if (buf.length !== size) throw new SecAggError('malformed', `${buf.length} bytes, expected ${size}`);
  const words = new Uint32Array(dim);
  new Uint8Array(words.buffer).set(buf.subarray(HEADER + 4));
  return { roundId: expect.roundId, from, masked: words };
}

export function encodeUnmask(m: UnmaskingShares): Uint8Array {
  const [buf, view] = header(MessageType.Unmask, m.roundId, m.from, unmaskBytes(m.shares.length));
  view.setUint16(HEADER, m.shares.length);
  let at = HEADER + 2;
  for (const s of m.shares) {
    if (s.share.length !== KEY_BYTES) throw new SecAggError('malformed', 'shares are 32 bytes');
    view.setUint16(at, s.of);
    buf[at + 2] = s.kind === 'self' ? 1 : 2;
    buf.set(s.share, at + 3);
    at += UNMASK_ENTRY;
  }
  return buf;
}

export function decodeUnmask(buf: Uint8Array, expect: Expect): UnmaskingShares {
  const max = unmaskBytes(MAX_PARTICIPANTS);
  const { view, from } = readHeader(MessageType.Unmask, buf, HEADER + 2, max, expect);
  const count = view.getUint16(HEADER);
  if (buf.length !== unmaskBytes(count))
    throw new SecAggError('malformed', 'length does not match the count');
  const shares: RevealedShare[] = [];
  const seen = new Set<number>();
  for (let k = 0, at = HEADER + 2; k < count; k++, at += UNMASK_ENTRY) {
    const of = view.getUint16(at);
    const tag = buf[at + 2];
    if (!expect.participants.has(of)) throw new SecAggError('unknown-participant', `share of ${of}`);
    if (seen.has(of)) throw new SecAggError('duplicate', `two shares of ${of}`);
    if (tag !== 1 && tag !== 2) throw new SecAggError('malformed', `share kind ${tag}`);
    seen.add(of);
    shares.push({ of, kind: tag === 1 ? 'self' : 'mask', share: copy(buf, at + 3, KEY_BYTES) });
  }
  return { roundId: expect.roundId, from, shares };
}
