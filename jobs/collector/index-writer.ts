import type { CairnEvents, TOPICS } from '../events.ts';
import { TOPICS as T, toEvent } from '../events.ts';
import type { IndexDb } from '../index-db/open.ts';
import type { ReportPayloads } from '../payloads.ts';
import type { ReportKind } from '../queues.ts';
import { networkFigures } from './network-stats.ts';

type Tx = Parameters<Parameters<IndexDb['$transaction']>[0]>[0];
type Topic = (typeof TOPICS)[keyof typeof TOPICS];
export type Publication = { [K in Topic]: { topic: K; payload: CairnEvents[K][0] } }[Topic];

export interface IndexWriterOptions {
  /** A node that has not reported for this long no longer counts in network stats. */
  readonly liveWindowMs?: number;
  /** Canonical blocks the hash-rate estimate looks at. */
  readonly hashRateWindow?: number;
}

/**
 * Writes reports into the index DB. Every report is applied at most once (its job id is recorded
 * in the same transaction), and every row is keyed by what it describes, so the same block from
 * ten nodes is one row. Returns the events to publish once the transaction has committed.
 */
export class IndexWriter {
  private readonly liveWindowMs: number;
  private readonly hashRateWindow: number;

  constructor(
    private readonly db: IndexDb,
    opts: IndexWriterOptions = {},
  ) {
    this.liveWindowMs = opts.liveWindowMs ?? 3 * 60_000;
    this.hashRateWindow = opts.hashRateWindow ?? 20;
  }

  async apply<K extends ReportKind>(
    reportId: string,
    kind: K,
    report: ReportPayloads[K],
  ): Promise<{ duplicate: boolean; publications: Publication[] }> {
    return this.db.$transaction(
      async (tx) => {
        if (await tx.report.findUnique({ where: { id: reportId }, select: { id: true } }))
          return { duplicate: true, publications: [] };
        const publications = await this.write(tx, kind, report);
        await tx.report.create({
          data: { id: reportId, kind, nodeId: report.nodeId, receivedAt: new Date() },
        });
        return { duplicate: false, publications };
      },
      { timeout: 30_000, maxWait: 30_000 },
    );
  }

  private write<K extends ReportKind>(tx: Tx, kind: K, report: ReportPayloads[K]): Promise<Publication[]> {
    switch (kind) {
      case 'block.accepted':
        return this.blockAccepted(tx, report as ReportPayloads['block.accepted']);
      case 'block.orphaned':
        return this.blockOrphaned(tx, report as ReportPayloads['block.orphaned']);
      case 'node.stats':
        return this.nodeStats(tx, report as ReportPayloads['node.stats']);
      case 'model.version':
        return this.modelVersion(tx, report as ReportPayloads['model.version']);
      case 'fl.round':
        return this.flRound(tx, report as ReportPayloads['fl.round']);
      default:
        throw new Error(`unknown report kind ${kind}`);
    }
  }

  private async blockAccepted(tx: Tx, r: ReportPayloads['block.accepted']): Promise<Publication[]> {
    if (await tx.block.findUnique({ where: { hash: r.hash }, select: { hash: true } })) return [];
    const canonical = await this.chooseCanonical(tx, r);
    const row = await tx.block.create({
      data: {
        hash: r.hash,
        height: r.height,
        prevHash: r.prevHash,
        merkleRoot: r.merkleRoot,
        timestamp: new Date(r.timestamp),
        target: r.target,
        nonce: r.nonce,
        miner: r.miner,
        signature: r.signature,
        header: r.header,
        entryCount: r.entries.length,
        sizeBytes: r.sizeBytes,
        totalWork: r.totalWork,
        canonical,
        reportedBy: r.nodeId,
        receivedAt: new Date(),
        entries: {
          create: r.entries.map((e) => ({
            id: e.id,
            position: e.position,
            kind: e.kind,
            author: e.author,
            timestamp: new Date(e.timestamp),
            payload: e.payload,
            signature: e.signature,
          })),
        },
      },
    });
    return [{ topic: T.newBlock, payload: toEvent(row) }];
  }

  /**
   * The index's own fork choice, the chain's rule: most cumulative work. A block heavier than the
   * canonical head becomes canonical with its known ancestors; blocks it displaces lose the flag.
   */
  private async chooseCanonical(tx: Tx, r: ReportPayloads['block.accepted']): Promise<boolean> {
    const head = await tx.block.findFirst({ where: { canonical: true }, orderBy: { height: 'desc' } });
    if (head && BigInt(r.totalWork) <= BigInt(head.totalWork)) return false;
    const path: string[] = [];
    let forkHeight = -1;
    let prev = r.prevHash;
    for (let h = r.height - 1; h >= 0; h--) {
      const parent = await tx.block.findUnique({
        where: { hash: prev },
        select: { hash: true, canonical: true, prevHash: true },
      });
      if (!parent || parent.canonical) {
        // A parent the index never saw (a gap) counts as the fork point: what lies below stays.
        forkHeight = h;
        break;
      }
      path.push(parent.hash);
      prev = parent.prevHash;
    }
    await tx.block.updateMany({
      where: { canonical: true, height: { gt: forkHeight } },
      data: { canonical: false },
    });
    if (path.length) await tx.block.updateMany({ where: { hash: { in: path } }, data: { canonical: true } });
    return true;
  }

