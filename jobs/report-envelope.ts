/**
 * Signed reports: what makes a report on the shared queue the node's word and not whoever can
 * write to Redis. The node signs every report with its identity key (its peer id is that key, so
 * the collector needs no other key to check it) over what the report is, in the style of signed
 * command results (result-codec.ts):
 *
 *   tag 0x22 · version 1 · kind (varint length, one of REPORT_KINDS) · job id (varint length,
 *   1–MAX_REPORT_ID_BYTES) · payload (varint length: canonical JSON of the report, command-codec's
 *   canonicalJson) — and the Ed25519 signature by the node over SHA-256 of those bytes.
 *
 * The job id is covered, so a signed report copied under another id (to count it twice, or to
 * dodge the collector's report log) does not check. The job's data is `{ report, sig }`: the
 * report stays readable JSON in the queue, and the collector re-encodes it canonically to check
 * (JSON numbers and strings survive the round trip through Redis unchanged). Its own tag keeps a
 * report signature from passing for a command's (0x20), a result's (0x21) or a certificate's.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { z } from 'zod';
import { toHex } from '../node/chain/bytes.ts';
import { Writer } from '../node/chain/codec/writer.ts';
import { sha256 } from '../node/chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../node/chain/signature.ts';
import { canonicalJson } from './command-codec.ts';
import { REPORT_KINDS, type ReportKind } from './queues.ts';

export const REPORT_TAG = 0x22;
export const REPORT_VERSION = 1;
export const MAX_REPORT_ID_BYTES = 256;

/** A report as it travels in a job: the payload and the node's signature (hex). */
export interface SignedReportJob {
  readonly report: Record<string, unknown>;
  readonly sig: string;
}

const utf8 = new TextEncoder();

/** The bytes a report signature covers (throws a RangeError on what cannot be encoded). */
function signedBytes(kind: string, jobId: string, report: unknown): Uint8Array {
  if (!(REPORT_KINDS as readonly string[]).includes(kind)) throw new RangeError(`unknown kind ${kind}`);
  const id = Buffer.byteLength(jobId);
  if (id < 1 || id > MAX_REPORT_ID_BYTES)
    throw new RangeError(`a report id is 1–${MAX_REPORT_ID_BYTES} bytes`);
  const payload = utf8.encode(canonicalJson(report));
  const w = new Writer(64 + id + payload.length);
  w.u8(REPORT_TAG).u8(REPORT_VERSION).string(kind).string(jobId).bytes(payload);
  return sha256(w.finish());
}

/** The job data of `report` (a kind's payload) under `jobId`, signed with the node's key. */
export function signReport<K extends ReportKind>(
  kind: K,
  jobId: string,
  report: object,
  key: SigningKey,
): SignedReportJob {
  return {
    report: report as Record<string, unknown>,
    sig: toHex(sign(signedBytes(kind, jobId, report), key)),
  };
}

/** Why the collector refused a report before reading it: metric labels, so the list is closed. */
export type EnvelopeRefusal = 'unsigned' | 'unverifiable' | 'bad-report-signature';

/** The job data shape; the report itself is judged by its kind's schema after the signature checks. */
const Envelope = z
  .object({
    report: z.object({ nodeId: z.string().min(1).max(128) }).loose(),
    sig: z.string().regex(/^[0-9a-f]{128}$/),
  })
  .strict();

/** The Ed25519 key a peer id carries (12D3KooW… ids inline it), or undefined. */
export function keyOfPeerId(id: string): Uint8Array | undefined {
  try {
    const peer = peerIdFromString(id);
    return peer.type === 'Ed25519' ? peer.publicKey.raw : undefined;
  } catch {
    return undefined;
  }
}

/** The peer id (node id) of an Ed25519 identity key: what a node puts in its reports' `nodeId`. */
export const nodeIdOfKey = (publicKey: Uint8Array): string =>
  peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString();

export type OpenedReport =
  | { readonly ok: true; readonly report: Record<string, unknown>; readonly nodeKey: Uint8Array }
  | { readonly ok: false; readonly code: EnvelopeRefusal; readonly message: string };

/**
 * The collector's check of a job's data: the report if the node its `nodeId` names signed it
 * under this kind and job id. Nothing in the report is looked at but `nodeId` before that.
 */
export function openReport(kind: string, jobId: string, data: unknown): OpenedReport {
  const shape = Envelope.safeParse(data);
  if (!shape.success) return { ok: false, code: 'unsigned', message: 'the job carries no signed report' };
  const { report, sig } = shape.data;
  const nodeKey = keyOfPeerId(report.nodeId);
  if (!nodeKey)
    return {
      ok: false,
      code: 'unverifiable',
      message: `node id ${report.nodeId.slice(0, 64)} carries no Ed25519 key`,
    };
  let digest: Uint8Array;
  try {
    digest = signedBytes(kind, jobId, report);
  } catch (err) {
    return { ok: false, code: 'unsigned', message: (err as Error).message };
  }
  if (!verifyNative(Buffer.from(sig, 'hex'), digest, nodeKey))
    return {
      ok: false,
      code: 'bad-report-signature',
      message: `not signed by node ${report.nodeId.slice(0, 64)} for this kind and id`,
    };
  return { ok: true, report, nodeKey };
}
