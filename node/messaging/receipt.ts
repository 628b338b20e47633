/**
 * Signed delivery receipts: the recipient's statement that it holds a message, which the sender
 * takes off its outbox on and a mailbox deletes its copy on. It names both ids, so the sender can
 * match it to its (recipient, sequence) and a mailbox, which knows only ciphertext, to its content id.
 *
 *   tag 0x32 · version 1 · chain id (32) · content id (32) · sender (32) · recipient (32)
 *   · sequence (u64) · received-at (u64 ms) · Ed25519 signature (64) by the recipient over
 *   SHA-256 of everything before it
 */
import { bytesEqual, type Hex, toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { Reader } from '../chain/codec/reader.ts';
import { Writer } from '../chain/codec/writer.ts';
import { sha256 } from '../chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../chain/signature.ts';
import { MessagingError } from './errors.ts';

export const RECEIPT_TAG = 0x32;
export const RECEIPT_VERSION = 1;
export const RECEIPT_BYTES = 1 + 1 + 32 * 4 + 8 + 8 + 64;

export interface Receipt {
  readonly chainId: Uint8Array;
  readonly contentId: Uint8Array;
  readonly sender: Uint8Array;
  readonly recipient: Uint8Array;
  readonly sequence: number;
  readonly receivedAtMs: number;
  readonly signature: Uint8Array;
  readonly encoded: Uint8Array;
  readonly contentIdHex: Hex;
}

type ReceiptFields = Omit<Receipt, 'signature' | 'encoded' | 'contentIdHex'>;

function unsigned(f: ReceiptFields): Uint8Array {
  const w = new Writer(RECEIPT_BYTES);
  w.u8(RECEIPT_TAG).u8(RECEIPT_VERSION).fixed(f.chainId, 32).fixed(f.contentId, 32);
  w.fixed(f.sender, 32).fixed(f.recipient, 32).u64(f.sequence).u64(f.receivedAtMs);
  return w.finish();
}

/** The recipient signs; `recipient` is its key's public half. */
export function signReceipt(f: Omit<ReceiptFields, 'recipient'>, recipient: SigningKey): Receipt {
  const fields = { ...f, recipient: recipient.publicKey };
  const u = unsigned(fields);
  const signature = sign(sha256(u), recipient);
  const encoded = new Uint8Array(RECEIPT_BYTES);
  encoded.set(u);
  encoded.set(signature, u.length);
  return { ...fields, signature, encoded, contentIdHex: toHex(f.contentId) };
}

/** Decodes a receipt and checks the recipient's signature and the network; `bad-receipt` otherwise. */
export function openReceipt(bytes: Uint8Array, chainId: Uint8Array): Receipt {
  const own = bytes.slice();
  let f: ReceiptFields & { signature: Uint8Array };
  try {
    if (own.length !== RECEIPT_BYTES) throw new DecodeError('invalid-value', `${own.length} bytes`);
    const r = new Reader(own);
    if (r.u8('receipt tag') !== RECEIPT_TAG) throw new DecodeError('unknown-tag', 'not a receipt');
    if (r.u8('receipt version') !== RECEIPT_VERSION)
      throw new DecodeError('unsupported-version', 'receipt version');
    f = {
      chainId: r.fixed(32, 'chain id'),
      contentId: r.fixed(32, 'content id'),
      sender: r.fixed(32, 'sender'),
      recipient: r.fixed(32, 'recipient'),
      sequence: r.u64('sequence'),
      receivedAtMs: r.u64('received-at'),
      signature: r.fixed(64, 'signature'),
    };
    r.end('receipt');
  } catch (err) {
    throw new MessagingError('bad-receipt', (err as Error).message);
  }
  if (!bytesEqual(f.chainId, chainId)) throw new MessagingError('bad-receipt', 'receipt of another network');
  if (!verifyNative(f.signature, sha256(own.subarray(0, RECEIPT_BYTES - 64)), f.recipient))
    throw new MessagingError('bad-receipt', 'receipt signature');
  return { ...f, encoded: own, contentIdHex: toHex(f.contentId) };
}

/** Whether `r` acknowledges the message (contentId, sender → recipient, sequence). */
export function receiptMatches(
  r: Receipt,
  m: { contentId: Uint8Array; sender: Uint8Array; recipient: Uint8Array; sequence: number },
): boolean {
  return (
    bytesEqual(r.contentId, m.contentId) &&
    bytesEqual(r.sender, m.sender) &&
    bytesEqual(r.recipient, m.recipient) &&
    r.sequence === m.sequence
  );
}
