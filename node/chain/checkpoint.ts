/**
 * Admin checkpoints: finality a network's admins can set. A checkpoint is a `config` entry (so
 * only an admin key may sign it) with the change `checkpoint = "<height>:<block hash>"`. Once a
 * block carrying one is on a node's main chain, everything at or below that height is final
 * there: no heavier chain that forks below it is ever adopted. Deep reorgs above it still work.
 *
 * Finality is monotonic and local: it stays even if the block that carried the checkpoint is
 * later reorged out above the checkpointed height (the entry goes back to the mempool and is
 * mined again). Pure functions; the chain applies them.
 */
import type { BlockNode } from './block-tree.ts';
import type { Hex } from './bytes.ts';
import type { ConfigPayload, SealedEntry } from './types.ts';

export const CHECKPOINT_KEY = 'checkpoint';

export interface Checkpoint {
  readonly height: number;
  readonly hashHex: Hex;
}

const VALUE = /^(0|[1-9][0-9]{0,9}):([0-9a-f]{64})$/;

export const formatCheckpoint = (cp: Checkpoint): string => `${cp.height}:${cp.hashHex}`;

/** The checkpoint a value names, or undefined if it is not exactly "<height>:<64 hex digits>". */
export function parseCheckpoint(value: string): Checkpoint | undefined {
  const m = VALUE.exec(value);
  if (!m) return undefined;
  const height = Number(m[1]);
  if (height < 1 || height > 0xffff_ffff) return undefined;
  return { height, hashHex: m[2] as Hex };
}

/** The payload of an entry that checkpoints `cp` (sign it with an admin key). */
export function checkpointPayload(cp: Checkpoint): ConfigPayload {
  return { kind: 'config', changes: [[CHECKPOINT_KEY, formatCheckpoint(cp)]] };
}

/** Malformed checkpoint values among a config entry's changes (an entry rule). */
export function malformedCheckpoint(entry: SealedEntry): string | undefined {
  if (entry.payload.kind !== 'config') return undefined;
  for (const [k, v] of entry.payload.changes) if (k === CHECKPOINT_KEY && !parseCheckpoint(v)) return v;
  return undefined;
}

/** Every checkpoint the entries name, in order. */
export function checkpointsIn(entries: readonly SealedEntry[]): Checkpoint[] {
  const out: Checkpoint[] = [];
  for (const e of entries) {
    if (e.payload.kind !== 'config') continue;
    for (const [k, v] of e.payload.changes) {
      const cp = k === CHECKPOINT_KEY ? parseCheckpoint(v) : undefined;
      if (cp) out.push(cp);
    }
  }
  return out;
}

/** The higher of two checkpoints (finality only moves up). */
export const laterCheckpoint = (
  a: Checkpoint | undefined,
  b: Checkpoint | undefined,
): Checkpoint | undefined => (!a ? b : !b ? a : b.height > a.height ? b : a);

/**
 * The ancestor of `node` (or `node` itself) at `height`. Walks down to the main chain, then
 * jumps by height: side branches are short (low-work side chains are not kept), main is indexed.
 */
export function ancestorAt(
  node: BlockNode,
  height: number,
  mainAt: (h: number) => BlockNode | undefined,
): BlockNode | undefined {
  let n: BlockNode | undefined = node;
  while (n && !n.onMain && n.height > height) n = n.parent;
  if (!n || n.height < height) return undefined;
  return n.onMain ? mainAt(height) : n;
}

/** True if a block on `parent` would not descend from the finalized block. */
export function forksBelow(
  parent: BlockNode,
  blockHeight: number,
  finalized: Checkpoint | undefined,
  mainAt: (h: number) => BlockNode | undefined,
): boolean {
  if (!finalized) return false;
  // At or below the checkpoint only the final main chain counts; any other block there forks.
  if (blockHeight <= finalized.height) return true;
  return ancestorAt(parent, finalized.height, mainAt)?.hashHex !== finalized.hashHex;
}
