import { toHex } from '../../node/chain/bytes.ts';
import { DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import {
  entryProblem,
  holds,
  memberOf,
  minerProblem,
  type RosterState,
} from '../../node/membership/roster-state.ts';
import type { CairnEvents, TOPICS } from '../events.ts';
import { TOPICS as T, toEvent } from '../events.ts';
import type { IndexDb } from '../index-db/open.ts';
import { searchText } from '../index-db/search-text.ts';
import { checkWeights, WeightsProblem } from '../model-weights.ts';
import { payloadJson } from '../node-reports.ts';
import type { ReportPayloads } from '../payloads.ts';
import type { ReportKind } from '../queues.ts';
import { keyOfPeerId } from '../report-envelope.ts';
import { checkBlockContext, checkBlockReport, type IndexedNetwork, indexedNetwork } from './block-check.ts';
import { checkCheckpoints, forkPoint, recordFinal } from './index-checkpoint.ts';
import { genesisLink, indexedParentContext, LINK_SELECT } from './index-context.ts';
import { addedMemberNames, genesisMemberNames, recordMemberNames } from './index-member-names.ts';
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
  /**
   * How much older than its node's newest indexed stats report a stats report may be and still
   * be indexed (as history; the node row never moves back). Must stay below the report log's
   * retention, which is what it replaces as the guard against replays.
   */
  readonly lateStatsMs?: number;
}

export const INDEX_WRITER_DEFAULTS = Object.freeze({
  /**
   * 1 h: an outbox re-sends a report Redis lost within a confirm round or two (10 s each) of
   * its successors; a replay of a recorded report is days old when the log has forgotten it.
   */
  lateStatsMs: 3_600_000,
});

/** A model version's weights, checked against its hash (null: the report carried none). */
type CheckedWeights = ReturnType<typeof checkWeights> | null;

