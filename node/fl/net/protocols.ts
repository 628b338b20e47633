/**
 * The round protocol as req/resp protocols `/cairn/<chain>/fl-*\/1`: the coordinator asks, each
 * participant answers, one exchange per step, so every step has its own size bounds, deadline
 * and per-peer budget (reqresp.ts). Plus `model-by-hash`, which any node serves from its store.
 */
import { DecodeError } from '../../chain/codec/errors.ts';
import type { ProtocolSpec } from '../../p2p/reqresp.ts';
import { layoutDim } from '../local-round.ts';
import { MAX_PARTICIPANTS, maskedBytes, SHARE_BYTES, unmaskBytes } from '../secagg/messages.ts';
import { SIGNED_ADVERT_BYTES } from './advert-signature.ts';
import { MAX_MODEL_BYTES, MAX_PARAMS } from './model-codec.ts';
import { SURVIVOR_SIGNATURE_BYTES } from './survivor-set.ts';
import {
  type Announcement,
  type AnnounceReply,
  type CommitRequest,
  type ConfirmRequest,
  decodeAnnouncement,
  decodeAnnounceReply,
  decodeCommitRequest,
  decodeConfirmation,
  decodeConfirmRequest,
  decodeKeysRequest,
  decodeShareList,
  decodeSharesRequest,
  decodeTrainRequest,
  decodeUnmaskRequest,
  encodeAnnouncement,
  encodeAnnounceReply,
  encodeCommitRequest,
  encodeConfirmRequest,
  encodeKeysRequest,
  encodeShareList,
  encodeSharesRequest,
  encodeTrainRequest,
  encodeUnmaskRequest,
  type KeysRequest,
  MAX_DEADLINE_MS,
  type SharesRequest,
  type TrainRequest,
  type UnmaskRequest,
  unmaskRequestBytes,
} from './wire.ts';

const raw = {
  encodeResponse: (b: Uint8Array) => b,
  decodeResponse: (b: Uint8Array) => b,
};
const N = MAX_PARTICIPANTS;
/** Rounds run back to back: a few exchanges of each kind per second per coordinator at most. */
const budget = { points: 60, durationSec: 10 };

export const FL_ANNOUNCE: ProtocolSpec<Announcement, AnnounceReply> = {
  name: 'fl-announce',
  maxRequestBytes: 256,
  maxChunkBytes: 1_100,
  maxChunks: 1,
  minChunks: 1,
  // Includes fetching the global model from the coordinator when the participant lacks it.
  timeoutMs: 15_000,
  rateLimit: budget,
  encodeRequest: encodeAnnouncement,
  decodeRequest: decodeAnnouncement,
  encodeResponse: encodeAnnounceReply,
  decodeResponse: decodeAnnounceReply,
};

export const FL_KEYS: ProtocolSpec<KeysRequest, Uint8Array> = {
  name: 'fl-keys',
  maxRequestBytes: 40 + N * 130,
  // A signed advert (advert-signature.ts): the advert and its owner's identity-key signature.
  maxChunkBytes: SIGNED_ADVERT_BYTES,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 5_000,
  rateLimit: budget,
  encodeRequest: encodeKeysRequest,
  decodeRequest: decodeKeysRequest,
  ...raw,
};

export const FL_SHARES: ProtocolSpec<SharesRequest, Uint8Array[]> = {
  name: 'fl-shares',
  maxRequestBytes: 40 + N * (SIGNED_ADVERT_BYTES + 2),
  maxChunkBytes: 4 + N * (SHARE_BYTES + 2),
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 10_000,
  rateLimit: budget,
  encodeRequest: encodeSharesRequest,
  decodeRequest: decodeSharesRequest,
  encodeResponse: encodeShareList,
  decodeResponse: decodeShareList,
};

export const FL_TRAIN: ProtocolSpec<TrainRequest, Uint8Array> = {
  name: 'fl-train',
  maxRequestBytes: 40 + N + N * (SHARE_BYTES + 2),
  // Bounded by the largest model any round may announce; the exact size is checked per round.
  maxChunkBytes: maskedBytes(layoutDim(MAX_PARAMS)),
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: MAX_DEADLINE_MS,
  rateLimit: budget,
  encodeRequest: encodeTrainRequest,
  decodeRequest: decodeTrainRequest,
  ...raw,
};

/**
 * The consistency step before the reveals (survivor-set.ts confirmationQuorum): the survivor
 * signs the U3 the coordinator named, once per round, and answers with the signature.
 */
export const FL_CONFIRM: ProtocolSpec<ConfirmRequest, Uint8Array> = {
  name: 'fl-confirm',
  maxRequestBytes: 40 + N + SURVIVOR_SIGNATURE_BYTES,
  maxChunkBytes: SURVIVOR_SIGNATURE_BYTES,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 5_000,
  rateLimit: budget,
  encodeRequest: encodeConfirmRequest,
  decodeRequest: decodeConfirmRequest,
  encodeResponse: (b) => b,
  decodeResponse: decodeConfirmation,
};

export const FL_UNMASK: ProtocolSpec<UnmaskRequest, Uint8Array> = {
  name: 'fl-unmask',
  // U3 and its signature, and one relayed confirmation per survivor at most.
  maxRequestBytes: unmaskRequestBytes(N),
  maxChunkBytes: unmaskBytes(N),
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 5_000,
  rateLimit: budget,
  encodeRequest: encodeUnmaskRequest,
  decodeRequest: decodeUnmaskRequest,
  ...raw,
};

export const FL_COMMIT: ProtocolSpec<CommitRequest, true> = {
  name: 'fl-commit',
  maxRequestBytes: 32 + MAX_MODEL_BYTES,
  maxChunkBytes: 1,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 10_000,
  rateLimit: budget,
  encodeRequest: encodeCommitRequest,
  decodeRequest: decodeCommitRequest,
  encodeResponse: () => new Uint8Array([1]),
  decodeResponse: () => true,
};

/** A round ended without a commit: its participants may forget it now (`fl-end`). */
export interface EndRequest {
  readonly roundId: Uint8Array;
}

/**
 * The coordinator's notice that a round failed, to everyone it invited: a participant that was
 * left out (dropped at any step, or never asked to unmask) otherwise holds the round's state
 * until its deadline + 60 s, and with 4 such rounds declines every announcement as `busy`.
 */
export const FL_END: ProtocolSpec<EndRequest, true> = {
  name: 'fl-end',
  maxRequestBytes: 32,
  maxChunkBytes: 1,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 5_000,
  rateLimit: budget,
  encodeRequest: (e) => e.roundId,
  decodeRequest: (b) => {
    if (b.length !== 32) throw new DecodeError('invalid-value', 'an end notice is a 32-byte round id');
    return { roundId: b };
  },
  encodeResponse: () => new Uint8Array([1]),
  decodeResponse: () => true,
};

/** A model version by its hash: one chunk, the canonical bytes (checked against the hash by the caller). */
export const MODEL_BY_HASH: ProtocolSpec<Uint8Array, Uint8Array> = {
  name: 'model-by-hash',
  maxRequestBytes: 32,
  maxChunkBytes: MAX_MODEL_BYTES,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 15_000,
  rateLimit: { points: 100, durationSec: 10 },
  encodeRequest: (h) => h,
  decodeRequest: (b) => {
    if (b.length !== 32) throw new DecodeError('invalid-value', 'a model hash is 32 bytes');
    return b;
  },
  ...raw,
};
