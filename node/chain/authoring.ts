import { sealBlock } from './block-codec.ts';
import { entryIdOf, sealEntry } from './entry-codec.ts';
import { merkleRoot } from './merkle.ts';
import { type SigningKey, sign } from './signature.ts';
import {
  type BlockHeader,
  type EntryPayload,
  FORMAT_VERSION,
  type SealedBlock,
  type SealedEntry,
} from './types.ts';

/** Creates and signs an entry by `key`. */
export function createEntry(
  payload: EntryPayload,
  key: SigningKey,
  timestamp: number = Date.now(),
): SealedEntry {
  const unsigned = { version: FORMAT_VERSION, author: key.publicKey, timestamp, payload };
  return sealEntry({ ...unsigned, signature: sign(entryIdOf(unsigned), key) });
}

export type UnsealedHeader = Omit<BlockHeader, 'merkleRoot' | 'nonce'> & {
  merkleRoot?: Uint8Array;
  nonce?: number;
};

/** Assembles a block from a header (nonce already found) and entries, signed by the miner key. */
export function signBlock(
  header: BlockHeader,
  entries: readonly SealedEntry[],
  key: SigningKey,
): SealedBlock {
  const unsigned = sealBlock({ header, signature: new Uint8Array(64), entries });
  return sealBlock({ header, signature: sign(unsigned.hash, key), entries });
}

export const merkleRootOf = (entries: readonly SealedEntry[]) => merkleRoot(entries.map((e) => e.id));