/** A model report's weights, checked outside any transaction; a mismatch refuses the report. */
function checkedWeights(r: ReportPayloads['model.version']): CheckedWeights {
  if (!r.weights) return null;
  try {
    return checkWeights(r.hash, r.weights);
  } catch (err) {
    if (err instanceof WeightsProblem) throw new ReportRefused(err.code, err.message);
    throw err;
  }
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
  private readonly lateStatsMs: number;
  /** The network config as nodes report it: JSON, bigints as decimal strings. */
  private readonly configJson: string;

  private readonly db: IndexDb;
  constructor(db: IndexDb, opts: IndexWriterOptions = {}) {
    this.db = db;
    this.liveWindowMs = opts.liveWindowMs ?? 3 * 60_000;
    this.hashRateWindow = opts.hashRateWindow ?? 20;
    this.net = indexedNetwork(opts.network ?? DEFAULT_NETWORK);
    this.roster = this.net.config.membership === 'roster' ? new IndexRoster(this.net) : undefined;
    this.now = opts.now ?? Date.now;
    this.lateStatsMs = opts.lateStatsMs ?? INDEX_WRITER_DEFAULTS.lateStatsMs;
    this.configJson = JSON.stringify(this.net.config, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
  }

  /**
   * Whether `nodeId`'s reports draw on the newcomers' shared budget (report-rate.ts): in an open
   * network, a node id with no node row (none of its stats reports indexed yet). In a roster
   * network never: non-members are refused here, and members are an admin's choice, not free.
   */
  async isNewcomer(nodeId: string): Promise<boolean> {
    if (this.roster) return false;
    return (await this.db.node.findUnique({ where: { id: nodeId }, select: { id: true } })) === null;
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
    const weights =
      kind === 'model.version' ? checkedWeights(report as ReportPayloads['model.version']) : null;
    return this.db.$transaction(
      async (tx) => {
        if (this.roster) await this.checkMember(tx, report.nodeId);
        if (await tx.report.findUnique({ where: { id: reportId }, select: { id: true } }))
          return { duplicate: true, publications: [] };
        const publications = checked
          ? await this.blockAccepted(tx, { ...checked, report: report as ReportPayloads['block.accepted'] })
          : await this.write(tx, kind, report, weights);
        await tx.report.create({
          data: { id: reportId, kind, nodeId: report.nodeId, receivedAt: new Date() },
        });
        return { duplicate: false, publications };
      },
      { timeout: 30_000, maxWait: 30_000 },
    );
  }

  /**
   * Roster networks: only members report. The roster is the one after the index's canonical head
   * (a node revoked there reports no more; the genesis roster before any block is indexed), and
   * the node id is its identity key, the key its certificate names.
   */
  private async checkMember(tx: Tx, nodeId: string): Promise<RosterState> {
    const head = await tx.block.findFirst({
      where: { canonical: true },
      orderBy: { height: 'desc' },
      select: { hash: true },
    });
    const state = await this.roster!.after(tx, head?.hash ?? this.net.genesis.hashHex);
    const key = keyOfPeerId(nodeId);
    const member = key ? memberOf(state, toHex(key)) : undefined;
    const now = this.now();
    if (!member || member.issuedAtMs > now || member.expiresAtMs <= now)
      throw new ReportRefused(
        'not-a-member',
        `node ${nodeId.slice(0, 64)} is not a member at the index's head`,
      );
    return state;
  }

  private write<K extends ReportKind>(
    tx: Tx,
    kind: K,
    report: ReportPayloads[K],
    weights: CheckedWeights,
  ): Promise<Publication[]> {
    switch (kind) {
      case 'block.orphaned':
        return this.blockOrphaned(tx, report as ReportPayloads['block.orphaned']);
      case 'node.stats':
        return this.nodeStats(tx, report as ReportPayloads['node.stats']);
      case 'model.version':
        return this.modelVersion(tx, report as ReportPayloads['model.version'], weights);
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
    if (h.height > 0) await checkCheckpoints(tx, { height: h.height, prevHash, entries: block.entries });
    const madeCanonical = await this.chooseCanonical(tx, { height: h.height, prevHash, totalWork });
    const canonical = madeCanonical !== false;
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
            // Full-text words and metadata pairs, written with the entry (FTS5 by trigger).
            searchText: e.payload.kind === 'knowledge' ? searchText(e.payload.content) : '',
            ...(e.payload.kind === 'knowledge' && e.payload.metadata.length
              ? { metadata: { create: e.payload.metadata.map(([key, value]) => ({ key, value })) } }
              : {}),
          })),
        },
      },
    });
    if (this.roster && parentRoster) {
      const after = this.roster.record(block.hashHex, parentRoster, block.entries);
      await recordMemberNames(tx, addedMemberNames(parentRoster, after), block.hashHex);
    }
    // The genesis roster's names go in with the first block on it (and with the network config).
    if (this.roster && (h.height === 0 || prevHash === this.net.genesis.hashHex))
      await recordMemberNames(tx, genesisMemberNames(this.net.config), '');
    // After the row exists, so a checkpoint's carrier is indexed when it is recorded.
    if (madeCanonical) await recordFinal(tx, block, madeCanonical);
    return [{ topic: T.newBlock, payload: toEvent(row) }];
  }

  /**
   * The index's own fork choice, the chain's rule: most cumulative work (the collector's own
   * figures). A block heavier than the canonical head becomes canonical with its known
   * ancestors; blocks it displaces lose the flag. A block is indexed only after its parent, so
   * it has no indexed descendants yet: a block that is not heavier than the head stays off the
   * canonical chain rightly, and a late parent can never be left behind by its child. Returns
   * the ancestors it made canonical (their checkpoints become final), or false.
   */
  private async chooseCanonical(
    tx: Tx,
    r: { height: number; prevHash: string; totalWork: bigint },
  ): Promise<readonly string[] | false> {
    const head = await tx.block.findFirst({ where: { canonical: true }, orderBy: { height: 'desc' } });
    if (head && r.totalWork <= BigInt(head.totalWork)) return false;
    const { forkHeight, path } = await forkPoint(tx, r);
    await tx.block.updateMany({
      where: { canonical: true, height: { gt: forkHeight } },
      data: { canonical: false },
    });
    if (path.length)
      await tx.block.updateMany({ where: { hash: { in: [...path] } }, data: { canonical: true } });
    return path;
  }

  private async blockOrphaned(tx: Tx, r: ReportPayloads['block.orphaned']): Promise<Publication[]> {
    const key = { hash_reason: { hash: r.hash, reason: r.reason } };
    if (await tx.orphanedBlock.findUnique({ where: key, select: { hash: true } })) return [];
    // An orphan report carries no header, so nothing in it is proven; but a block the index holds
    // (a reorged-out one was accepted first) is known from its checked header: a report naming
    // another miner, height or parent for it is a lie (it would frame that miner on dashboards).
    const indexed = await tx.block.findUnique({
      where: { hash: r.hash },
      select: { height: true, prevHash: true, miner: true },
    });
    if (
      indexed &&
      (indexed.height !== r.height || indexed.prevHash !== r.prevHash || indexed.miner !== r.miner)
    )
      throw new ReportRefused(
        'orphan-mismatch',
        `orphan report for indexed block ${r.hash.slice(0, 16)} disagrees with its header`,
      );
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
      // Older nodes send no kinds: what the index last knew stays.
      ...(r.connectionKinds ? { connectionKinds: JSON.stringify(r.connectionKinds) } : {}),
      mempoolSize: r.mempoolSize,
      mining: r.mining,
      // Older nodes send no fl block: what the index last knew stays.
      ...(r.fl
        ? {
            flMode: r.fl.mode,
            ...(r.fl.privacy
              ? {
                  flEpsilon: r.fl.privacy.epsilon,
                  flBudget: r.fl.privacy.budget,
                  flDelta: r.fl.privacy.delta,
                  flRounds: r.fl.privacy.rounds,
                }
              : {}),
          }
        : {}),
      // Older nodes send no messaging block: what the index last knew stays. A block without
      // latency (no receipt since the node started) or without a mailbox clears those.
      ...(r.messaging ? messagingFields(r.messaging) : {}),
    };
    const existing = await tx.node.findUnique({ where: { id: r.nodeId } });
    // The node's high-water mark is its row's lastSeenAt (the newest `at` indexed, never moved
    // back), kept for as long as the node is: unlike the report log, retention never prunes it.
    // A report far older than it is a replay of a recorded one, not a late delivery.
    if (existing && existing.lastSeenAt.getTime() - at.getTime() > this.lateStatsMs)
      throw new ReportRefused(
        'stale-report',
        `stats of ${r.at} are ${existing.lastSeenAt.getTime() - at.getTime()} ms older than the node's newest`,
      );
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
          flEpsilon: r.fl?.privacy?.epsilon ?? null,
          flBudget: r.fl?.privacy?.budget ?? null,
          flRounds: r.fl?.privacy?.rounds ?? null,
        },
      });
    }
    // The config shown is the one the collector judges blocks by, not what a report says.
    if (
      this.roster &&
      !(await tx.networkConfig.findUnique({ where: { chainId: r.chainId }, select: { chainId: true } }))
    )
      await recordMemberNames(tx, genesisMemberNames(this.net.config), '');
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

  /**
   * A model version is indexed only once its `model` entry is in an indexed block (a validated
   * one: signed by a coordinator, extending the model head), and what is stored is what that
   * entry says; the report only adds when it was seen. Until then it is held (ReportHeld), and
   * refused when the hold time runs out (a version that was never mined).
   */
  private async modelVersion(
    tx: Tx,
    r: ReportPayloads['model.version'],
    weights: CheckedWeights,
  ): Promise<Publication[]> {
    const entry = await this.modelEntry(tx, r.hash);
    if (!entry)
      throw new ReportHeld(
        'model-not-indexed',
        `no indexed block holds model ${r.hash.slice(0, 16)}…`,
        r.blockHash ?? undefined,
      );
    // The first report that carries a version's weights archives them; they are content-addressed
    // (checkedWeights verified the hash), so any later copy is the same bytes. The entry found
    // above is the indexed block's commitment to that hash.
    if (weights && !(await tx.modelWeights.findUnique({ where: { hash: r.hash }, select: { hash: true } }))) {
      await tx.modelWeights.create({
        data: { hash: r.hash, bytes: weights.bytes, paramCount: weights.paramCount, createdAt: new Date() },
      });
    }
    const found = await tx.modelVersion.findUnique({ where: { hash: r.hash } });
    if (found) {
      // Indexed before its block was (a row from before this rule): the block that commits it.
      if (!found.blockHash)
        await tx.modelVersion.update({ where: { hash: r.hash }, data: { blockHash: entry.blockHash } });
      return [];
    }
    const row = await tx.modelVersion.create({
      data: {
        hash: r.hash,
        parentHash: entry.payload.parentHash,
        round: entry.payload.round,
        metrics: JSON.stringify(entry.metrics),
        accuracy: entry.metrics.accuracy ?? null,
        epsilon: entry.payload.epsilon,
        participants: Math.max(0, Math.round(entry.metrics.participants ?? 0)),
        blockHash: entry.blockHash,
        createdAt: new Date(Math.min(Date.parse(r.at), this.now())),
      },
    });
    return [{ topic: T.modelVersion, payload: toEvent(row) }];
  }

  /** The indexed `model` entry committing `hash` (a canonical block's first), with its author. */
  private async modelEntry(tx: Tx, hash: string) {
    // Model entries are rare (one per round) and the kind is indexed: a substring match narrows
    // them, the parsed payload decides.
    const rows = await tx.entry.findMany({
      where: { kind: 'model', payload: { contains: hash } },
      select: { blockHash: true, author: true, payload: true, block: { select: { canonical: true } } },
      take: 16,
    });
    const matches = rows
      .map((row) => ({ row, payload: JSON.parse(row.payload) as ModelEntryJson }))
      .filter((m) => m.payload.modelHash === hash)
      .sort((a, b) => Number(b.row.block.canonical) - Number(a.row.block.canonical));
    const m = matches[0];
    if (!m) return undefined;
    return {
      blockHash: m.row.blockHash,
      author: m.row.author,
      payload: m.payload,
      metrics: Object.fromEntries(m.payload.metrics) as Record<string, number>,
    };
  }

  /**
   * A round is its coordinator's: the node whose report first named the round id, which in a
   * roster network must hold `coordinate`; reports of it from any other node are refused. Its
   * status only moves forward (running, then completed or failed, then nothing): a late
   * `running` re-sent after the outcome changes nothing. A `completed` round names the version it
   * made, which must be in an indexed `model` entry by the same coordinator (held until it is).
   */
  private async flRound(tx: Tx, r: ReportPayloads['fl.round']): Promise<Publication[]> {
    const existing = await tx.flRound.findUnique({ where: { id: r.id } });
    if (existing && existing.coordinator !== r.nodeId)
      throw new ReportRefused('not-coordinator', `round ${r.id.slice(0, 16)}… is ${existing.coordinator}'s`);
    const key = keyOfPeerId(r.nodeId);
    if (this.roster && !existing) {
      const state = await this.checkMember(tx, r.nodeId);
      if (!key || holds(state, toHex(key), 'coordinate', this.now()) !== 'ok')
        throw new ReportRefused('not-coordinator', `node ${r.nodeId.slice(0, 64)} may not coordinate`);
    }
    if (r.status === 'completed') {
      if (!r.modelHash) throw new ReportRefused('malformed-report', 'a completed round names its model');
      const entry = await this.modelEntry(tx, r.modelHash);
      if (!entry)
        throw new ReportHeld('model-not-indexed', `round ${r.id.slice(0, 16)}…: model not indexed yet`);
      if (!key || entry.author !== toHex(key))
        throw new ReportRefused('not-coordinator', `model ${r.modelHash.slice(0, 16)}… is another node's`);
    }
    if (existing && STATUS_RANK[existing.status as FlStatus] >= STATUS_RANK[r.status]) return [];
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

type FlStatus = ReportPayloads['fl.round']['status'];
/** Status order of a round: an update never moves it back. An unknown stored status ranks lowest. */
const STATUS_RANK: Record<FlStatus, number> = { running: 0, completed: 1, failed: 1 };

/** A `model` entry's payload as the index stores it (payloadJson: bytes as hex). */
interface ModelEntryJson {
  readonly modelHash: string;
  readonly parentHash: string | null;
  readonly round: number;
  readonly metrics: readonly [string, number][];
  readonly epsilon: number;
}

/** A report's messaging figures as the Node row keeps them (metadata only: payloads.ts lets nothing else through). */
function messagingFields(m: NonNullable<ReportPayloads['node.stats']['messaging']>) {
  return {
    msgSent: m.sent,
    msgDelivered: m.delivered,
    msgPending: m.pending,
    msgLatencyP50Ms: m.latency?.p50Ms ?? null,
    msgLatencyP99Ms: m.latency?.p99Ms ?? null,
    msgLatencySamples: m.latency?.samples ?? null,
    msgMailboxItems: m.mailbox?.items ?? null,
    msgMailboxBytes: m.mailbox?.bytes ?? null,
    msgMailboxCapacityBytes: m.mailbox?.capacityBytes ?? null,
  };
}
