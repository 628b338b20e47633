/**
 * Why a message, key record or receipt was refused. Each code is counted in
 * `cairn_messages_rejected_total{reason}`; the ones a delivering peer caused also cost it score
 * (PENALTY_OF), since an honest peer only ever forwards what a member sealed for us.
 */
import type { PeerAction } from '../p2p/peer-scores.ts';

export type MessagingErrorCode =
  /** Bytes that do not decode as the canonical encoding. */
  | 'malformed'
  /** Over the configured maximum message (or envelope) size. */
  | 'oversized'
  /** The AEAD tag does not verify: some bit of header or ciphertext changed. */
  | 'tampered'
  /** Sealed for another recipient (or another network). */
  | 'misaddressed'
  /** The sender's signature inside the ciphertext does not verify. */
  | 'bad-signature'
  /** The signing key is not a member allowed to message (or its key record is unknown). */
  | 'unknown-sender'
  /** No messaging key is known for the recipient yet. */
  | 'unknown-recipient'
  /** A receipt that does not match the message it claims to acknowledge. */
  | 'bad-receipt';

export class MessagingError extends Error {
  override readonly name = 'MessagingError';
  readonly code: MessagingErrorCode;
  constructor(code: MessagingErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/** What a reject costs the peer that handed the bytes over (undefined: not its fault). */
export const PENALTY_OF: Partial<Record<MessagingErrorCode, PeerAction>> = {
  malformed: 'low-tolerance',
  tampered: 'low-tolerance',
  'bad-signature': 'low-tolerance',
  misaddressed: 'mid-tolerance',
  oversized: 'mid-tolerance',
  'unknown-sender': 'mid-tolerance',
  'bad-receipt': 'low-tolerance',
};
