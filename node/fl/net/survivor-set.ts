/**
 * The survivor set U3 as the coordinator commits to it (issue 16, trusted rounds): a signature
 * with the coordinator's identity key over (round id, U3). The transport already authenticates
 * the sender; the signature adds evidence a participant can keep or show others, that this
 * coordinator asked for exactly this set in this round. The bytes are canonical: ids ascending,
 * no repeats, so one set has one message and one valid signature per key.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { MAX_PARTICIPANTS, ROUND_ID_BYTES } from '../secagg/messages.ts';

const DOMAIN = new TextEncoder().encode('cairn/fl/survivor-set/v1');
/** Ed25519, the identity keys' type (libp2p peer ids embed the public key). */
export const SURVIVOR_SIGNATURE_BYTES = 64;

/** Whether `ids` is strictly ascending, within 1..255: the only form that is signed. */
export const isCanonicalSet = (ids: readonly number[]): boolean =>
  ids.every(
    (id, i) => Number.isInteger(id) && id >= 1 && id <= MAX_PARTICIPANTS && (i === 0 || id > ids[i - 1]!),
  );

/** domain ‖ round id ‖ |U3| ‖ ids: what the coordinator signs. */
export function survivorSetMessage(roundId: Uint8Array, survivors: readonly number[]): Uint8Array {
  if (roundId.length !== ROUND_ID_BYTES) throw new RangeError('round id must be 32 bytes');
  if (!isCanonicalSet(survivors)) throw new RangeError('survivor ids must ascend, within 1..255');
  const out = new Uint8Array(DOMAIN.length + ROUND_ID_BYTES + 1 + survivors.length);
  out.set(DOMAIN);
  out.set(roundId, DOMAIN.length);
  out[DOMAIN.length + ROUND_ID_BYTES] = survivors.length;
  out.set(survivors, DOMAIN.length + ROUND_ID_BYTES + 1);
  return out;
}

/** Signs with this node's identity key (the node's libp2p private key in production). */
export type SurvivorSigner = (message: Uint8Array) => Promise<Uint8Array>;

/** Whether `signature` over `message` is `coordinator`'s (a peer id). */
export type SurvivorVerifier = (
  coordinator: string,
  message: Uint8Array,
  signature: Uint8Array,
) => Promise<boolean>;

/** The production verifier: the key embedded in the coordinator's peer id (Ed25519). */
export const peerIdVerifier: SurvivorVerifier = async (coordinator, message, signature) => {
  let key: ReturnType<typeof peerIdFromString>['publicKey'];
  try {
    key = peerIdFromString(coordinator).publicKey;
  } catch {
    return false;
  }
  if (!key || signature.length !== SURVIVOR_SIGNATURE_BYTES) return false;
  try {
    return await key.verify(message, signature);
  } catch {
    return false;
  }
};

/**
 * The consistency check of Bonawitz et al. 2017 §4 (malicious server). The coordinator's own
 * signature says which U3 it asked for, but nothing stops it from showing two halves of the
 * roster two different sets: each participant answers once, and a coordinator that holds a
 * roster slot itself answers for both halves, so V's self-mask seed comes from one half and its
 * mask key from the other (attack review ATK-16, split survivor sets). So before anyone reveals,
 * every survivor signs, with its identity key, the exact U3 it was shown in this round, once per
 * round; the coordinator relays the signatures; a participant reveals only when they show that
 * a quorum (confirmationQuorum) saw the same set.
 */
const CONFIRM_DOMAIN = new TextEncoder().encode('cairn/fl/survivor-confirm/v2');
/** SHA-256: advert-signature.ts runDigest. */
export const RUN_DIGEST_BYTES = 32;

/**
 * confirm-domain ‖ round id ‖ run digest ‖ |U3| ‖ ids: what each survivor signs (distinct from
 * the coordinator's). The run digest (advert-signature.ts runDigest: the roster, threshold and
 * signed adverts of this run) binds the signature to one run: with (round id, U3) alone, a
 * coordinator that ran a round id twice relayed the first run's confirmations in the second and
 * completed a split quorum (attack review fl-trust3, confirmations replayed across runs).
 */
export function confirmationMessage(
  roundId: Uint8Array,
  run: Uint8Array,
  survivors: readonly number[],
): Uint8Array {
  if (run.length !== RUN_DIGEST_BYTES) throw new RangeError('run digest must be 32 bytes');
  const inner = survivorSetMessage(roundId, survivors).subarray(DOMAIN.length);
  const out = new Uint8Array(CONFIRM_DOMAIN.length + RUN_DIGEST_BYTES + inner.length);
  out.set(CONFIRM_DOMAIN);
  out.set(inner.subarray(0, ROUND_ID_BYTES), CONFIRM_DOMAIN.length);
  out.set(run, CONFIRM_DOMAIN.length + ROUND_ID_BYTES);
  out.set(inner.subarray(ROUND_ID_BYTES), CONFIRM_DOMAIN.length + ROUND_ID_BYTES + RUN_DIGEST_BYTES);
  return out;
}

/** One survivor's signature over confirmationMessage, as the coordinator relays it. */
export interface SurvivorConfirmation {
  /** The survivor's participant id (its roster position + 1). */
  readonly id: number;
  readonly signature: Uint8Array;
}

/**
 * Valid confirmations a participant needs before it reveals: from ≥ t distinct members of U3,
 * and from more than (m + k)/2 of the m roster members other than the coordinator, for k
 * members tolerated as colluding with it (FL_DEFAULTS.collusionTolerance).
 *
 * Why the second bound: an honest member signs one set per round, so two sets each confirmed by
 * more than half of the members the coordinator does not control would need one of them to sign
 * both. The coordinator's own slot (a member holding `coordinate` and `train`) signs whatever it
 * likes, so it is not counted there; with t alone, n = 5 and t = 3, {C, V, W} and {C, X, Y} both
 * reach t. Members colluding with the coordinator (a second identity of its own: free on an
 * open network) sign both sets too: two sets confirmed by more than (m + k)/2 each share more
 * than k members, so with at most k colluders one honest member would have signed both, which
 * it never does (attack review ATK-16, sybil split; the bound of Bonawitz et al., 2t − n above
 * the corrupt members, applied to the confirmations).
 */
export function confirmationQuorum(
  rosterSize: number,
  coordinatorOnRoster: boolean,
  threshold: number,
  collusionTolerance: number,
): { readonly total: number; readonly others: number } {
  const others = rosterSize - (coordinatorOnRoster ? 1 : 0);
  return { total: threshold, others: Math.floor((others + collusionTolerance) / 2) + 1 };
}
