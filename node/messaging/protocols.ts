/**
 * Messaging's request/response protocols, framed, bounded and rate-limited like every Cairn
 * protocol (p2p/reqresp.ts):
 *   `/cairn/<chain>/msg/1`: one sealed envelope in, the recipient's signed receipt out;
 *   `/cairn/<chain>/msg-key/1`: an empty request, the responder's signed key record out.
 * The envelope is passed as bytes: the service opens it, so every refusal has its own code,
 * metric and penalty instead of a generic decode error.
 */
import { DecodeError } from '../chain/codec/errors.ts';
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
    // A sender keeps MESSAGING_DEFAULTS.inFlight attempts open towards one recipient, and its
    // outbox may drain 1,000 messages in a second after a week offline (the throughput target):
    // served. Twice the window concurrently, or ten thousand in 10 s, is a flood.
    rateLimit: { points: 10_000, durationSec: 10 },
    maxConcurrentPerPeer: 2 * MESSAGING_DEFAULTS.inFlight,
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

/** A mailbox takes one envelope to hold; the answer is one byte (0: stored or already held). */
export function depositProtocol(maxBodyBytes: number): ProtocolSpec<Uint8Array, Uint8Array> {
  return {
    name: 'msg-deposit',
    maxRequestBytes: maxEnvelopeBytes(maxBodyBytes),
    maxChunkBytes: 1,
    maxChunks: 1,
    minChunks: 1,
    timeoutMs: 10_000,
    // A depositor may hold its whole count quota (MAILBOX_DEFAULTS.perDepositorCount, 1,000) and
    // a recipient offline for a day leaves a backlog that size: one window takes all of it. The
    // quotas bound what a mailbox stores; this bounds how fast a depositor makes it work, and
    // senders pace themselves to it (pacer.ts) rather than being refused and penalised.
    rateLimit: { points: 1_000, durationSec: 10 },
    maxConcurrentPerPeer: 2 * MESSAGING_DEFAULTS.depositInFlight,
    encodeRequest: same,
    decodeRequest: same,
    encodeResponse: same,
    decodeResponse: same,
  };
}

/** Bytes of envelopes one fetch answer carries at most (a short answer is continued by asking again). */
export const MAX_FETCH_RESPONSE_BYTES = 4 * 1024 * 1024;

/** The requester's envelopes held by a mailbox (the requester is the connection's peer). */
export function fetchProtocol(maxBodyBytes: number, batch: number): ProtocolSpec<Uint8Array, Uint8Array> {
  return {
    name: 'msg-fetch',
    maxRequestBytes: 1,
    maxChunkBytes: maxEnvelopeBytes(maxBodyBytes),
    maxChunks: batch,
    maxResponseBytes: MAX_FETCH_RESPONSE_BYTES,
    timeoutMs: 20_000,
    rateLimit: { points: 60, durationSec: 10 },
    encodeRequest: same,
    decodeRequest: same,
    encodeResponse: same,
    decodeResponse: same,
  };
}

/** Receipts per acknowledgement at most. */
export const MAX_ACK_RECEIPTS = 64;

/** Signed receipts to a mailbox, which deletes what they acknowledge; the answer is how many. */
export const MSG_ACK: ProtocolSpec<Uint8Array[], number> = {
  name: 'msg-ack',
  maxRequestBytes: RECEIPT_BYTES * MAX_ACK_RECEIPTS,
  maxChunkBytes: 1,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 10_000,
  rateLimit: { points: 60, durationSec: 10 },
  encodeRequest: (rs) => {
    const out = new Uint8Array(rs.length * RECEIPT_BYTES);
    for (const [i, r] of rs.entries()) out.set(r, i * RECEIPT_BYTES);
    return out;
  },
  decodeRequest: (b) => {
    if (b.length === 0 || b.length % RECEIPT_BYTES !== 0)
      throw new DecodeError('invalid-value', `ack of ${b.length} bytes is not whole receipts`);
    return Array.from({ length: b.length / RECEIPT_BYTES }, (_, i) =>
      b.slice(i * RECEIPT_BYTES, (i + 1) * RECEIPT_BYTES),
    );
  },
  encodeResponse: (n) => new Uint8Array([Math.min(255, n)]),
  decodeResponse: (b) => b[0]!,
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
  /**
   * Delivery attempts one sender keeps open towards one recipient: the recipient holds arrivals
   * ahead of a gap, so order does not need one at a time, and eight round trips in flight hide
   * the commit each side waits for.
   */
  inFlight: 8,
  /**
   * Deposits one sender keeps open towards one mailbox (half the mailbox's per-peer bound, as for
   * `inFlight`: a slot the mailbox has not yet freed when its answer arrives is not a flood).
   */
  depositInFlight: 2,
  /** Mailboxes a message is deposited with when its recipient is unreachable. */
  mailboxCopies: 3,
  /** How often a node asks its connected mailboxes for held messages. */
  mailboxPollMs: 15_000,
} as const;
