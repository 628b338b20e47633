/**
 * The parent context (node/chain/validation.ts ParentContext) of a reported block, built from the
 * index instead of a node's BlockTree: the parent's hash, height and target, and the timestamps
 * of the ancestors the retarget window and the median-time-past span look at, read along the
 * block's own branch (prevHash links), never from the canonical chain by height, which may be
 * another branch. Only validated blocks are indexed, so what is read here was checked once.
 */
import { fromHex, type Hex } from '../../node/chain/bytes.ts';
import type { ParentContext } from '../../node/chain/validation.ts';
import type { IndexDb } from '../index-db/open.ts';
import type { IndexedNetwork } from './block-check.ts';
import { ReportHeld } from './report-errors.ts';

type Reader = Pick<IndexDb, 'block'>;

/** An indexed block as the context needs it (the genesis comes from the network, not the DB). */
export interface IndexedLink {
  readonly hash: Hex;
  readonly height: number;
  readonly prevHash: Hex;
  readonly target: string;
  readonly timestamp: Date;
}

export const LINK_SELECT = {
  hash: true,
  height: true,
  prevHash: true,
  target: true,
  timestamp: true,
} as const;

/**
 * How many blocks, the parent included, the context rules read back from the parent: the
 * retarget window starts `retargetInterval` heights below the parent, the median spans
 * `medianTimeSpan` blocks ending at it.
 */
export function contextDepth(net: IndexedNetwork): number {
  const { config } = net;
  return Math.max(config.retargetInterval + 1, config.medianTimeSpan);
}

/**
 * The ancestors within contextDepth of `parent`, by height, read with one query over their
 * height range (side branches there are few: low-work forks are refused by the nodes that
 * report). `limit` bounds the rows one query may return; a branch not found in them is
 * followed hash by hash, so a crowded height range costs queries, never memory.
 */
export async function indexedParentContext(
  db: Reader,
  net: IndexedNetwork,
  parent: IndexedLink,
  limit = 256,
): Promise<ParentContext> {
  const lowest = Math.max(0, parent.height - contextDepth(net) + 1);
  const timestamps = new Map<number, number>([[parent.height, parent.timestamp.getTime()]]);
  if (lowest < parent.height) {
    const rows = await db.block.findMany({
      where: { height: { gte: Math.max(1, lowest), lt: parent.height } },
      orderBy: { height: 'desc' },
      take: limit,
      select: LINK_SELECT,
    });
    const byHash = new Map(rows.map((r) => [r.hash, r]));
    let prev = parent.prevHash;
    for (let h = parent.height - 1; h >= lowest; h--) {
      if (h === 0) {
        if (prev !== net.genesis.hashHex)
          throw new ReportHeld('unknown-parent', `ancestor ${prev} at 0`, prev);
        timestamps.set(0, net.genesis.header.timestamp);
        break;
      }
      const row =
        byHash.get(prev) ?? (await db.block.findUnique({ where: { hash: prev }, select: LINK_SELECT }));
      // An ancestor that left the index (retention never deletes blocks, but a partial restore
      // might) makes the block unjudgeable for now, as a missing parent does.
      if (!row || row.height !== h)
        throw new ReportHeld('unknown-parent', `ancestor ${prev} at height ${h} is not indexed`, prev);
      timestamps.set(h, row.timestamp.getTime());
      prev = row.prevHash;
    }
  }
  return {
    hash: fromHex(parent.hash),
    height: parent.height,
    target: BigInt(parent.target),
    timestampAt: (h) => {
      const ts = timestamps.get(h);
      // The rules read only within contextDepth; a read outside it is a bug here, not a report's.
      if (ts === undefined) throw new Error(`no indexed ancestor timestamp at height ${h}`);
      return ts;
    },
  };
}

/** The genesis as a link, for blocks at height 1 (the genesis need not be indexed). */
export function genesisLink(net: IndexedNetwork): IndexedLink {
  const g = net.genesis;
  return {
    hash: g.hashHex,
    height: 0,
    prevHash: '' as Hex,
    target: g.header.target.toString(),
    timestamp: new Date(g.header.timestamp),
  };
}
