/**
 * Signed admin commands: what makes Redis a transport and not an authority. The gateway signs
 * each command it puts on a node's queue; the node runs only what the signature covers (the args
 * are taken from the signed bytes, never from the job's unsigned data). Canonical, versioned and
 * size-bounded like every other Cairn encoding, so the signed digest is unambiguous and a decoder
 * accepts only what the encoder writes:
 *
 *   tag 0x20 · version 2 · command (varint length, 1–32 UTF-8 bytes, one of ADMIN_COMMANDS)
 *   · target node id (varint length, 1–128 bytes) · args (varint length, ≤ MAX_COMMAND_ARGS_BYTES
 *   of canonical JSON: object keys sorted, no whitespace) · nonce (16) · issued-at (u64 ms)
 *   · expires-at (u64 ms, after issued-at, at most MAX_COMMAND_TTL_MS later) · reply key (32)
 *   · signer key (32) · Ed25519 signature (64) by the signer over SHA-256 of everything before it.
 *
 * Version 2 added the reply key: the X25519 public key the node seals its result to
 * (result-seal.ts), signed with the rest so that no one on the way can swap in a key of theirs.
 * The node answers with a result it signs over this command's nonce and digest (result-codec.ts).
 *
 * The tag differs from every other signed Cairn structure (certificates are 0x10), so a command
 * signature can never pass for a certificate's or an entry's. The target binds a command to one
 * node (a peer id is its key), the nonce and expiry bound replays: a node remembers the nonces it
 * ran until they expire (command-verifier.ts). Whether the signer may command the node is the
 * verifier's business; this module is the bytes and the signature only.
 */
import { randomBytes } from 'node:crypto';
import { type Hex, toHex } from '../node/chain/bytes.ts';
import { DecodeError } from '../node/chain/codec/errors.ts';
import { Reader } from '../node/chain/codec/reader.ts';
import { Writer } from '../node/chain/codec/writer.ts';
import { sha256 } from '../node/chain/hash.ts';
import { type SigningKey, sign, verifyNative } from '../node/chain/signature.ts';
import { ADMIN_COMMANDS, type AdminCommand } from './queues.ts';
import { newReplyKey, REPLY_KEY_BYTES, type ReplyKey } from './result-seal.ts';

export const COMMAND_TAG = 0x20;
export const COMMAND_VERSION = 2;
export const MAX_COMMAND_NAME_BYTES = 32;
export const MAX_TARGET_BYTES = 128;
/**
 * The largest args: submitEntry's 16 Ki characters of content and 32 metadata pairs of up to
 * 1,088 characters, at 3 UTF-8 bytes per UTF-16 unit, come to ~150 KiB; JSON escapes add more
 * for control characters. 256 KiB stays under the gateway's 512 KiB request body limit.
 */
export const MAX_COMMAND_ARGS_BYTES = 256 * 1024;
export const NONCE_BYTES = 16;
/**
 * The longest a command may stay valid. It bounds how long a node must remember a nonce (and so
 * its replay cache), and how late a command queued while a node was down can still run.
 */
export const MAX_COMMAND_TTL_MS = 10 * 60_000;
export const MAX_COMMAND_BYTES =
  1 +
  1 +
  1 +
  MAX_COMMAND_NAME_BYTES +
  1 +
  MAX_TARGET_BYTES +
  3 +
  MAX_COMMAND_ARGS_BYTES +
  NONCE_BYTES +
  8 +
  8 +
  REPLY_KEY_BYTES +
  32 +
  64;

/** JSON values as admin args carry them (what zod-parsed payloads are). */
export type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

/**
 * Canonical JSON: object keys in code-unit order, no whitespace, no undefined members. Throws a
 * RangeError on what JSON cannot carry exactly (non-finite numbers, functions, bigints).
 */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError('canonical JSON has no non-finite numbers');
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  throw new RangeError(`canonical JSON cannot carry a ${typeof v}`);
}

export interface UnsignedCommand {
  readonly command: AdminCommand;
  readonly target: string;
  readonly args: Json;
  readonly nonce: Uint8Array;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  /** The X25519 public key the node seals its result to. */
  readonly replyKey: Uint8Array;
  readonly signer: Uint8Array;
}

export interface SignedCommand extends UnsignedCommand {
  readonly signature: Uint8Array;
  /** The canonical encoding, signature included: what travels in the job. */
  readonly encoded: Uint8Array;
  /** SHA-256 of the unsigned encoding: what the signer signs. */
  readonly digest: Uint8Array;
  readonly signerHex: Hex;
  readonly nonceHex: Hex;
}

const isCommand = (s: string): s is AdminCommand => (ADMIN_COMMANDS as readonly string[]).includes(s);

