import type { BlockNode } from '../node/chain/block-tree.ts';
import { toHex } from '../node/chain/bytes.ts';
import type { EntryPayload, SealedBlock, SealedEntry } from '../node/chain/types.ts';
import type { BlockAcceptedReport, BlockOrphanedReport } from './payloads.ts';

/** What a report says of an entry's payload: JSON with bytes as hex. */
export function payloadJson(p: EntryPayload): string {
  return JSON.stringify(p, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v));
}

function entryReport(e: SealedEntry, position: number) {
  return {
    id: e.idHex,
    position,
    kind: e.payload.kind,
    author: toHex(e.author),
    timestamp: e.timestamp,
    payload: payloadJson(e.payload),
    signature: toHex(e.signature),
  };
}

/** The `block.accepted` report of a main-chain block. */
export function blockAcceptedReport(
  nodeId: string,
  block: SealedBlock,
  node: BlockNode,
): BlockAcceptedReport {
  const h = block.header;
  return {
    nodeId,
    hash: block.hashHex,
    height: h.height,
    prevHash: toHex(h.prevHash),
    merkleRoot: toHex(h.merkleRoot),
    timestamp: h.timestamp,
    target: h.target.toString(),
    nonce: String(h.nonce),
    miner: toHex(h.miner),
    signature: toHex(block.signature),
    header: toHex(block.headerBytes),
    sizeBytes: block.encoded.length,
    totalWork: node.chainWork.toString(),
    entries: block.entries.map(entryReport),
  };
}

export function blockOrphanedReport(
  nodeId: string,
  block: Pick<SealedBlock, 'hashHex' | 'header'>,
  reason: BlockOrphanedReport['reason'],
): BlockOrphanedReport {
  return {
    nodeId,
    hash: block.hashHex,
    height: block.header.height,
    prevHash: toHex(block.header.prevHash),
    miner: toHex(block.header.miner),
    reason,
    at: new Date().toISOString(),
  };
}

/**
 * Main-chain blocks to report after the tip moved: from the newest block already reported (or
 * `backfill` blocks below the tip) up to the tip, lowest first, so the collector always sees a
 * parent before its child.
 */
export function blocksToReport(
  tip: BlockNode,
  reported: (hashHex: string) => boolean,
  backfill: number,
): BlockNode[] {
  const path: BlockNode[] = [];
  for (let n: BlockNode | undefined = tip; n && path.length < backfill; n = n.parent) {
    if (reported(n.hashHex)) break;
    path.push(n);
  }
  return path.reverse();
}
