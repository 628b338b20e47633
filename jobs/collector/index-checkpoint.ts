/**
 * Admin checkpoints in the index, the chain's rule (node/chain/checkpoint.ts) read from indexed
 * rows: a checkpoint is final once a block that carries it is canonical, and from then on no
 * block whose chain forks at or below its height is indexed, so no chain however heavy moves
 * `canonical` flags there. Finality is persisted (FinalCheckpoint) and only moves up: it stays
 * when the carrier is reorged out above the checkpointed height, as on a node.
 */
import type { Hex } from '../../node/chain/bytes.ts';
import {
  CHECKPOINT_KEY,
  type Checkpoint,
  checkpointsIn,
  parseCheckpoint,
} from '../../node/chain/checkpoint.ts';
import type { SealedEntry } from '../../node/chain/types.ts';
import type { IndexDb } from '../index-db/open.ts';
import { ReportRefused } from './report-errors.ts';

type Tx = Parameters<Parameters<IndexDb['$transaction']>[0]>[0];

/** Where a new block's branch meets the canonical chain. */
export interface ForkPoint {
  /** Height of the canonical (or unindexed: the genesis) ancestor the walk stopped at. */
  readonly forkHeight: number;
  /** The non-canonical ancestors above it, from the parent down. */
  readonly path: readonly string[];
  /** False if the walk stopped at `floor` first: the fork is below `floor`, not at `forkHeight`. */
  readonly complete: boolean;
}

/**
 * Walks from a block's parent down its branch to the canonical chain. With a `floor`, stops
 * once the ancestor at `floor` turns out non-canonical: the branch then forks below it, which is
 * all a checkpoint needs to know, and the walk costs at most height − floor lookups.
 */
export async function forkPoint(
  tx: Tx,
  block: { readonly height: number; readonly prevHash: string },
  floor = 0,
): Promise<ForkPoint> {
  const path: string[] = [];
  let prev = block.prevHash;
  for (let h = block.height - 1; h >= 0; h--) {
    if (h < floor) return { forkHeight: h, path, complete: false };
    const parent = await tx.block.findUnique({
      where: { hash: prev },
      select: { hash: true, canonical: true, prevHash: true },
    });
    // The genesis (when never reported) or the canonical fork point: what lies below stays.
    if (!parent || parent.canonical) return { forkHeight: h, path, complete: true };
    path.push(parent.hash);
    prev = parent.prevHash;
  }
  return { forkHeight: -1, path, complete: true };
}

/** The highest checkpoint final in the index. */
export async function finalCheckpoint(tx: Tx): Promise<Checkpoint | undefined> {
  const row = await tx.finalCheckpoint.findFirst({ orderBy: { height: 'desc' } });
  return row ? { height: row.height, hashHex: row.hash as Hex } : undefined;
}

/**
 * Refuses a block whose chain forks at or below the final checkpoint (`below-checkpoint`: a node
 * refuses it too), and one carrying a checkpoint that is not its own chain's block at that
 * height (`checkpoint-not-in-chain`).
 */
export async function checkCheckpoints(
  tx: Tx,
  block: { readonly height: number; readonly prevHash: string; readonly entries: readonly SealedEntry[] },
): Promise<void> {
  const final = await finalCheckpoint(tx);
  const carried = checkpointsIn(block.entries);
  if (!final && !carried.length) return;
  const lowest = Math.min(final?.height ?? Infinity, ...carried.map((c) => c.height));
  const fork = await forkPoint(tx, block, Math.min(lowest, block.height));
  if (final && (!fork.complete || fork.forkHeight < final.height))
    throw new ReportRefused(
      'below-checkpoint',
      `the block's chain forks below the checkpoint at height ${final.height}`,
    );
  for (const cp of carried) {
    const at = cp.height < block.height ? await ancestorAt(tx, block, fork, cp.height) : undefined;
    if (at !== cp.hashHex)
      throw new ReportRefused(
        'checkpoint-not-in-chain',
        `checkpoint ${cp.height}:${cp.hashHex.slice(0, 16)}… is not this chain's block at that height`,
      );
  }
}

/** The hash of the block's ancestor at `height` (≥ the walk's floor, below the block). */
async function ancestorAt(
  tx: Tx,
  block: { readonly height: number },
  fork: ForkPoint,
  height: number,
): Promise<string | undefined> {
  if (height > fork.forkHeight) return fork.path[block.height - 1 - height];
  if (!fork.complete) return undefined;
  const row = await tx.block.findFirst({ where: { canonical: true, height }, select: { hash: true } });
  return row?.hash;
}

/**
 * Records the checkpoints that blocks just made canonical carry (the new block and the branch
 * below it, whose entries are indexed already), when higher than the final one.
 */
export async function recordFinal(
  tx: Tx,
  block: { readonly hashHex: string; readonly entries: readonly SealedEntry[] },
  path: readonly string[],
): Promise<void> {
  const found: { cp: Checkpoint; carrier: string }[] = checkpointsIn(block.entries).map((cp) => ({
    cp,
    carrier: block.hashHex,
  }));
  if (path.length) {
    const rows = await tx.entry.findMany({
      where: { blockHash: { in: [...path] }, kind: 'config', payload: { contains: '"checkpoint"' } },
      select: { blockHash: true, payload: true },
    });
    for (const row of rows)
      for (const cp of checkpointsInJson(row.payload)) found.push({ cp, carrier: row.blockHash });
  }
  if (!found.length) return;
  const final = await finalCheckpoint(tx);
  for (const { cp, carrier } of found) {
    if (final && cp.height <= final.height) continue;
    if (await tx.finalCheckpoint.findUnique({ where: { height: cp.height }, select: { height: true } }))
      continue;
    await tx.finalCheckpoint.create({
      data: { height: cp.height, hash: cp.hashHex, carrierHash: carrier, finalizedAt: new Date() },
    });
  }
}

/** The checkpoints of an indexed config entry's payload (payloadJson of a validated entry). */
function checkpointsInJson(payload: string): Checkpoint[] {
  const parsed = JSON.parse(payload) as { kind: string; changes?: unknown };
  if (parsed.kind !== 'config' || !Array.isArray(parsed.changes)) return [];
  const out: Checkpoint[] = [];
  for (const [k, v] of parsed.changes as [unknown, unknown][]) {
    const cp = k === CHECKPOINT_KEY && typeof v === 'string' ? parseCheckpoint(v) : undefined;
    if (cp) out.push(cp);
  }
  return out;
}
