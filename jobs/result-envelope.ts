/**
 * A command's answer as it crosses Redis, both ends: the node seals its result to the reply key
 * of the command it verified and signs it (answer); the gateway believes a completion only if it
 * is that signed answer, from the node it addressed, to the command it sent, and opens it (check).
 *
 * The job's return value (what BullMQ writes to the queue's event stream, readable by every
 * Redis client) is `{ result: <hex of the signed result> }`. A command the node verified and ran
 * completes with a signed answer whatever its outcome: a failure is signed too, so no one can
 * turn it into a success, nor the other way round. A command the node refused from a signer it
 * can attribute it to (one allowed to command it: expired, replayed, out of role, …;
 * command-verifier.ts SIGNED_REFUSALS) completes with a signed refusal, bound to the job id it
 * answered so that a copy of the command under another job cannot lend its refusal to this one.
 * Other refused jobs fail as before, unsigned: believing such a failure costs the caller an
 * error, which anyone able to write Redis could cause anyway by deleting the job.
 */
import { peerIdFromString } from '@libp2p/peer-id';
import { z } from 'zod';
import { toHex } from '../node/chain/bytes.ts';
import type { SigningKey } from '../node/chain/signature.ts';
import type { SignedCommand } from './command-codec.ts';
import { COMMAND_REFUSALS, type CommandRefusal } from './command-verifier.ts';
import {
  decodeResult,
  MAX_RESULT_BODY_BYTES,
  MAX_RESULT_BYTES,
  type Outcome,
  resultSignatureValid,
  type SignedResult,
  signResult,
} from './result-codec.ts';
import { open, type ReplyKey, seal } from './result-seal.ts';

/** Why the gateway refused an answer. Each is a metric label, so the list is closed. */
export const RESULT_REFUSALS = [
  /** The completion carries no signed result (a bare value: forged, or a node without this code). */
  'unsigned',
  /** The signed result does not decode. */
  'malformed',
  /** It answers another command, node, nonce or command encoding than the one sent. */
  'wrong-command',
  'wrong-target',
  'wrong-nonce',
  'wrong-digest',
  /** The target's peer id carries no Ed25519 key to check the signature with. */
  'unverifiable',
  'bad-signature',
  /** Signed by the node, but its body does not open with our reply key, or is not JSON. */
  'unsealable',
  /** A signed refusal of another job (a copy of the command) than the one we sent. */
  'wrong-job',
] as const;
export type ResultRefusal = (typeof RESULT_REFUSALS)[number];

export class ResultRefused extends Error {
  readonly code: ResultRefusal;
  constructor(code: ResultRefusal, detail: string) {
    super(`result refused (${code}): ${detail}`);
    this.code = code;
    this.name = 'ResultRefused';
  }
}

/** What a command's job returns. */
export const ResultJobValue = z
  .object({
    result: z
      .string()
      .max(MAX_RESULT_BYTES * 2)
      .regex(/^([0-9a-f]{2})+$/),
  })
  .strict();
export type ResultJobValue = z.infer<typeof ResultJobValue>;

/** A failure's message as the answer carries it (it reaches the GraphQL caller). */
export const MAX_ERROR_CHARS = 2048;
const FailedBody = z.object({ error: z.string().max(MAX_ERROR_CHARS) }).strict();
const RefusedBody = z
  .object({
    refused: z.enum(COMMAND_REFUSALS),
    error: z.string().max(MAX_ERROR_CHARS),
    job: z.string().max(256),
  })
  .strict();

export type Answer = { readonly completed: unknown } | { readonly failed: string };
/** What the gateway makes of an answer: the command's outcome, or the node's signed refusal. */
export type CheckedAnswer =
  | Answer
  | { readonly refused: CommandRefusal; readonly message: string; readonly job: string };

const utf8 = new TextEncoder();

/**
 * The node's answer to a command it verified: `answer` is what the command returned or the
 * message it failed with. A result too large to carry becomes a (signed) failure.
 */
