/**
 * Key advertisements signed by the member they name (issue 16, finding 2). The coordinator relays
 * every advert, so without a signature it could hand a participant adverts whose key pairs it
 * made itself under real trainers' names: the participant would then encrypt its Shamir shares to
 * the coordinator, which could rebuild its mask key and self-mask seed and strip every mask off
 * its update. Each advert therefore travels with an Ed25519 signature by its owner's identity key
 * (the libp2p peer key, which the peer id embeds), and a participant shares its secrets only with
 * adverts whose signatures verify against the roster members they claim to be.
 *
 * The signed message binds, besides the advert (round id, roster id, the three public keys), the
 * roster and threshold the signer was given: a coordinator cannot show members different rosters
 * or thresholds and still relay their adverts to one another.
 *
 * Wire form (fixed size): advert (secagg/messages.ts, ADVERTISE_BYTES) ‖ signature (64 bytes).
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { sha256 } from '@noble/hashes/sha2.js';
import { Writer } from '../../chain/codec/writer.ts';
import {
  ADVERTISE_BYTES,
  decodeAdvertisement,
  type Expect,
  type KeyAdvertisement,
  SecAggError,
} from '../secagg/messages.ts';
import { SURVIVOR_SIGNATURE_BYTES, type SurvivorVerifier } from './survivor-set.ts';

const DOMAIN = new TextEncoder().encode('cairn/fl/key-advert/v1');
/** Ed25519 signatures, as for survivor sets: the identity keys' type. */
export const ADVERT_SIGNATURE_BYTES = SURVIVOR_SIGNATURE_BYTES;
export const SIGNED_ADVERT_BYTES = ADVERTISE_BYTES + ADVERT_SIGNATURE_BYTES;

/** The roster a keys request fixes: who holds which id (position + 1), and the threshold. */
export interface RosterStatement {
  readonly roundId: Uint8Array;
  readonly threshold: number;
  readonly participants: readonly string[];
}

/**
 * The member a roster entry names: a peer id in its canonical (base58btc) form, whichever
 * encoding the entry uses, else the entry itself. One key has more than one peer-id string (the
 * base58 multihash and the `bafz…` CID both parse to it), so distinct strings are not distinct
 * members: a coordinator holding `train` could list itself twice and sign both adverts, leaving
 * a "roster of three" with one other member in it.
 */
export function rosterMember(entry: string): string {
  try {
    return peerIdFromString(entry).toString();
  } catch {
    return entry;
  }
}

/** Whether `signature` over `message` is by `member` (a peer id); the same shape as survivor sets'. */
export type AdvertVerifier = SurvivorVerifier;

/** SHA-256 of round id ‖ threshold u8 ‖ count (LEB128) ‖ each peer id (length-prefixed UTF-8). */
function rosterDigest(r: RosterStatement): Uint8Array {
  const w = new Writer(64 + 60 * r.participants.length).fixed(r.roundId, 32).u8(r.threshold);
  w.varint(r.participants.length);
  for (const p of r.participants) w.string(p);
  return sha256(w.finish());
}

const RUN_DOMAIN = new TextEncoder().encode('cairn/fl/run/v1');

/**
 * SHA-256 of run-domain ‖ roster digest ‖ count (LEB128) ‖ each signed advert (length-prefixed),
 * as the shares request relayed them: what one run of a round is. The adverts hold keys fresh in
 * every run, so two runs under one round id (a coordinator may reuse its ids) never share it; a
 * survivor's confirmation signs it (survivor-set.ts confirmationMessage), so a confirmation from
 * one run counts in no other (attack review fl-trust3, confirmations replayed across runs).
 */
export function runDigest(roster: RosterStatement, signedAdverts: readonly Uint8Array[]): Uint8Array {
  const w = new Writer(64 + signedAdverts.length * (SIGNED_ADVERT_BYTES + 2));
  w.fixed(RUN_DOMAIN, RUN_DOMAIN.length).fixed(rosterDigest(roster), 32).varint(signedAdverts.length);
  for (const a of signedAdverts) w.bytes(a);
  return sha256(w.finish());
}

/** domain ‖ roster digest ‖ the advert's canonical bytes: what the advert's owner signs. */
export function advertSigningMessage(advert: Uint8Array, roster: RosterStatement): Uint8Array {
  if (advert.length !== ADVERTISE_BYTES) throw new SecAggError('malformed', 'advert length');
  const digest = rosterDigest(roster);
  const out = new Uint8Array(DOMAIN.length + digest.length + advert.length);
  out.set(DOMAIN);
  out.set(digest, DOMAIN.length);
  out.set(advert, DOMAIN.length + digest.length);
  return out;
}

export function encodeSignedAdvert(advert: Uint8Array, signature: Uint8Array): Uint8Array {
  if (advert.length !== ADVERTISE_BYTES) throw new SecAggError('malformed', 'advert length');
  if (signature.length !== ADVERT_SIGNATURE_BYTES) throw new SecAggError('malformed', 'signature length');
  const out = new Uint8Array(SIGNED_ADVERT_BYTES);
  out.set(advert);
  out.set(signature, ADVERTISE_BYTES);
  return out;
}

/** Splits a signed advert; the advert part is decoded (and checked) against `expect`. */
export function decodeSignedAdvert(
  bytes: Uint8Array,
  expect: Expect,
): { readonly advert: KeyAdvertisement; readonly advertBytes: Uint8Array; readonly signature: Uint8Array } {
  if (!(bytes instanceof Uint8Array)) throw new SecAggError('malformed', 'not a byte string');
  if (bytes.length > SIGNED_ADVERT_BYTES)
    throw new SecAggError('oversized', `${bytes.length} bytes > ${SIGNED_ADVERT_BYTES}`);
  if (bytes.length < SIGNED_ADVERT_BYTES)
    throw new SecAggError(
      'malformed',
      `signed advert of ${bytes.length} bytes, expected ${SIGNED_ADVERT_BYTES}`,
    );
  const advertBytes = bytes.slice(0, ADVERTISE_BYTES);
  return {
    advert: decodeAdvertisement(advertBytes, expect),
    advertBytes,
    signature: bytes.slice(ADVERTISE_BYTES),
  };
}

/**
 * Decodes a signed advert and checks that the roster member its id names signed it for this
 * roster: the advert, or a SecAggError (`bad-signature` when the signature does not verify).
 */
export async function openSignedAdvert(
  bytes: Uint8Array,
  roster: RosterStatement,
  verify: AdvertVerifier,
): Promise<KeyAdvertisement> {
  const expect = {
    roundId: roster.roundId,
    participants: new Set(roster.participants.map((_, i) => i + 1)),
  };
  const { advert, advertBytes, signature } = decodeSignedAdvert(bytes, expect);
  const member = roster.participants[advert.from - 1]!;
  const ok = await verify(member, advertSigningMessage(advertBytes, roster), signature).catch(() => false);
  if (!ok) throw new SecAggError('bad-signature', `advert of ${advert.from} not signed by ${member}`);
  return advert;
}
