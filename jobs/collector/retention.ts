/**
 * Retention of the index tables that grow with time rather than with the chain: network stats
 * and node stats snapshots (a row per stats report; dashboards chart them) and the report log
 * (a row per processed report). Stats are downsampled, not deleted: rows older than `rawMs` are
 * thinned to the latest one per `bucketMs` (per node for snapshots), so history stays chartable
 * at a coarser step; with 3 nodes reporting every 60 s that is 4 320 rows a day kept as 72.
 * Report-log rows only make re-sent reports no-ops; BullMQ and the outbox forget a report long
 * before `reportLogMs`, so older rows are deleted. Orphaned-block rows (unproven reports) are
 * deleted after `orphanMs`.
 */
import type { IndexDb } from '../index-db/open.ts';

export interface RetentionOptions {
  /** Stats newer than this stay as reported (default 24 h). */
  readonly rawMs?: number;
  /** Older stats keep one row per bucket of this length (default 1 h). */
  readonly bucketMs?: number;
  /** Report-log rows older than this are deleted (default 7 days). */
  readonly reportLogMs?: number;
  /**
   * Orphaned-block rows older than this are deleted (default 7 days): they are what nodes said,
   * unproven, and grow with every report a node may send (report-rate.ts bounds the rate only).
   */
  readonly orphanMs?: number;
  /** Rows examined per table and run, so one run never holds the DB for long (default 5 000). */
  readonly batch?: number;
}

/** How often the collector runs retention (default 10 min). */
export const RETENTION_PERIOD_MS = 10 * 60_000;

export const DEFAULT_RETENTION = {
  rawMs: 24 * 3_600_000,
  bucketMs: 3_600_000,
  reportLogMs: 7 * 86_400_000,
  orphanMs: 7 * 86_400_000,
  batch: 5_000,
} as const satisfies Required<RetentionOptions>;

export interface RetentionResult {
  readonly networkStats: number;
  readonly snapshots: number;
  readonly reports: number;
  readonly orphans: number;
}

interface Row<Id> {
  readonly id: Id;
  readonly at: Date;
  readonly group: string;
}

/** Ids of the rows to delete: all but the latest row of each (group, bucket). Rows come in `at` order. */
function thinned<Id>(rows: readonly Row<Id>[], bucketMs: number): Id[] {
  const latest = new Map<string, Row<Id>>();
  const drop: Id[] = [];
  for (const r of rows) {
    const key = `${r.group}\u0000${Math.floor(r.at.getTime() / bucketMs)}`;
    const prev = latest.get(key);
    if (prev) drop.push(prev.id);
    latest.set(key, r);
  }
  return drop;
}

/**
 * Downsamples and prunes, in bounded batches. The cutoff is rounded down to a bucket boundary,
 * so only whole buckets are thinned. A watermark per table remembers where the last run got to
 * (in memory: after a restart the first runs walk the thinned history once more, cheaply).
 */
export class Retention {
  private readonly o: Required<RetentionOptions>;
  /** Per table, the start of the first bucket not known to be thinned. */
  private readonly watermark = { networkStats: new Date(0), snapshots: new Date(0) };

  private readonly db: IndexDb;
  constructor(db: IndexDb, opts: RetentionOptions = {}) {
    this.db = db;
    this.o = { ...DEFAULT_RETENTION, ...opts };
    if (
      !(
        this.o.bucketMs > 0 &&
        this.o.rawMs >= 0 &&
        this.o.reportLogMs > 0 &&
        this.o.orphanMs > 0 &&
        this.o.batch > 0
      )
    )
      throw new RangeError(
        'retention: bucketMs, reportLogMs, orphanMs and batch must be positive, rawMs not negative',
      );
  }

  async run(now = Date.now()): Promise<RetentionResult> {
    const { bucketMs } = this.o;
    const cutoff = new Date(Math.floor((now - this.o.rawMs) / bucketMs) * bucketMs);

    const stats = await this.db.networkStats.findMany({
      where: { at: { gte: this.watermark.networkStats, lt: cutoff } },
      orderBy: [{ at: 'asc' }, { id: 'asc' }],
      take: this.o.batch,
      select: { id: true, at: true },
    });
    const statsDrop = thinned(
      this.complete(stats).map((r) => ({ ...r, group: '' })),
      bucketMs,
    );
    if (statsDrop.length) await this.db.networkStats.deleteMany({ where: { id: { in: statsDrop } } });
    this.watermark.networkStats = this.next(stats, cutoff);

    const snaps = await this.db.nodeStatsSnapshot.findMany({
      where: { at: { gte: this.watermark.snapshots, lt: cutoff } },
      orderBy: [{ at: 'asc' }, { id: 'asc' }],
      take: this.o.batch,
      select: { id: true, at: true, nodeId: true },
    });
    const snapsDrop = thinned(
      this.complete(snaps).map((r) => ({ id: r.id, at: r.at, group: r.nodeId })),
      bucketMs,
    );
    if (snapsDrop.length) await this.db.nodeStatsSnapshot.deleteMany({ where: { id: { in: snapsDrop } } });
    this.watermark.snapshots = this.next(snaps, cutoff);

    // Deleted oldest first, a batch at a time (PostgreSQL has no DELETE … LIMIT).
    const old = await this.db.report.findMany({
      where: { receivedAt: { lt: new Date(now - this.o.reportLogMs) } },
      orderBy: { receivedAt: 'asc' },
      take: this.o.batch,
      select: { id: true },
    });
    if (old.length) await this.db.report.deleteMany({ where: { id: { in: old.map((r) => r.id) } } });

    const orphans = await this.db.orphanedBlock.findMany({
      where: { at: { lt: new Date(now - this.o.orphanMs) } },
      orderBy: { at: 'asc' },
      take: this.o.batch,
      select: { hash: true, reason: true },
    });
    if (orphans.length)
      await this.db.orphanedBlock.deleteMany({
        where: { OR: orphans.map((o) => ({ hash: o.hash, reason: o.reason })) },
      });

    return {
      networkStats: statsDrop.length,
      snapshots: snapsDrop.length,
      reports: old.length,
      orphans: orphans.length,
    };
  }

  /**
   * A full batch may end inside a bucket whose other rows come in the next batch: that last
   * bucket is left for the next run, so a bucket is thinned with all its rows. A bucket with
   * more rows than a batch is thinned batch by batch (each run keeps one of the rows it saw, and
   * the watermark stays on it), so every run makes progress.
   */
  private complete<R extends { at: Date }>(rows: readonly R[]): readonly R[] {
    if (rows.length < this.o.batch) return rows;
    const lastBucket = this.bucketStart(rows.at(-1)!.at);
    const whole = rows.filter((r) => r.at < lastBucket);
    return whole.length ? whole : rows;
  }

  private next(rows: readonly { at: Date }[], cutoff: Date): Date {
    return rows.length < this.o.batch ? cutoff : this.bucketStart(rows.at(-1)!.at);
  }

  private bucketStart(at: Date): Date {
    return new Date(Math.floor(at.getTime() / this.o.bucketMs) * this.o.bucketMs);
  }
}
