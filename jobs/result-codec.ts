/**
 * Signed command results: what makes a result from Redis the node's word and not whoever wrote
 * the stream entry's. The node signs each answer with its identity key (its peer id is that key,
 * so the gateway needs no other key to check it) over the command it answers. Canonical,
 * versioned and size-bounded like commands (command-codec.ts):
 *
 *   tag 0x21 · version 1 · command (varint length, 1–32 UTF-8 bytes, one of ADMIN_COMMANDS)
 *   · target node id (varint length, 1–128 bytes: the answering node's peer id) · command nonce
 *   (16) · command digest (32: SHA-256 of the command's unsigned encoding, what its signer
 *   signed) · outcome (u8: 0 completed, 1 failed, 2 refused:
 *   the node verified who sent it but would not run it) · body (varint length, ≤ MAX_SEALED_BODY_BYTES:
 *   the sealed result, result-seal.ts) · Ed25519 signature (64) by the target's key over SHA-256
 *   of everything before it.
 *
 * The digest covers the command's name, target, args, nonce, expiry and reply key, so a result
 * answers exactly one command: replayed for another nonce, or moved to another node's queue, it
 * does not check. Its own tag keeps a result signature from passing for a command's (0x20), a
 * certificate's (0x10) or an entry's. This module is the bytes and the signature only; what the
 * gateway requires of them is result-envelope.ts.
 */
import { DecodeError } from '../node/chain/codec/errors.ts';
import { Reader } from '../node/chain/codec/reader.ts';
import { Writer } from '../node/chain/codec/writer.ts';
import { sha256 } from '../node/chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../node/chain/signature.ts';
import {
  MAX_COMMAND_NAME_BYTES,
  MAX_TARGET_BYTES,
  NONCE_BYTES,
  type SignedCommand,
} from './command-codec.ts';
import { ADMIN_COMMANDS, type AdminCommand } from './queues.ts';
import { SEAL_OVERHEAD } from './result-seal.ts';

export const RESULT_TAG = 0x21;
export const RESULT_VERSION = 1;
/**
 * The largest result body before sealing. The largest result is admin.members: up to 10 000
 * members (payloads.ts) of ~350 bytes of JSON each, ~3.5 MB.
 */
export const MAX_RESULT_BODY_BYTES = 4 * 1024 * 1024;
export const MAX_SEALED_BODY_BYTES = MAX_RESULT_BODY_BYTES + SEAL_OVERHEAD;
export const MAX_RESULT_BYTES =
  1 +
  1 +
  1 +
  MAX_COMMAND_NAME_BYTES +
  2 +
  MAX_TARGET_BYTES +
  NONCE_BYTES +
  32 +
  1 +
  4 +
  MAX_SEALED_BODY_BYTES +
  64;

export const OUTCOMES = ['completed', 'failed', 'refused'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface SignedResult {
  readonly command: AdminCommand;
  readonly target: string;
  readonly nonce: Uint8Array;
  readonly commandDigest: Uint8Array;
  readonly outcome: Outcome;
  /** The sealed body (result-seal.ts). */
  readonly body: Uint8Array;
  readonly signature: Uint8Array;
  /** SHA-256 of the unsigned encoding: what the node signs. */
  readonly digest: Uint8Array;
}

const isCommand = (s: string): s is AdminCommand => (ADMIN_COMMANDS as readonly string[]).includes(s);

/** The node's signed answer to `cmd` (already verified by the node): `body` is the sealed result. */
export function signResult(
  cmd: Pick<SignedCommand, 'command' | 'target' | 'nonce' | 'digest'>,
  outcome: Outcome,
  body: Uint8Array,
  key: SigningKey,
): Uint8Array {
  if (body.length > MAX_SEALED_BODY_BYTES)
    throw new RangeError(`a result body of ${body.length} bytes exceeds ${MAX_SEALED_BODY_BYTES}`);
  const w = new Writer(256 + body.length);
  w.u8(RESULT_TAG).u8(RESULT_VERSION).string(cmd.command).string(cmd.target);
  w.fixed(cmd.nonce, NONCE_BYTES).fixed(cmd.digest, 32).u8(OUTCOMES.indexOf(outcome)).bytes(body);
  const unsigned = w.finish();
  const out = new Uint8Array(unsigned.length + 64);
  out.set(unsigned);
  out.set(sign(sha256(unsigned), key), unsigned.length);
  return out;
}

/** Decodes a signed result; every failure is a DecodeError. The result shares no memory with `bytes`. */
export function decodeResult(bytes: Uint8Array): SignedResult {
  if (bytes.length > MAX_RESULT_BYTES) throw new DecodeError('oversized', `result of ${bytes.length} bytes`);
  const own = bytes.slice();
  const r = new Reader(own);
  const tag = r.u8('result tag');
  if (tag !== RESULT_TAG) throw new DecodeError('unknown-tag', `expected result tag, got ${tag}`);
  const version = r.u8('result version');
  if (version !== RESULT_VERSION) throw new DecodeError('unsupported-version', `result version ${version}`);
  const command = r.string(MAX_COMMAND_NAME_BYTES, 'command');
  if (!isCommand(command)) throw new DecodeError('invalid-value', `unknown command ${command.slice(0, 32)}`);
  const target = r.string(MAX_TARGET_BYTES, 'target');
  if (target.length === 0) throw new DecodeError('invalid-value', 'empty target');
  const nonce = r.fixed(NONCE_BYTES, 'nonce');
  const commandDigest = r.fixed(32, 'command digest');
  const o = r.u8('outcome');
  const outcome = OUTCOMES[o];
  if (outcome === undefined) throw new DecodeError('invalid-value', `unknown outcome ${o}`);
  const body = r.bytes(MAX_SEALED_BODY_BYTES, 'body');
  const unsignedEnd = r.offset;
  const signature = r.fixed(64, 'result signature');
  r.end('result');
  return {
    command,
    target,
    nonce,
    commandDigest,
    outcome,
    body,
    signature,
    digest: sha256(own.subarray(0, unsignedEnd)),
  };
}

/** Whether the result's signature is `publicKey`'s (the target's identity key). */
export const resultSignatureValid = (r: SignedResult, publicKey: Uint8Array): boolean =>
  verifyNative(r.signature, r.digest, publicKey);
