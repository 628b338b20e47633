/**
 * Messaging's request/response protocols, framed, bounded and rate-limited like every Cairn
 * protocol (p2p/reqresp.ts):
 *   `/cairn/<chain>/msg/1`: one sealed envelope in, the recipient's signed receipt out;
 *   `/cairn/<chain>/msg-key/1`: an empty request, the responder's signed key record out.
 * The envelope is passed as bytes: the service opens it, so every refusal has its own code,
 * metric and penalty instead of a generic decode error.
 */
import type { ProtocolSpec } from '../p2p/reqresp.ts';
import { maxEnvelopeBytes } from './envelope.ts';
import { KEY_RECORD_BYTES } from './keys.ts';
import { RECEIPT_BYTES } from './receipt.ts';

const same = (b: Uint8Array) => b;

/** The message protocol for bodies of at most `maxBodyBytes`. */
export function msgProtocol(maxBodyBytes: number): ProtocolSpec<Uint8Array, Uint8Array> {
  return {
    name: 'msg',
    maxRequestBytes: maxEnvelopeBytes(maxBodyBytes),
    maxChunkBytes: RECEIPT_BYTES,
    maxChunks: 1,
    minChunks: 1,
    timeoutMs: 10_000,
    // 1,000+ messages per device per day is the target; a burst of 500 in 10 s from one peer
    // (an outbox draining after a week offline) is still served, a flood beyond it is not.
    rateLimit: { points: 500, durationSec: 10 },
    maxConcurrentPerPeer: 8,
    encodeRequest: same,
    decodeRequest: same,
    encodeResponse: same,
    decodeResponse: same,
  };
}

export const MSG_KEY: ProtocolSpec<Uint8Array, Uint8Array> = {
  name: 'msg-key',
  maxRequestBytes: 1,
  maxChunkBytes: KEY_RECORD_BYTES,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 5_000,
  rateLimit: { points: 20, durationSec: 10 },
  encodeRequest: same,
  decodeRequest: same,
  encodeResponse: same,
  decodeResponse: same,
};

/** Retry delay after `attempts` failed attempts: 1 s doubling to 5 min, ±20% jitter. */
export function backoffMs(attempts: number, random = Math.random()): number {
  const base = Math.min(
    MESSAGING_DEFAULTS.maxBackoffMs,
    MESSAGING_DEFAULTS.minBackoffMs * 2 ** Math.max(0, attempts - 1),
  );
  return Math.round(base * (0.8 + 0.4 * random));
}

/** Messaging defaults, written once. */
export const MESSAGING_DEFAULTS = {
  maxBodyBytes: 16 * 1024,
  minBackoffMs: 1_000,
  maxBackoffMs: 5 * 60_000,
  /** How often the outbox looks for due retries. */
  tickMs: 500,
  /** Deadline of one delivery attempt (dial included). */
  attemptTimeoutMs: 5_000,
} as const;
