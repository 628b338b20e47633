/**
 * Member certificates: an admin's signed statement that a key belongs to the network, with a
 * name, a role, capabilities and a validity window. Canonical, versioned and size-bounded like
 * every other Cairn encoding: one byte string per certificate, so its hash and its signature
 * are unambiguous, and a decoder that accepts only what the encoder writes.
 *
 *   tag 0x10 · version 1 · chain id (32) · subject key (32) · name (varint length, 1–64 UTF-8
 *   bytes) · role (u8, index in ROLES) · capabilities (u8 bit mask in CAPABILITIES order, no
 *   unknown bits) · issued-at (u64 ms) · expires-at (u64 ms, after issued-at) · issuer key (32)
 *   · Ed25519 signature (64) by the issuer over SHA-256 of everything before it.
 *
 * The chain id inside makes a certificate of one network worthless on another. Whether the
 * issuer is an admin, and whether the subject was revoked, is the roster's business
 * (roster-state.ts): this module is the bytes and the signature only.
 */
import { bytesEqual, type Hex, toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { sha256 } from '../chain/hash.ts';
import { capabilitiesOfMask, capabilityMask, MEMBER_NAME_MAX_BYTES } from '../chain/network-config.ts';
import { type SigningKey, sign, verifyNative } from '../chain/signature.ts';
import { CAPABILITIES, type Capability, ROLES, type Role } from './view.ts';

export const CERTIFICATE_TAG = 0x10;
export const CERTIFICATE_VERSION = 1;
/** The longest encoding: fixed fields plus the longest name (a one-byte length prefix). */
export const MAX_CERTIFICATE_BYTES = 1 + 1 + 32 + 32 + 1 + MEMBER_NAME_MAX_BYTES + 1 + 1 + 8 + 8 + 32 + 64;
const ALL_CAPABILITIES_MASK = (1 << CAPABILITIES.length) - 1;

export interface UnsignedCertificate {
  readonly chainId: Uint8Array;
  readonly subject: Uint8Array;
  readonly name: string;
  readonly role: Role;
  /** In CAPABILITIES order, no duplicates (what decoding yields). */
  readonly capabilities: readonly Capability[];
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly issuer: Uint8Array;
}

export interface Certificate extends UnsignedCertificate {
  readonly signature: Uint8Array;
  /** The canonical encoding, signature included. */
  readonly encoded: Uint8Array;
  /** SHA-256 of the unsigned encoding: what the issuer signs. */
  readonly digest: Uint8Array;
  readonly subjectHex: Hex;
  readonly issuerHex: Hex;
}

function encodeUnsigned(c: UnsignedCertificate): Uint8Array {
  const nameBytes = Buffer.byteLength(c.name);
  if (nameBytes < 1 || nameBytes > MEMBER_NAME_MAX_BYTES)
    throw new RangeError(`certificate name must be 1–${MEMBER_NAME_MAX_BYTES} UTF-8 bytes`);
  const role = ROLES.indexOf(c.role);
  if (role < 0) throw new RangeError(`unknown role ${c.role}`);
  if (!(c.expiresAtMs > c.issuedAtMs)) throw new RangeError('a certificate must expire after it is issued');
  const w = new Writer(MAX_CERTIFICATE_BYTES);
  w.u8(CERTIFICATE_TAG).u8(CERTIFICATE_VERSION).fixed(c.chainId, 32).fixed(c.subject, 32);
  w.string(c.name).u8(role).u8(capabilityMask(c.capabilities));
  w.u64(c.issuedAtMs).u64(c.expiresAtMs).fixed(c.issuer, 32);
  return w.finish();
}

function seal(c: UnsignedCertificate, unsigned: Uint8Array, signature: Uint8Array): Certificate {
  const encoded = new Uint8Array(unsigned.length + 64);
  encoded.set(unsigned);
  encoded.set(signature, unsigned.length);
  return {
    ...c,
    capabilities: capabilitiesOfMask(capabilityMask(c.capabilities)),
    signature,
    encoded,
    digest: sha256(unsigned),
    subjectHex: toHex(c.subject),
    issuerHex: toHex(c.issuer),
  };
}

/** Signs a certificate with the issuer's key (`c.issuer` must be that key's public half). */
export function signCertificate(c: Omit<UnsignedCertificate, 'issuer'>, issuer: SigningKey): Certificate {
  const full: UnsignedCertificate = { ...c, issuer: issuer.publicKey };
  const unsigned = encodeUnsigned(full);
  return seal(full, unsigned, sign(sha256(unsigned), issuer));
}

/** Decodes a certificate; every failure is a DecodeError. The result shares no memory with `bytes`. */
export function decodeCertificate(bytes: Uint8Array): Certificate {
  if (bytes.length > MAX_CERTIFICATE_BYTES)
    throw new DecodeError('oversized', `certificate of ${bytes.length} bytes`);
  const own = bytes.slice();
  const r = new Reader(own);
  const tag = r.u8('certificate tag');
  if (tag !== CERTIFICATE_TAG) throw new DecodeError('unknown-tag', `expected certificate tag, got ${tag}`);
  const version = r.u8('certificate version');
  if (version !== CERTIFICATE_VERSION)
    throw new DecodeError('unsupported-version', `certificate version ${version}`);
  const chainId = r.fixed(32, 'chain id');
  const subject = r.fixed(32, 'subject');
  const name = r.string(MEMBER_NAME_MAX_BYTES, 'name');
  if (name.length === 0) throw new DecodeError('invalid-value', 'empty member name');
  const roleIndex = r.u8('role');
  const role = ROLES[roleIndex];
  if (role === undefined) throw new DecodeError('invalid-value', `role ${roleIndex}`);
  const mask = r.u8('capabilities');
  if ((mask & ~ALL_CAPABILITIES_MASK) !== 0)
    throw new DecodeError('invalid-value', `unknown capability bits ${mask.toString(2)}`);
  const issuedAtMs = r.u64('issued-at');
  const expiresAtMs = r.u64('expires-at');
  if (!(expiresAtMs > issuedAtMs)) throw new DecodeError('invalid-value', 'expires before it is issued');
  const issuer = r.fixed(32, 'issuer');
  const unsignedEnd = r.offset;
  const signature = r.fixed(64, 'certificate signature');
  r.end('certificate');
  const c: UnsignedCertificate = {
    chainId,
    subject,
    name,
    role,
    capabilities: capabilitiesOfMask(mask),
    issuedAtMs,
    expiresAtMs,
    issuer,
  };
  return seal(c, own.subarray(0, unsignedEnd), signature);
}

/** Whether the signature is the issuer's over this certificate (Cairn's Ed25519 rule). */
export const certificateSignatureValid = (c: Certificate): boolean =>
  verifyNative(c.signature, c.digest, c.issuer);

/** Whether the certificate was issued for the network with this chain id. */
export const certificateForChain = (c: Certificate, chainId: Uint8Array): boolean =>
  bytesEqual(c.chainId, chainId);
