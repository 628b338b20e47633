import { toHex } from '../../node/chain/bytes.ts';
import { DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { entryProblem, minerProblem, type RosterState } from '../../node/membership/roster-state.ts';
import type { CairnEvents, TOPICS } from '../events.ts';
import { TOPICS as T, toEvent } from '../events.ts';
import type { IndexDb } from '../index-db/open.ts';
import { payloadJson } from '../node-reports.ts';
import type { ReportPayloads } from '../payloads.ts';
import type { ReportKind } from '../queues.ts';
import { checkBlockContext, checkBlockReport, type IndexedNetwork, indexedNetwork } from './block-check.ts';
import { genesisLink, indexedParentContext, LINK_SELECT } from './index-context.ts';
import { IndexRoster } from './index-roster.ts';
import { networkFigures } from './network-stats.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';

type Tx = Parameters<Parameters<IndexDb['$transaction']>[0]>[0];
type Topic = (typeof TOPICS)[keyof typeof TOPICS];
export type Publication = { [K in Topic]: { topic: K; payload: CairnEvents[K][0] } }[Topic];

export interface IndexWriterOptions {
  /** A node that has not reported for this long no longer counts in network stats. */
  readonly liveWindowMs?: number;
  /** Canonical blocks the hash-rate estimate looks at. */
  readonly hashRateWindow?: number;
  /**
   * The network whose blocks are indexed (default: the node's built-in one). Reports are
   * judged against it, never against a network config some report carries.
   */
  readonly network?: NetworkConfig;
  /** The clock entry timestamps are checked against (tests pin it). */
  readonly now?: () => number;
}

/** What a block report proved, ready to be written. */
interface CheckedBlock {
  readonly block: SealedBlock;
  readonly report: ReportPayloads['block.accepted'];
}

/**
 * Writes reports into the index DB. Every report is applied at most once (its job id is recorded
 * in the same transaction), and every row is keyed by what it describes, so the same block from
 * ten nodes is one row. Returns the events to publish once the transaction has committed.
 */
export class IndexWriter {
  private readonly liveWindowMs: number;
  private readonly hashRateWindow: number;
  private readonly net: IndexedNetwork;
  private readonly roster: IndexRoster | undefined;
  private readonly now: () => number;
  /** The network config as nodes report it: JSON, bigints as decimal strings. */
  private readonly configJson: string;

  constructor(
    private readonly db: IndexDb,
    opts: IndexWriterOptions = {},
  ) {
    this.liveWindowMs = opts.liveWindowMs ?? 3 * 60_000;
    this.hashRateWindow = opts.hashRateWindow ?? 20;
    this.net = indexedNetwork(opts.network ?? DEFAULT_NETWORK);
    this.roster = this.net.config.membership === 'roster' ? new IndexRoster(this.net) : undefined;
    this.now = opts.now ?? Date.now;
    this.configJson = JSON.stringify(this.net.config, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  }

  /**
   * Indexes a report once. Throws ReportRefused for a report that must never be indexed and
   * ReportHeld for one that cannot be judged yet (its parent is not indexed); neither writes.
   */

  async apply<K extends ReportKind>(
    reportId: string,
    kind: K,
    report: ReportPayloads[K],
  ): Promise<{ duplicate: boolean; publications: Publication[] }> {
    // The expensive, DB-free checks (hashing, signatures) outside the transaction, and before the
    // duplicate check: a forged copy of a known block is refused, not recorded as a report.
    const checked =
      kind === 'block.accepted'
        ? { block: checkBlockReport(report as ReportPayloads['block.accepted'], this.net, this.now()) }
        : undefined;
    return this.db.$transaction(
      async (tx) => {
        if (await tx.report.findUnique({ where: { id: reportId }, select: { id: true } }))
          return { duplicate: true, publications: [] };
        const publications = checked
          ? await this.blockAccepted(tx, { ...checked, report: report as ReportPayloads['block.accepted'] })
          : await this.write(tx, kind, report);
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

  private async blockAccepted(tx: Tx, { block, report: r }: CheckedBlock): Promise<Publication[]> {
    if (await tx.block.findUnique({ where: { hash: block.hashHex }, select: { hash: true } })) return [];
    const h = block.header;
    const prevHash = toHex(h.prevHash);
    let totalWork = this.net.genesisWork;
    let parentRoster: RosterState | undefined;
    if (h.height > 0) {
      const parent =
        prevHash === this.net.genesis.hashHex
          ? { ...genesisLink(this.net), totalWork: this.net.genesisWork.toString() }
          : await tx.block.findUnique({
              where: { hash: prevHash },
              select: { ...LINK_SELECT, totalWork: true },
            });
      if (!parent) throw new ReportHeld('unknown-parent', `parent ${prevHash} is not indexed yet`, prevHash);
      if (h.height !== parent.height + 1)
        throw new ReportRefused('bad-height', `height ${h.height} on a parent at ${parent.height}`);
      // Difficulty and time against the indexed ancestry, as nodes judge them (Chain.connect).
      checkBlockContext(block, await indexedParentContext(tx, this.net, parent), this.net, this.now());
      // The parent's total is the collector's own figure (computed the same way when indexed).
      totalWork = BigInt(parent.totalWork) + workForTarget(h.target);
      if (this.roster) {
        parentRoster = await this.roster.after(tx, prevHash);
        const problem =
          minerProblem(parentRoster, toHex(h.miner), h.timestamp) ??
          block.entries
            .map((e) => entryProblem(parentRoster!, e, this.net.chainId, h.timestamp))
            .find(Boolean);
        if (problem) throw new ReportRefused(problem.code, problem.message);
      }
    }
    if (BigInt(r.totalWork) !== totalWork)
      throw new ReportRefused('wrong-total-work', `claimed ${r.totalWork}, computed ${totalWork}`);
    const canonical = await this.chooseCanonical(tx, { height: h.height, prevHash, totalWork });
    const row = await tx.block.create({
      data: {
        hash: block.hashHex,
        height: h.height,
        prevHash,
        merkleRoot: toHex(h.merkleRoot),
        timestamp: new Date(h.timestamp),
        target: h.target.toString(),
        nonce: String(h.nonce),
        miner: toHex(h.miner),
        signature: toHex(block.signature),
        header: toHex(block.headerBytes),
        entryCount: block.entries.length,
        sizeBytes: block.encoded.length,
        totalWork: totalWork.toString(),
        canonical,
        reportedBy: r.nodeId,
        receivedAt: new Date(),
        entries: {
          create: block.entries.map((e, position) => ({
            id: e.idHex,
            position,
            kind: e.payload.kind,
            author: toHex(e.author),
            timestamp: new Date(e.timestamp),
            payload: payloadJson(e.payload),
            signature: toHex(e.signature),
          })),
        },
      },
    });
    if (this.roster && parentRoster) this.roster.record(block.hashHex, parentRoster, block.entries);
    return [{ topic: T.newBlock, payload: toEvent(row) }];
  }

  /**
   * The index's own fork choice, the chain's rule: most cumulative work (the collector's own
   * figures). A block heavier than the canonical head becomes canonical with its known
   * ancestors; blocks it displaces lose the flag. A block is indexed only after its parent, so
   * it has no indexed descendants yet: a block that is not heavier than the head stays off the
   * canonical chain rightly, and a late parent can never be left behind by its child.
   */
  private async chooseCanonical(
    tx: Tx,
    r: { height: number; prevHash: string; totalWork: bigint },
  ): Promise<boolean> {
    const head = await tx.block.findFirst({ where: { canonical: true }, orderBy: { height: 'desc' } });
    if (head && r.totalWork <= BigInt(head.totalWork)) return false;
    const path: string[] = [];
    let forkHeight = -1;
    let prev = r.prevHash;
    for (let h = r.height - 1; h >= 0; h--) {
      const parent = await tx.block.findUnique({
        where: { hash: prev },
        select: { hash: true, canonical: true, prevHash: true },
      });
      if (!parent || parent.canonical) {
        // The genesis (when never reported) or the canonical fork point: what lies below stays.
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
    // A node of another network (or a forged report) must not show up as one of ours.
    if (r.chainId !== toHex(this.net.chainId) || r.genesisHash !== this.net.genesis.hashHex)
      throw new ReportRefused('wrong-chain-id', `stats of chain ${r.chainId.slice(0, 16)}…`);
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
    // The config shown is the one the collector judges blocks by, not what a report says.
    await tx.networkConfig.upsert({
      where: { chainId: r.chainId },
      create: { chainId: r.chainId, genesisHash: r.genesisHash, config: this.configJson, updatedAt: at },
      update: { config: this.configJson, updatedAt: at },
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
