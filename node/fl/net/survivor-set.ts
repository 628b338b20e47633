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
