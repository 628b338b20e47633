/**
 * Secure aggregation after Bonawitz et al. 2017 ("Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning"), semi-honest variant, as pure functions over the message
 * types of messages.ts. The transport (libp2p) moves the messages; nothing here does I/O.
 *
 *   0. advertise    each participant u: two X25519 key pairs (masks, share encryption) and a
 *                   commitment to a random self-mask seed b_u.
 *   1. shareKeys    u Shamir-shares its mask secret key and b_u (t of n) and encrypts share v to v.
 *                   U2 = those whose shares reached everyone.
 *   2. maskUpdate   y_u = x_u + PRG(b_u) + Σ_{v∈U2, v>u} PRG(s_uv) − Σ_{v∈U2, v<u} PRG(s_uv)
 *                   with s_uv = HKDF(X25519(u, v)); the pairwise masks cancel in the sum.
 *                   U3 = those whose masked update arrived (and decoded).
 *   3. revealShares each survivor reveals, for every u in U2, the b_u share if u ∈ U3, else the
 *                   mask-key share — never both for the same u, or u's input would be exposed.
 *   4. unmaskSum    (aggregator.ts) the aggregator removes the self masks of U3 and, rebuilding the mask keys of
 *                   U2 \ U3, the pairwise masks the survivors share with those who dropped.
 */

import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesEqual } from '../../chain/bytes.ts';
import {
  type EncryptedShare,
  type KeyAdvertisement,
  MAX_PARTICIPANTS,
  type MaskedUpdate,
  type RevealedShare,
  SecAggError,
  SHARE_PLAINTEXT_BYTES,
  type UnmaskingShares,
} from './messages.ts';
import { addInto, expandMask, subInto } from './ring.ts';
import { splitSecret } from './shamir.ts';

export type RandomBytes = (n: number) => Uint8Array;

/** A message as the transport hands it over: `from` is the authenticated sender (the stream's peer). */
export interface Delivered {
  readonly from: number;
  readonly bytes: Uint8Array;
}

export interface Rejected {
  readonly from: number;
  readonly error: SecAggError;
}
export const cryptoRandomBytes: RandomBytes = (n) => new Uint8Array(nodeRandomBytes(n));

/** What the round announcement fixes for everyone. */
export interface SecAggConfig {
  /** 32 bytes; bound into every key derivation so masks never repeat across rounds. */
  readonly roundId: Uint8Array;
  /** Participant ids, 1..255 (they are the Shamir evaluation points). */
  readonly participants: readonly number[];
  /** Shares needed to reconstruct; also the fewest survivors with which the round can finish. */
  readonly threshold: number;
  /** Ring elements per update. */
  readonly dim: number;
}

export function validateConfig(c: SecAggConfig): void {
  if (c.roundId.length !== 32) throw new SecAggError('malformed', 'round id must be 32 bytes');
  const ids = new Set(c.participants);
  if (ids.size !== c.participants.length) throw new SecAggError('duplicate', 'participant ids repeat');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 1 || id > MAX_PARTICIPANTS) {
      throw new SecAggError('malformed', `participant id ${id} out of range`);
    }
  }
  // t > n/2: otherwise two disjoint groups of "survivors" could be asked for different shares.
  if (!Number.isInteger(c.threshold) || c.threshold <= c.participants.length / 2 || c.threshold > ids.size) {
    throw new SecAggError('too-few-participants', `threshold ${c.threshold} for ${ids.size} participants`);
  }
  if (!Number.isInteger(c.dim) || c.dim < 1) throw new SecAggError('malformed', 'dimension must be ≥ 1');
}

const enc = new TextEncoder();
const SHARE_KEY_INFO = enc.encode('cairn/fl/secagg/share-key/v1');
const MASK_SEED_INFO = enc.encode('cairn/fl/secagg/pairwise-mask/v1');

function pairInfo(prefix: Uint8Array, a: number, b: number): Uint8Array {
  const out = new Uint8Array(prefix.length + 4);
  out.set(prefix);
  const view = new DataView(out.buffer);
  view.setUint16(prefix.length, Math.min(a, b));
  view.setUint16(prefix.length + 2, Math.max(a, b));
  return out;
}

function agree(secret: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  try {
    return x25519.getSharedSecret(secret, peerPublic);
  } catch (e) {
    // Low-order points give an all-zero secret; noble refuses them.
    throw new SecAggError('malformed', `unusable X25519 public key: ${(e as Error).message}`);
  }
}

/** s_uv: the 256-bit seed of the pairwise mask between u and v (symmetric in u, v). */
export function pairwiseSeed(
  roundId: Uint8Array,
  secret: Uint8Array,
  peerPublic: Uint8Array,
  u: number,
  v: number,
) {
  return hkdf(sha256, agree(secret, peerPublic), roundId, pairInfo(MASK_SEED_INFO, u, v), 32);
}