function encodeUnsigned(c: UnsignedCommand): Uint8Array {
  if (!isCommand(c.command)) throw new RangeError(`unknown command ${c.command}`);
  const target = Buffer.byteLength(c.target);
  if (target < 1 || target > MAX_TARGET_BYTES)
    throw new RangeError(`target must be 1–${MAX_TARGET_BYTES} bytes`);
  const args = new TextEncoder().encode(canonicalJson(c.args));
  if (args.length > MAX_COMMAND_ARGS_BYTES)
    throw new RangeError(`command args of ${args.length} bytes exceed ${MAX_COMMAND_ARGS_BYTES}`);
  if (!(c.expiresAtMs > c.issuedAtMs)) throw new RangeError('a command must expire after it is issued');
  if (c.expiresAtMs - c.issuedAtMs > MAX_COMMAND_TTL_MS)
    throw new RangeError(`a command may be valid for at most ${MAX_COMMAND_TTL_MS} ms`);
  const w = new Writer(256 + args.length);
  w.u8(COMMAND_TAG).u8(COMMAND_VERSION).string(c.command).string(c.target).bytes(args);
  w.fixed(c.nonce, NONCE_BYTES).u64(c.issuedAtMs).u64(c.expiresAtMs);
  w.fixed(c.replyKey, REPLY_KEY_BYTES).fixed(c.signer, 32);
  return w.finish();
}

function seal(c: UnsignedCommand, unsigned: Uint8Array, signature: Uint8Array): SignedCommand {
  const encoded = new Uint8Array(unsigned.length + 64);
  encoded.set(unsigned);
  encoded.set(signature, unsigned.length);
  return {
    ...c,
    signature,
    encoded,
    digest: sha256(unsigned),
    signerHex: toHex(c.signer),
    nonceHex: toHex(c.nonce),
  };
}

export interface CommandToSign {
  readonly command: AdminCommand;
  readonly target: string;
  readonly args: Json;
  readonly ttlMs: number;
  readonly nowMs?: number;
  readonly nonce?: Uint8Array;
  /** The key the result is sealed to (default: a fresh one, returned as `reply`). */
  readonly reply?: ReplyKey;
}

/**
 * Signs a command with a fresh random nonce, valid from now for `ttlMs` (≤ MAX_COMMAND_TTL_MS).
 * `reply` is the key pair whose public half the command carries: keep it to open the result.
 */
export function signCommand(c: CommandToSign, key: SigningKey): SignedCommand & { readonly reply: ReplyKey } {
  const issuedAtMs = c.nowMs ?? Date.now();
  const reply = c.reply ?? newReplyKey();
  const full: UnsignedCommand = {
    command: c.command,
    target: c.target,
    args: c.args,
    nonce: c.nonce ?? new Uint8Array(randomBytes(NONCE_BYTES)),
    issuedAtMs,
    expiresAtMs: issuedAtMs + c.ttlMs,
    replyKey: reply.publicKey,
    signer: key.publicKey,
  };
  const unsigned = encodeUnsigned(full);
  return { ...seal(full, unsigned, sign(sha256(unsigned), key)), reply };
}

/** Decodes a command; every failure is a DecodeError. The result shares no memory with `bytes`. */
export function decodeCommand(bytes: Uint8Array): SignedCommand {
  if (bytes.length > MAX_COMMAND_BYTES)
    throw new DecodeError('oversized', `command of ${bytes.length} bytes`);
  const own = bytes.slice();
  const r = new Reader(own);
  const tag = r.u8('command tag');
  if (tag !== COMMAND_TAG) throw new DecodeError('unknown-tag', `expected command tag, got ${tag}`);
  const version = r.u8('command version');
  if (version !== COMMAND_VERSION) throw new DecodeError('unsupported-version', `command version ${version}`);
  const command = r.string(MAX_COMMAND_NAME_BYTES, 'command');
  if (!isCommand(command)) throw new DecodeError('invalid-value', `unknown command ${command.slice(0, 32)}`);
  const target = r.string(MAX_TARGET_BYTES, 'target');
  if (target.length === 0) throw new DecodeError('invalid-value', 'empty target');
  const argBytes = r.bytes(MAX_COMMAND_ARGS_BYTES, 'args');
  let text: string;
  let args: Json;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(argBytes);
    args = JSON.parse(text) as Json;
  } catch {
    throw new DecodeError('invalid-value', 'args are not UTF-8 JSON');
  }
  let canonical: string;
  try {
    canonical = canonicalJson(args);
  } catch {
    throw new DecodeError('invalid-value', 'args are too deeply nested');
  }
  if (canonical !== text) throw new DecodeError('non-canonical', 'args are not canonical JSON');
  const nonce = r.fixed(NONCE_BYTES, 'nonce');
  const issuedAtMs = r.u64('issued-at');
  const expiresAtMs = r.u64('expires-at');
  if (!(expiresAtMs > issuedAtMs)) throw new DecodeError('invalid-value', 'expires before it is issued');
  if (expiresAtMs - issuedAtMs > MAX_COMMAND_TTL_MS)
    throw new DecodeError('invalid-value', `valid for more than ${MAX_COMMAND_TTL_MS} ms`);
  const replyKey = r.fixed(REPLY_KEY_BYTES, 'reply key');
  const signer = r.fixed(32, 'signer');
  const unsignedEnd = r.offset;
  const signature = r.fixed(64, 'command signature');
  r.end('command');
  return seal(
    { command, target, args, nonce, issuedAtMs, expiresAtMs, replyKey, signer },
    own.subarray(0, unsignedEnd),
    signature,
  );
}

/** Whether the signature is the signer's over this command (Cairn's Ed25519 rule). */
export const commandSignatureValid = (c: SignedCommand): boolean =>
  verifyNative(c.signature, c.digest, c.signer);
