import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
// The very rule the nodes apply (Node-free module), so the console cannot disagree with consensus.
import { verifyNoble } from '../../node/chain/signature-rule.ts';

export interface SignatureCheck {
  /** Both checks pass (for genesis: the hash check, as genesis carries no signature). */
  readonly valid: boolean;
  /** The genesis block: derived from the network config, unsigned by design (zero miner and signature). */
  readonly genesis: boolean;
  /** sha256(header) equals the stated block hash. */
  readonly hashMatches: boolean;
  /** The miner's Ed25519 signature over the hash verifies. */
  readonly signatureValid: boolean;
  readonly reason: string;
}

export interface SignedBlock {
  readonly height: number;
  readonly hash: string;
  readonly header: string;
  readonly signature: string;
  readonly miner: string;
}

/**
 * Checks a block as reported by the index DB, trusting nothing the gateway says: the hash must
 * be the SHA-256 of the header bytes, and the signature must verify under the miner's key over
 * that hash.
 */
export function verifyBlockSignature(b: SignedBlock): SignatureCheck {
  let header: Uint8Array;
  let hash: Uint8Array;
  let signature: Uint8Array;
  let miner: Uint8Array;
  try {
    header = hexToBytes(b.header);
    hash = hexToBytes(b.hash);
    signature = hexToBytes(b.signature);
    miner = hexToBytes(b.miner);
  } catch (err) {
    return {
      valid: false,
      genesis: false,
      hashMatches: false,
      signatureValid: false,
      reason: `not hex: ${(err as Error).message}`,
    };
  }
  const hashMatches = bytesToHex(sha256(header)) === b.hash.toLowerCase();
  if (b.height === 0 && miner.every((x) => x === 0) && signature.every((x) => x === 0))
    return {
      valid: hashMatches,
      genesis: true,
      hashMatches,
      signatureValid: false,
      reason: hashMatches
        ? 'genesis block: unsigned by design, sha256(header) = hash'
        : 'sha256(header) differs from the block hash',
    };
  const signatureValid = verifyNoble(signature, hash, miner);
  const reason = !hashMatches
    ? 'sha256(header) differs from the block hash'
    : !signatureValid
      ? "the miner's Ed25519 signature over the hash does not verify"
      : "sha256(header) = hash and the miner's Ed25519 signature verifies";
  return { valid: hashMatches && signatureValid, genesis: false, hashMatches, signatureValid, reason };
}