function shareCipher(
  roundId: Uint8Array,
  secret: Uint8Array,
  peerPublic: Uint8Array,
  from: number,
  to: number,
) {
  const key = hkdf(sha256, agree(secret, peerPublic), roundId, pairInfo(SHARE_KEY_INFO, from, to), 32);
  // One key per unordered pair, used once in each direction: the direction makes the nonce unique.
  const nonce = new Uint8Array(12);
  new DataView(nonce.buffer).setUint16(0, from);
  new DataView(nonce.buffer).setUint16(2, to);
  return chacha20poly1305(key, nonce, roundId);
}

export interface Participant {
  readonly config: SecAggConfig;
  readonly id: number;
  readonly advertisement: KeyAdvertisement;
  readonly maskSecret: Uint8Array;
  readonly encSecret: Uint8Array;
  readonly selfMaskSeed: Uint8Array;
  /** Set by shareKeys: the advertisements of U1. */
  readonly roster?: ReadonlyMap<number, KeyAdvertisement>;
  /** Set by receiveShares: U2 and the shares this participant holds (its own included). */
  readonly u2?: readonly number[];
  readonly held?: ReadonlyMap<number, { readonly mask: Uint8Array; readonly self: Uint8Array }>;
  /** Own shares kept back in shareKeys until receiveShares. */
  readonly ownShares?: { readonly mask: Uint8Array; readonly self: Uint8Array };
  /** Set by revealOnce: the survivor set this participant answered for, and its answer. */
  readonly revealed?: { readonly survivors: readonly number[]; readonly message: UnmaskingShares };
}

/** Round 0: fresh keys for this round and the advertisement to publish. */
export function createParticipant(config: SecAggConfig, id: number, rand: RandomBytes = cryptoRandomBytes) {
  validateConfig(config);
  if (!config.participants.includes(id)) throw new SecAggError('unknown-participant', `id ${id}`);
  const maskSecret = rand(32);
  const encSecret = rand(32);
  const selfMaskSeed = rand(32);
  const advertisement: KeyAdvertisement = {
    roundId: config.roundId,
    from: id,
    maskPublic: x25519.getPublicKey(maskSecret),
    encPublic: x25519.getPublicKey(encSecret),
    selfMaskCommitment: sha256(selfMaskSeed),
  };
  const p: Participant = { config, id, advertisement, maskSecret, encSecret, selfMaskSeed };
  return p;
}

function rosterOf(config: SecAggConfig, adverts: readonly KeyAdvertisement[]): Map<number, KeyAdvertisement> {
  const roster = new Map<number, KeyAdvertisement>();
  for (const a of adverts) {
    if (!bytesEqual(a.roundId, config.roundId)) throw new SecAggError('wrong-round', `advert of ${a.from}`);
    if (!config.participants.includes(a.from))
      throw new SecAggError('unknown-participant', `advert of ${a.from}`);
    if (roster.has(a.from)) throw new SecAggError('duplicate', `two adverts of ${a.from}`);
    roster.set(a.from, a);
  }
  if (roster.size < config.threshold) {
    throw new SecAggError('too-few-participants', `${roster.size} advertised, threshold ${config.threshold}`);
  }
  return roster;
}

/** Round 1: Shamir-share the mask key and the self-mask seed to everyone in U1, encrypted to each. */
export function shareKeys(
  p: Participant,
  adverts: readonly KeyAdvertisement[],
  rand: RandomBytes = cryptoRandomBytes,
): { participant: Participant; shares: EncryptedShare[] } {
  const roster = rosterOf(p.config, adverts);
  const own = roster.get(p.id);
  if (!own || !bytesEqual(own.maskPublic, p.advertisement.maskPublic)) {
    throw new SecAggError('protocol-violation', 'own advertisement missing or altered');
  }
  const ids = [...roster.keys()].sort((a, b) => a - b);
  const t = p.config.threshold;
  const maskShares = splitSecret(p.maskSecret, ids, t, rand);
  const selfShares = splitSecret(p.selfMaskSeed, ids, t, rand);
  const shares: EncryptedShare[] = [];
  let ownShares: { mask: Uint8Array; self: Uint8Array } | undefined;
  ids.forEach((to, k) => {
    const plain = new Uint8Array(SHARE_PLAINTEXT_BYTES);
    plain.set(maskShares[k]!.y);
    plain.set(selfShares[k]!.y, 32);
    if (to === p.id) {
      ownShares = { mask: maskShares[k]!.y, self: selfShares[k]!.y };
      return;
    }
    const cipher = shareCipher(p.config.roundId, p.encSecret, roster.get(to)!.encPublic, p.id, to);
    shares.push({ roundId: p.config.roundId, from: p.id, to, ciphertext: cipher.encrypt(plain) });
  });
  return { participant: { ...p, roster, ownShares: ownShares! }, shares };
}

