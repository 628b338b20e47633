import type { BlockNode } from '../node/chain/block-tree.ts';
import { toHex } from '../node/chain/bytes.ts';
import type { EntryPayload, SealedBlock } from '../node/chain/types.ts';
import type { BlockAcceptedReport, BlockOrphanedReport } from './payloads.ts';

/** What a report says of an entry's payload: JSON with bytes as hex. */
export function payloadJson(p: EntryPayload): string {
  return JSON.stringify(p, (_k, v) => (v instanceof Uint8Array ? toHex(v) : v));
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
    entries: block.entries.map((e) => toHex(e.encoded)),
  };
}

export function blockOrphanedReport(
  nodeId: string,
  block: Pick<SealedBlock, 'hashHex' | 'header'>,
  reason: BlockOrphanedReport['reason'],
  reorgDepth?: number,
): BlockOrphanedReport {
  return {
    nodeId,
    hash: block.hashHex,
    height: block.header.height,
    prevHash: toHex(block.header.prevHash),
    miner: toHex(block.header.miner),
    reason,
    ...(reorgDepth ? { reorgDepth } : {}),
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

/**
 * Which main-chain blocks this node has reported, and the ids of its block reports. A report
 * id is what makes re-sending harmless (BullMQ and the collector drop a repeated id), so a
 * block that leaves the main chain and comes back needs a new id for its second acceptance,
 * and one that leaves twice a new id for its second departure. Bounded: the oldest go first.
 */
export class BlockReportLedger {
  private readonly reported = new Set<string>();
  private readonly departures = new Map<string, number>();

  private readonly nodeId: string;
  private readonly capacity;
  constructor(nodeId: string, capacity = 5_000) {
    this.nodeId = nodeId;
    this.capacity = capacity;
  }

  isReported(hashHex: string): boolean {
    return this.reported.has(hashHex);
  }

  /** Records a main-chain block as reported; returns its report id. */
  accepted(hashHex: string): string {
    this.reported.delete(hashHex);
    this.reported.add(hashHex);
    if (this.reported.size > this.capacity) this.reported.delete(this.reported.values().next().value!);
    const again = this.departures.get(hashHex);
    return `block.${this.nodeId}.${hashHex}${again ? `.again${again}` : ''}`;
  }

  /** Records a block leaving the main chain (or never joining it); returns its orphan report id. */
  orphaned(hashHex: string, reason: string): string {
    if (!this.reported.delete(hashHex)) return `orphan.${this.nodeId}.${hashHex}.${reason}`;
    const n = (this.departures.get(hashHex) ?? 0) + 1;
    this.departures.delete(hashHex);
    this.departures.set(hashHex, n);
    if (this.departures.size > this.capacity) this.departures.delete(this.departures.keys().next().value!);
    return `orphan.${this.nodeId}.${hashHex}.${reason}${n > 1 ? `.again${n - 1}` : ''}`;
  }
}