  private async blockOrphaned(tx: Tx, r: ReportPayloads['block.orphaned']): Promise<Publication[]> {
    const key = { hash_reason: { hash: r.hash, reason: r.reason } };
    if (await tx.orphanedBlock.findUnique({ where: key, select: { hash: true } })) return [];
    const row = await tx.orphanedBlock.create({
      data: {
        hash: r.hash,
        reason: r.reason,
        height: r.height,
        prevHash: r.prevHash,
        miner: r.miner,
        reportedBy: r.nodeId,
        reorgDepth: r.reorgDepth ?? null,
        at: new Date(r.at),
      },
    });
    return [{ topic: T.orphanedBlock, payload: toEvent(row) }];
  }

  private async nodeStats(tx: Tx, r: ReportPayloads['node.stats']): Promise<Publication[]> {
    const at = new Date(r.at);
    const fields = {
      role: r.role,
      capabilities: r.capabilities.join(','),
      addrs: JSON.stringify(r.addrs),
      lastSeenAt: at,
      height: r.height,
      headHash: r.headHash,
      peerCount: r.peers.length,
      peers: JSON.stringify(r.peers),
      mempoolSize: r.mempoolSize,
      mining: r.mining,
    };
    const existing = await tx.node.findUnique({ where: { id: r.nodeId } });
    // A report re-sent after a Redis restart must not roll the node's state back.
    const node =
      existing && existing.lastSeenAt > at
        ? existing
        : await tx.node.upsert({
            where: { id: r.nodeId },
            create: { id: r.nodeId, firstSeenAt: at, ...fields },
            update: fields,
          });
    const snapshotId = `${r.nodeId}:${r.boot}:${r.seq}`;
    if (!(await tx.nodeStatsSnapshot.findUnique({ where: { id: snapshotId }, select: { id: true } }))) {
      await tx.nodeStatsSnapshot.create({
        data: {
          id: snapshotId,
          nodeId: r.nodeId,
          boot: BigInt(r.boot),
          seq: r.seq,
          at,
          height: r.height,
          headHash: r.headHash,
          totalWork: r.totalWork,
          difficulty: r.target,
          peerCount: r.peers.length,
          mempoolSize: r.mempoolSize,
          hashRate: r.hashRate,
        },
      });
    }
    await tx.networkConfig.upsert({
      where: { chainId: r.chainId },
      create: { chainId: r.chainId, genesisHash: r.genesisHash, config: r.networkConfig, updatedAt: at },
      update: { config: r.networkConfig, updatedAt: at },
    });
    const live = await tx.node.findMany({
      where: { lastSeenAt: { gte: new Date(Date.now() - this.liveWindowMs) } },
      select: { height: true, peerCount: true, mempoolSize: true },
    });
    const recent = await tx.block.findMany({
      where: { canonical: true },
      orderBy: { height: 'desc' },
      take: this.hashRateWindow,
      select: { timestamp: true, target: true },
    });
    const stats = await tx.networkStats.create({ data: { at: new Date(), ...networkFigures(live, recent) } });
    return [
      { topic: T.nodeStatus, payload: toEvent(node) },
      { topic: T.networkStats, payload: toEvent(stats) },
    ];
  }

  private async modelVersion(tx: Tx, r: ReportPayloads['model.version']): Promise<Publication[]> {
    const found = await tx.modelVersion.findUnique({ where: { hash: r.hash } });
    if (found) {
      // The version is known; a later report may add the block that commits it.
      if (r.blockHash && !found.blockHash)
        await tx.modelVersion.update({ where: { hash: r.hash }, data: { blockHash: r.blockHash } });
      return [];
    }
    const row = await tx.modelVersion.create({
      data: {
        hash: r.hash,
        parentHash: r.parentHash,
        round: r.round,
        metrics: JSON.stringify(r.metrics),
        accuracy: r.metrics.accuracy ?? null,
        epsilon: r.epsilon,
        participants: r.participants,
        blockHash: r.blockHash,
        createdAt: new Date(r.at),
      },
    });
    return [{ topic: T.modelVersion, payload: toEvent(row) }];
  }

  private async flRound(tx: Tx, r: ReportPayloads['fl.round']): Promise<Publication[]> {
    const fields = {
      round: r.round,
      coordinator: r.nodeId,
      status: r.status,
      participants: JSON.stringify(r.participants),
      leftOut: JSON.stringify(r.leftOut),
      dp: JSON.stringify(r.dp),
      modelHash: r.modelHash,
      error: r.error,
      startedAt: new Date(r.startedAt),
      finishedAt: r.finishedAt ? new Date(r.finishedAt) : null,
    };
    await tx.flRound.upsert({ where: { id: r.id }, create: { id: r.id, ...fields }, update: fields });
    return [];
  }
}
