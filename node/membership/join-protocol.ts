/**
 * `/cairn/<chain>/join/1`: a device holding an invitation redeems it with the inviting node.
 *
 * Request: the invitation's one-time secret. The public key the certificate is issued to is
 * the requester's peer id, authenticated by Noise on this connection, so a secret seen in
 * transit is useless to anyone but the key that dials with it first. Response: one chunk, the
 * certificate bytes and the network config (JSON; the joiner checks it hashes to the chain id
 * the invitation names). This is the only Cairn protocol a non-member may use: the admission
 * gate lets it through and nothing else.
 */
import type { PeerId } from '@libp2p/interface';
import type { Hex } from '../chain/bytes.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { HandlerError, type ProtocolSpec, RESULT, type ReqResp, ReqRespError } from '../p2p/reqresp.ts';
import { MAX_CERTIFICATE_BYTES } from './certificate.ts';
import { SECRET_BYTES } from './invitation.ts';
import { InvitationError, type InvitationTerms, type RedeemRefusal } from './invitation-book.ts';

export const JOIN_PROTOCOL_NAME = 'join';
const MAX_CONFIG_BYTES = 64 * 1024;

export interface JoinAnswer {
  readonly certificate: Uint8Array;
  readonly networkConfigJson: string;
}

export const JOIN: ProtocolSpec<Uint8Array, JoinAnswer> = {
  name: JOIN_PROTOCOL_NAME,
  maxRequestBytes: SECRET_BYTES,
  maxChunkBytes: MAX_CERTIFICATE_BYTES + MAX_CONFIG_BYTES + 16,
  maxChunks: 1,
  minChunks: 1,
  timeoutMs: 10_000,
  // The joiner has no certificate yet: this is the one protocol a non-member is served.
  beforeAdmission: true,
  // A 128-bit secret is not guessed at any rate; this only keeps a stranger from making the
  // inviter do file reads in a loop.
  rateLimit: { points: 5, durationSec: 60 },
  encodeRequest: (secret) => secret,
  decodeRequest: (bytes) => {
    if (bytes.length !== SECRET_BYTES)
      throw new HandlerError(RESULT.invalidRequest, 'malformed-request: bad secret');
    return bytes;
  },
  encodeResponse: (a) => new Writer(1024).bytes(a.certificate).string(a.networkConfigJson).finish(),
  decodeResponse: (bytes) => {
    const r = new Reader(bytes);
    const certificate = new Uint8Array(r.bytes(MAX_CERTIFICATE_BYTES, 'certificate'));
    const networkConfigJson = r.string(MAX_CONFIG_BYTES, 'network config');
    r.end('join answer');
    return { certificate, networkConfigJson };
  },
};

export interface JoinServerDeps {
  redeem(secret: Uint8Array, publicKeyHex: Hex): Promise<InvitationTerms>;
  /** Signs the member's certificate and submits its addition to the chain; returns its bytes. */
  issue(terms: InvitationTerms, publicKeyHex: Hex): Promise<Uint8Array>;
  readonly networkConfigJson: string;
  /** The Ed25519 public key (hex) a peer id stands for. */
  publicKeyOf(peer: PeerId): Hex;
  /** Outcome counter: 'issued' or a refusal code. */
  count?(outcome: 'issued' | RedeemRefusal): void;
  /**
   * Keeps the joiner's connection from being refused for its missing handshake while its
   * invitation is redeemed (the admission gate's `holdOpen`); returns the release.
   */
  holdOpen?(peer: PeerId): () => void;
}

export async function serveJoin(reqresp: ReqResp, deps: JoinServerDeps): Promise<void> {
  await reqresp.register(JOIN, async (secret, peer) => {
    const release = deps.holdOpen?.(peer);
    try {
      return await redeemAndIssue(deps, secret, peer);
    } finally {
      release?.();
    }
  });
}

async function redeemAndIssue(deps: JoinServerDeps, secret: Uint8Array, peer: PeerId): Promise<JoinAnswer[]> {
  const publicKeyHex = deps.publicKeyOf(peer);
  let terms: InvitationTerms;
  try {
    terms = await deps.redeem(secret, publicKeyHex);
  } catch (err) {
    if (!(err instanceof InvitationError)) throw err;
    deps.count?.(err.code);
    throw new HandlerError(RESULT.invalidRequest, `${err.code}: ${err.message}`);
  }
  const certificate = await deps.issue(terms, publicKeyHex);
  deps.count?.('issued');
  return [{ certificate, networkConfigJson: deps.networkConfigJson }];
}

/** Redeems `secret` with `inviter`; an InvitationError with the inviter's reason if it refuses. */
export async function requestJoin(
  reqresp: ReqResp,
  inviter: PeerId,
  secret: Uint8Array,
): Promise<JoinAnswer> {
  try {
    const [answer] = await reqresp.request(inviter, JOIN, secret);
    return answer!;
  } catch (err) {
    if (err instanceof ReqRespError && err.code === 'invalid-request') {
      const m = /(unknown-invitation|invitation-used|invitation-expired): (.*)$/.exec(err.message);
      if (m) throw new InvitationError(m[1] as RedeemRefusal, m[2]!);
    }
    throw err;
  }
}
