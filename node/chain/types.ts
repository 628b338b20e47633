import type { Hex } from './bytes.ts';

/** Every encoding starts with a tag byte, so a hash of one kind can never be a hash of another. */
export const TAG = { entry: 0x01, header: 0x02, block: 0x03 } as const;
export const FORMAT_VERSION = 1;

/** Hard caps of the encoding itself; the network config may set tighter consensus limits. */
export const LIMITS = {
  entryBytes: 64 * 1024,
  contentBytes: 32 * 1024,
  metadataPairs: 16,
  keyBytes: 64,
  valueBytes: 1024,
  metrics: 16,
  configChanges: 16,
  blockBytes: 4 * 1024 * 1024,
  entriesPerBlock: 10_000,
} as const;

export type EntryKind = 'knowledge' | 'model' | 'config';
export const ENTRY_KIND_CODE: Record<EntryKind, number> = { knowledge: 1, model: 2, config: 3 };

export type KeyValue = readonly [key: string, value: string];

export interface KnowledgePayload {
  readonly kind: 'knowledge';
  readonly content: string;
  /** Sorted by key, keys unique. */
  readonly metadata: readonly KeyValue[];
}

export interface ModelPayload {
  readonly kind: 'model';
  /** Content address of the model version. */
  readonly modelHash: Uint8Array;
  /** The version it was trained from; null for the first one. */
  readonly parentHash: Uint8Array | null;
  readonly round: number;
  /** Sorted by name, names unique. */
  readonly metrics: readonly (readonly [name: string, value: number])[];
  /** Privacy budget spent in total up to and including this version. */
  readonly epsilon: number;
}

export interface ConfigPayload {
  readonly kind: 'config';
  /** Sorted by key, keys unique, at least one. */
  readonly changes: readonly KeyValue[];
}

export type EntryPayload = KnowledgePayload | ModelPayload | ConfigPayload;

export interface UnsignedEntry {
  readonly version: number;
  /** Ed25519 public key of the signer. */
  readonly author: Uint8Array;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
  readonly payload: EntryPayload;
}

export interface Entry extends UnsignedEntry {
  readonly signature: Uint8Array;
}

/** An entry together with what is derived from its bytes, computed once at decode or seal time. */
export interface SealedEntry extends Entry {
  /** SHA-256 of the unsigned encoding; this is what the author signs. */
  readonly id: Uint8Array;
  readonly idHex: Hex;
  /** The full canonical encoding, signature included. */
  readonly encoded: Uint8Array;
}

export interface BlockHeader {
  readonly version: number;
  readonly chainId: Uint8Array;
  readonly height: number;
  readonly prevHash: Uint8Array;
  readonly merkleRoot: Uint8Array;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
  /** The block hash read as a 256-bit big-endian integer must not exceed this. */
  readonly target: bigint;
  /** Ed25519 public key of the miner; it signs the block hash. */
  readonly miner: Uint8Array;
  readonly nonce: number;
}

export interface Block {
  readonly header: BlockHeader;
  readonly signature: Uint8Array;
  readonly entries: readonly SealedEntry[];
}

export interface SealedBlock extends Block {
  readonly hash: Uint8Array;
  readonly hashHex: Hex;
  readonly headerBytes: Uint8Array;
  readonly encoded: Uint8Array;
}