/** Round 1, receiving: decrypt the shares from every other member of U2. */
export function receiveShares(
  p: Participant,
  u2: readonly number[],
  inbox: readonly EncryptedShare[],
): Participant {
  if (!p.roster || !p.ownShares) throw new SecAggError('protocol-violation', 'shareKeys has not run');
  const set = new Set(u2);
  if (!set.has(p.id)) throw new SecAggError('protocol-violation', 'not in U2');
  if (set.size < p.config.threshold) throw new SecAggError('too-few-participants', `|U2| = ${set.size}`);
  const held = new Map<number, { mask: Uint8Array; self: Uint8Array }>([[p.id, p.ownShares]]);
  for (const s of inbox) {
    if (s.to !== p.id || !set.has(s.from) || !p.roster.has(s.from)) {
      throw new SecAggError('protocol-violation', `share ${s.from} → ${s.to} misrouted`);
    }
    if (held.has(s.from)) throw new SecAggError('duplicate', `second share from ${s.from}`);
    let plain: Uint8Array;
    try {
      plain = shareCipher(
        p.config.roundId,
        p.encSecret,
        p.roster.get(s.from)!.encPublic,
        s.from,
        p.id,
      ).decrypt(s.ciphertext);
    } catch {
      throw new SecAggError('decryption-failed', `share from ${s.from}`);
    }
    held.set(s.from, { mask: plain.slice(0, 32), self: plain.slice(32, 64) });
  }
  for (const u of set) if (!held.has(u)) throw new SecAggError('protocol-violation', `no share from ${u}`);
  return { ...p, u2: [...set].sort((a, b) => a - b), held };
}

/** Round 2: the masked input. `input` is already quantised into the ring. */
export function maskUpdate(p: Participant, input: Uint32Array): MaskedUpdate {
  if (!p.u2 || !p.roster) throw new SecAggError('protocol-violation', 'receiveShares has not run');
  if (input.length !== p.config.dim) throw new SecAggError('dimension-mismatch', `${input.length}`);
  const y = Uint32Array.from(input);
  addInto(y, expandMask(p.selfMaskSeed, y.length));
  for (const v of p.u2) {
    if (v === p.id) continue;
    const mask = expandMask(
      pairwiseSeed(p.config.roundId, p.maskSecret, p.roster.get(v)!.maskPublic, p.id, v),
      y.length,
    );
    if (v > p.id) addInto(y, mask);
    else subInto(y, mask);
  }
  return { roundId: p.config.roundId, from: p.id, masked: y };
}

/** Round 3: reveal the shares the survivors' sum needs — b_u for survivors, mask keys for the dropped. */
export function revealShares(p: Participant, survivors: readonly number[]): UnmaskingShares {
  if (!p.u2 || !p.held) throw new SecAggError('protocol-violation', 'receiveShares has not run');
  const u3 = new Set(survivors);
  if (!u3.has(p.id)) throw new SecAggError('protocol-violation', 'not a survivor');
  for (const v of u3) if (!p.u2.includes(v)) throw new SecAggError('protocol-violation', `${v} is not in U2`);
  if (u3.size < p.config.threshold) throw new SecAggError('too-few-participants', `|U3| = ${u3.size}`);
  const shares: RevealedShare[] = p.u2.map((u) => {
    const h = p.held!.get(u)!;
    return u3.has(u) ? { of: u, kind: 'self', share: h.self } : { of: u, kind: 'mask', share: h.mask };
  });
  return { roundId: p.config.roundId, from: p.id, shares };
}

const sortedSet = (ids: readonly number[]) => [...new Set(ids)].sort((a, b) => a - b);

/**
 * Round 3, at most once per round. Two answers for different survivor sets hand the aggregator
 * b_u (u a survivor in one) and u's mask-key shares (u dropped in the other): with t of each it
 * rebuilds y_u − PRG(b_u) ∓ pairwise masks = x_u, one participant's own update. So a second
 * request for another set is a protocol violation. The same set again gets the same answer: it
 * reveals nothing new, and lets a coordinator whose first answer was lost in transit ask again.
 * Asking different participants for different sets is the other half: t > n/2 (validateConfig)
 * leaves no two disjoint groups of t, but a coordinator holding a roster slot answers in both;
 * the consistency step before any reveal (net/survivor-set.ts confirmationQuorum) stops that.
 */
export function revealOnce(
  p: Participant,
  survivors: readonly number[],
): { participant: Participant; message: UnmaskingShares } {
  const set = sortedSet(survivors);
  if (p.revealed) {
    const before = p.revealed.survivors;
    if (before.length === set.length && before.every((id, i) => id === set[i]))
      return { participant: p, message: p.revealed.message };
    throw new SecAggError(
      'protocol-violation',
      `unmask asked again with another survivor set ({${set.join(',')}} after {${before.join(',')}})`,
    );
  }
  const message = revealShares(p, set);
  return { participant: { ...p, revealed: { survivors: set, message } }, message };
}
