/**
 * Invitations: how a device gets into a roster network with one command on each side.
 *
 * An admin's node issues an invitation: a short string carrying the chain id (so the joiner
 * knows which network to accept), the inviter's addresses (with /p2p/<peer id>, so the joiner
 * dials exactly that node) and a one-time secret, valid until an expiry. The joiner connects to
 * the inviter, proves it holds the secret over its Noise-authenticated connection (so the
 * certificate goes to the key that connected), and receives its certificate and the network
 * config. The terms (name, role, capabilities, certificate lifetime) never leave the inviter:
 * whoever holds the string can only redeem what the admin decided, once.
 *
 * The string is `cairn-invite:` + base64url of a canonical binary encoding; a QR code of it
 * is printed for phones.
 */
import { fromHex, type Hex, toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';

export const INVITATION_PREFIX = 'cairn-invite:';
const VERSION = 1;
export const SECRET_BYTES = 16;
/** Bounds of what an invitation carries: it must fit a QR code a phone can read. */
export const INVITATION_LIMITS = { addrs: 8, addrBytes: 256, encodedChars: 2048 } as const;

export interface Invitation {
  readonly chainIdHex: Hex;
  /** Multiaddrs of the inviting node, each ending in /p2p/<its peer id>. */
  readonly addrs: readonly string[];
  readonly secret: Uint8Array;
  readonly expiresAtMs: number;
}

export function encodeInvitation(inv: Invitation): string {
  if (inv.secret.length !== SECRET_BYTES) throw new RangeError(`secret must be ${SECRET_BYTES} bytes`);
  if (inv.addrs.length === 0 || inv.addrs.length > INVITATION_LIMITS.addrs)
    throw new RangeError(`an invitation carries 1 to ${INVITATION_LIMITS.addrs} addresses`);
  const w = new Writer(256);
  w.u8(VERSION).fixed(fromHex(inv.chainIdHex), 32).fixed(inv.secret, SECRET_BYTES).u64(inv.expiresAtMs);
  w.varint(inv.addrs.length);
  for (const a of inv.addrs) {
    if (new TextEncoder().encode(a).length > INVITATION_LIMITS.addrBytes)
      throw new RangeError(`address longer than ${INVITATION_LIMITS.addrBytes} bytes`);
    w.string(a);
  }
  return INVITATION_PREFIX + Buffer.from(w.finish()).toString('base64url');
}

/** The invitation a string encodes; a DecodeError (with its code) for anything else. */
export function decodeInvitation(text: string): Invitation {
  const s = text.trim();
  if (!s.startsWith(INVITATION_PREFIX))
    throw new DecodeError('invalid-value', `not a Cairn invitation (expected ${INVITATION_PREFIX}…)`);
  if (s.length > INVITATION_LIMITS.encodedChars) throw new DecodeError('oversized', 'invitation too long');
  const body = s.slice(INVITATION_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(body)) throw new DecodeError('invalid-value', 'invitation is not base64url');
  const bytes = new Uint8Array(Buffer.from(body, 'base64url'));
  // Canonical: exactly one encoding per invitation (no trailing bits, no padding variants).
  if (Buffer.from(bytes).toString('base64url') !== body)
    throw new DecodeError('non-canonical', 'invitation is not canonical base64url');
  const r = new Reader(bytes);
  const version = r.u8('invitation version');
  if (version !== VERSION) throw new DecodeError('unsupported-version', `invitation version ${version}`);
  const chainIdHex = toHex(r.fixed(32, 'chain id'));
  const secret = r.fixed(SECRET_BYTES, 'secret');
  const expiresAtMs = r.u64('expiry');
  const n = r.varint(INVITATION_LIMITS.addrs, 'address count');
  if (n === 0) throw new DecodeError('invalid-value', 'invitation without an address');
  const addrs: string[] = [];
  for (let i = 0; i < n; i++) addrs.push(r.string(INVITATION_LIMITS.addrBytes, 'address'));
  r.end('invitation');
  return { chainIdHex, addrs, secret: new Uint8Array(secret), expiresAtMs };
}

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** "30d", "12h", "90m", "45s", "2w" → milliseconds; undefined if it is not one of those. */
export function parseDuration(text: string): number | undefined {
  const m = /^([1-9][0-9]{0,5})([smhdw])$/.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}