export function answerCommand(cmd: SignedCommand, answer: Answer, key: SigningKey): ResultJobValue {
  let outcome: Outcome = 'completed' in answer ? 'completed' : 'failed';
  let body =
    'completed' in answer
      ? utf8.encode(JSON.stringify(answer.completed ?? null))
      : utf8.encode(JSON.stringify({ error: answer.failed.slice(0, MAX_ERROR_CHARS) }));
  if (body.length > MAX_RESULT_BODY_BYTES) {
    outcome = 'failed';
    body = utf8.encode(
      JSON.stringify({ error: `the result of ${body.length} bytes exceeds ${MAX_RESULT_BODY_BYTES}` }),
    );
  }
  const sealed = seal(body, cmd.replyKey, cmd.digest);
  return { result: toHex(signResult(cmd, outcome, sealed, key)) };
}

/**
 * The node's signed refusal of a command it decoded and can attribute (its signer may command
 * this node), sealed to the command's reply key and naming the job it refuses.
 */
export function refuseCommand(
  cmd: SignedCommand,
  refusal: { readonly code: CommandRefusal; readonly message: string },
  jobId: string,
  key: SigningKey,
): ResultJobValue {
  const body = utf8.encode(
    JSON.stringify({
      refused: refusal.code,
      error: refusal.message.slice(0, MAX_ERROR_CHARS),
      job: jobId.slice(0, 256),
    }),
  );
  return { result: toHex(signResult(cmd, 'refused', seal(body, cmd.replyKey, cmd.digest), key)) };
}

const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The Ed25519 key a peer id carries (12D3KooW… ids inline it), or undefined. */
function keyOfPeerId(id: string): Uint8Array | undefined {
  try {
    const peer = peerIdFromString(id);
    return peer.type === 'Ed25519' ? peer.publicKey.raw : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The gateway's check of a completed job's value against the command it sent (with the reply
 * key it kept): the answer, or ResultRefused. Nothing in `value` is looked at before its
 * signature checks, except what finding the signature needs.
 */
export function checkAnswer(
  value: unknown,
  sent: SignedCommand,
  reply: ReplyKey,
  /** The job the command was sent as: a signed refusal must name it. */
  jobId?: string,
): CheckedAnswer {
  const shape = ResultJobValue.safeParse(value);
  if (!shape.success) throw new ResultRefused('unsigned', 'the completion carries no signed result');
  let r: SignedResult;
  try {
    r = decodeResult(Buffer.from(shape.data.result, 'hex'));
  } catch (err) {
    throw new ResultRefused('malformed', (err as Error).message);
  }
  if (r.command !== sent.command)
    throw new ResultRefused('wrong-command', `answers ${r.command}, ${sent.command} was sent`);
  if (r.target !== sent.target)
    throw new ResultRefused(
      'wrong-target',
      `signed as node ${r.target.slice(0, 128)}, sent to ${sent.target}`,
    );
  if (!equal(r.nonce, sent.nonce))
    throw new ResultRefused('wrong-nonce', `answers nonce ${toHex(r.nonce)}, ${sent.nonceHex} was sent`);
  if (!equal(r.commandDigest, sent.digest))
    throw new ResultRefused('wrong-digest', 'answers another encoding of this command');
  const key = keyOfPeerId(sent.target);
  if (!key) throw new ResultRefused('unverifiable', `node id ${sent.target} carries no Ed25519 key`);
  if (!resultSignatureValid(r, key))
    throw new ResultRefused('bad-signature', `the signature is not node ${sent.target}'s`);
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(open(r.body, reply, sent.digest)));
  } catch (err) {
    throw new ResultRefused('unsealable', (err as Error).message);
  }
  if (r.outcome === 'completed') return { completed: body };
  if (r.outcome === 'refused') {
    const refused = RefusedBody.safeParse(body);
    if (!refused.success) throw new ResultRefused('unsealable', 'a refusal without its code, message or job');
    if (jobId === undefined || refused.data.job !== jobId)
      throw new ResultRefused(
        'wrong-job',
        `a refusal of job ${refused.data.job.slice(0, 80)}, not of ${String(jobId).slice(0, 80)}`,
      );
    return { refused: refused.data.refused, message: refused.data.error, job: refused.data.job };
  }
  const failed = FailedBody.safeParse(body);
  if (!failed.success) throw new ResultRefused('unsealable', 'a failure without its message');
  return { failed: failed.data.error };
}
