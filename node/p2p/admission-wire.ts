/**
 * The admission handshake's wire format and the small pure pieces around it (no I/O).
 *
 * `/cairn/<chain>/admission/1`, one stream per new connection, opened by the side that dialled:
 *   dialer → listener: one length-prefixed frame, the dialer's certificate bytes (empty: none,
 *                      as for admins and genesis members, whom the chain itself records);
 *   listener → dialer: one frame, `0x00 ‖ listener's certificate` once the dialer is admitted,
 *                      or `0x01 ‖ refusal code (UTF-8)` before the listener closes the connection.
 * The dialer reveals its certificate first (it chose whom to dial); a listener shows its own
 * (name, role, capabilities) only to a peer it admitted. One round trip, in parallel with identify.
 */
import type { Multiaddr } from '@multiformats/multiaddr';
import type { AdmissionRefusal } from '../membership/view.ts';
import { plainIp } from './ip-ranges.ts';

/**
 * Largest certificate accepted in the handshake. A certificate is a key, a short name, a role,
 * capabilities, two timestamps, the issuer and a signature: a few hundred bytes. The bound only
 * caps what a stranger can make us buffer before we judge it.
 */
export const MAX_CERTIFICATE_BYTES = 2048;
/** Longest a new connection may stay unadmitted: the dialer's frame, or the listener's answer. */
export const ADMISSION_TIMEOUT_MS = 2_000;

/**
 * Why a peer was refused at admission: the view's own codes plus the network layer's
 * (no answer in time, an oversized or garbled frame, a key or address refused before the
 * handshake). Each is a label of `cairn_membership_refusals_total{code,transport}`.
 */
export type RefusalCode =
  | AdmissionRefusal
  | 'handshake-timeout'
  | 'handshake-failed'
  | 'banned-address'
  /** A read-only peer (admission-gate.ts) that served us nothing useful for too long. */
  | 'read-only-idle';

const OK = 0x00;
const REFUSED = 0x01;
const MAX_CODE_BYTES = 64;

export type AdmissionAnswer =
  | { readonly ok: true; readonly certificate: Uint8Array | undefined }
  | { readonly ok: false; readonly code: string };

export function encodeAnswer(answer: AdmissionAnswer): Uint8Array {
  if (answer.ok) {
    const cert = answer.certificate ?? new Uint8Array(0);
    const out = new Uint8Array(1 + cert.length);
    out[0] = OK;
    out.set(cert, 1);
    return out;
  }
  const code = new TextEncoder().encode(answer.code).subarray(0, MAX_CODE_BYTES);
  const out = new Uint8Array(1 + code.length);
  out[0] = REFUSED;
  out.set(code, 1);
  return out;
}

/** Throws on anything but the two frame kinds (the caller refuses the peer as `handshake-failed`). */
export function decodeAnswer(frame: Uint8Array): AdmissionAnswer {
  if (frame.length === 0) throw new Error('empty admission answer');
  if (frame[0] === OK) {
    const cert = frame.subarray(1);
    return { ok: true, certificate: cert.length ? cert : undefined };
  }
  if (frame[0] === REFUSED && frame.length <= 1 + MAX_CODE_BYTES) {
    // A stranger's text: only printable ASCII goes into our logs.
    const code = new TextDecoder().decode(frame.subarray(1)).replace(/[^\x20-\x7e]/g, '?');
    return { ok: false, code };
  }
  throw new Error(`admission answer of kind ${frame[0]} and ${frame.length} bytes`);
}

/** The transport label of a connection's remote address. */
export function transportOf(addr: Multiaddr | string): 'tcp' | 'webrtc-direct' | 'other' {
  const parts = addr.toString().split('/');
  if (parts.includes('webrtc-direct')) return 'webrtc-direct';
  if (parts.includes('tcp')) return 'tcp';
  return 'other';
}

/** The IP address of a remote multiaddr (its first ip4/ip6 component), if it has one. */
export function ipOf(addr: Multiaddr): string | undefined {
  const parts = addr.getComponents();
  // A relayed connection's only IP is the relay's: charging it would ban everyone it relays.
  if (parts.some((c) => c.name === 'p2p-circuit')) return undefined;
  for (const c of parts) {
    // IPv4-mapped IPv6 (a dual-stack listener's IPv4 clients) as plain IPv4: one host each.
    if (c.name === 'ip4' || c.name === 'ip6') return c.value === undefined ? undefined : plainIp(c.value);
  }
  return undefined;
}

/**
 * What a refusal costs the peer id. A certificate for another key, a forged signature or another
 * network's certificate is an attack, and a revoked device knows it was revoked: banned at once.
 * The rest (no certificate, an expired one, an issuer we do not know yet, a peer too slow to
 * answer) may be an honest device that is early or late: each costs enough that five in a row
 * ban it (peer-scores.ts: −10 each, ban at −50), without locking out a device that gets its
 * certificate a minute later.
 */
export function refusalSeverity(code: RefusalCode): 'fatal' | 'low-tolerance' {
  switch (code) {
    case 'revoked':
    case 'bad-signature':
    case 'wrong-subject':
    case 'wrong-network':
      return 'fatal';
    default:
      return 'low-tolerance';
  }
}
