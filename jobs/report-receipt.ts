/**
 * Collector receipts: the collector's signed word that it judged one report job. A job's state
 * and return value are whatever a Redis client wrote (a ZADD into `completed` needs no BullMQ
 * script), so the node's outbox counts a report delivered only when the job carries a receipt
 * signed by a collector key it trusts, over the job id and the very data the node signed:
 *
 *   tag 0x23 · version 1 · outcome (u8: 0 indexed, 1 refused) · job id (varint length) ·
 *   SHA-256 of the job data's canonical JSON (varint length, 32) — Ed25519 over SHA-256 of those.
 *
 * An indexed report's receipt is its job's return value (`{ duplicate, receipt }`); a refused
 * one's ends its failedReason (` [receipt <hex>]`), so a refusal is final for the node too and
 * the report is not re-sent for ever. Its own tag keeps a receipt from passing for a command
 * (0x20), a result (0x21) or a report (0x22).
 */
import { fromHex, toHex } from '../node/chain/bytes.ts';
import { Writer } from '../node/chain/codec/writer.ts';
import { sha256 } from '../node/chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../node/chain/signature.ts';
import { canonicalJson } from './command-codec.ts';

export const RECEIPT_TAG = 0x23;
export const RECEIPT_VERSION = 1;
export type ReceiptOutcome = 'indexed' | 'refused';
const OUTCOME_CODE: Record<ReceiptOutcome, number> = { indexed: 0, refused: 1 };

const utf8 = new TextEncoder();

function receiptDigest(outcome: ReceiptOutcome, jobId: string, data: unknown): Uint8Array {
  const dataHash = sha256(utf8.encode(canonicalJson(data)));
  const w = new Writer(64 + Buffer.byteLength(jobId));
  w.u8(RECEIPT_TAG).u8(RECEIPT_VERSION).u8(OUTCOME_CODE[outcome]).string(jobId).bytes(dataHash);
  return sha256(w.finish());
}

/** The collector's receipt (hex signature) for the job `jobId` carrying `data`. */
export const signReceipt = (outcome: ReceiptOutcome, jobId: string, data: unknown, key: SigningKey): string =>
  toHex(sign(receiptDigest(outcome, jobId, data), key));

/** What a refused report's failedReason ends with. */
export const refusalReceiptSuffix = (receipt: string): string => ` [receipt ${receipt}]`;

const SIG = /^[0-9a-f]{128}$/;
const FAILED_RECEIPT = / \[receipt ([0-9a-f]{128})\]$/;

/** The receipt a finished job carries, by its state: return value or failedReason; else undefined. */
export function receiptOf(
  state: 'completed' | 'failed',
  job: { readonly returnvalue?: unknown; readonly failedReason?: string },
): string | undefined {
  if (state === 'failed') return FAILED_RECEIPT.exec(job.failedReason ?? '')?.[1];
  const r = (job.returnvalue as { receipt?: unknown } | null | undefined)?.receipt;
  return typeof r === 'string' && SIG.test(r) ? r : undefined;
}

/** Whether `receipt` is one of `keys`' over this outcome, job id and data. */
export function receiptValid(
  receipt: string | undefined,
  outcome: ReceiptOutcome,
  jobId: string,
  data: unknown,
  keys: readonly Uint8Array[],
): boolean {
  if (receipt === undefined || !SIG.test(receipt) || keys.length === 0) return false;
  let digest: Uint8Array;
  try {
    digest = receiptDigest(outcome, jobId, data);
  } catch {
    return false; // Data no canonical JSON can hold: not what the node signed.
  }
  const sig = fromHex(receipt);
  return keys.some((k) => verifyNative(sig, digest, k));
}
