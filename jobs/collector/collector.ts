import { DelayedError, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { SigningKey } from '../../node/chain/signature.ts';
import type { Logger } from '../../node/log.ts';
import type { IndexDb } from '../index-db/open.ts';
import type { CairnPubSub } from '../pubsub.ts';
import { type QueueRepairs, queueRepairsCounter } from '../queue-repairs.ts';
import { repairQueue } from '../queue-watch.ts';
import {
  namespace,
  REPORT_KINDS,
  REPORTS_EVENTS_MAX_LEN,
  REPORTS_QUEUE,
  type ReportKind,
} from '../queues.ts';
import { RedisConnections, RedisLiveness, retireWorker } from '../redis.ts';
import { keepScriptsLoaded } from '../redis-scripts.ts';
import { refusalReceiptSuffix, signReceipt } from '../report-receipt.ts';
import { GatedWorker } from '../scheduled-gate.ts';
import { INDEX_WRITER_DEFAULTS, IndexWriter, type IndexWriterOptions } from './index-writer.ts';
import { type CheckedReport, checkReport } from './report-check.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';
import { ReportRate, type ReportRateOptions } from './report-rate.ts';
import { DEFAULT_RETENTION, RETENTION_PERIOD_MS, Retention, type RetentionOptions } from './retention.ts';

export interface CollectorOptions extends IndexWriterOptions {
  readonly db: IndexDb;
  readonly pubsub: CairnPubSub;
  readonly redisUrl: string;
  /** Queue prefix (default: CAIRN_NAMESPACE or `cairn`). */
  readonly namespace?: string;
  readonly log: Logger;
  readonly registry: Registry;
  /** Watchdog period (default 10 s). */
  readonly watchdogMs?: number;
  /**
   * How long a block report whose parent is not indexed is held (delayed and judged again)
   * before it is refused as `unknown-parent` (default 10 min: a parent reported by a node that
   * was cut off from Redis arrives when its outbox drains).
   */
  readonly holdMs?: number;
  /** While the index DB does not answer, how often it is probed (default 1 s). */
  readonly dbProbeMs?: number;
  /** Stats downsampling and report-log pruning (retention.ts); false turns it off. */
  readonly retention?: (RetentionOptions & { readonly periodMs?: number }) | false;
  /** How far a report's timestamps may be ahead of our clock (REPORT_CHECK_DEFAULTS). */
  readonly maxClockSkewMs?: number;
  /**
   * The collector's key: every report judged (indexed or refused) gets a receipt signed with it
   * (report-receipt.ts), which is what nodes trusting this key count as delivered.
   */
  readonly receiptKey?: SigningKey;
  /** Each node's report budgets, by kind (report-rate.ts; REPORT_BUDGETS). */
  readonly reportRate?: Omit<ReportRateOptions, 'now'>;
}

const isKind = (name: string): name is ReportKind => (REPORT_KINDS as readonly string[]).includes(name);

/**
 * The collector: one Worker on the shared reports queue that writes each report into the index
 * DB (idempotently, see IndexWriter) and then publishes the matching subscription events.
 * Reports are processed one at a time, in queue order, so a node's blocks arrive parent first.
 * Malformed reports fail without retries and without touching the DB.
 */
export class Collector {
  private worker: Worker;
  private readonly writer: IndexWriter;
  private readonly reportRate: ReportRate;
  private readonly redis: RedisLiveness;
  private readonly timer: NodeJS.Timeout;
  private readonly queue: Queue;
  /** Held reports by the block hash they wait for (see waitFor). */
  private readonly waiting = new Map<string, Set<string>>();
  private readonly prefix: string;
  private readonly connections: RedisConnections;
  private workerConnection: Redis | undefined;
  private lastProcessedAt = Date.now();
  private closed = false;
  private dbDown = false;
  private dbProbe: NodeJS.Timeout | undefined;
  private retentionTimer: NodeJS.Timeout | undefined;
  private retaining = false;
  private readonly metrics;
  /** cairn_queue_repairs_total: what the watchdog undid on the reports queue (queue-watch.ts). */
  private readonly repairs: QueueRepairs;
  /** The watchdog's own connection (also the liveness probe). */
  private readonly watchRedis: Redis;
  private readonly stopPreload: () => void;

  private readonly now: () => number;

  private readonly o: CollectorOptions;
  constructor(o: CollectorOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.prefix = namespace(o.namespace);
    // Stats older than the late window are refused as replays; younger ones rely on the report
    // log to deduplicate them, so the log must outlive the window.
    const reportLogMs = (o.retention || undefined)?.reportLogMs ?? DEFAULT_RETENTION.reportLogMs;
    if (o.retention !== false && (o.lateStatsMs ?? INDEX_WRITER_DEFAULTS.lateStatsMs) >= reportLogMs)
      throw new RangeError('collector: lateStatsMs must be shorter than retention.reportLogMs');
    this.connections = new RedisConnections(o.redisUrl);
    this.writer = new IndexWriter(o.db, o);
    this.reportRate = new ReportRate({ ...o.reportRate, now: this.now });
    const registers = [o.registry];
    this.metrics = {
      reports: new Counter({
        name: 'cairn_collector_reports_total',
        help: 'Reports processed, by kind and outcome (written, duplicate, invalid, refused, held, failed)',
        labelNames: ['kind', 'outcome'],
        registers,
      }),
      events: new Counter({
        name: 'cairn_collector_events_published_total',
        help: 'Subscription events published, by topic',
        labelNames: ['topic'],
        registers,
      }),
      duration: new Histogram({
        name: 'cairn_collector_report_seconds',
        help: 'Time to write one report',
        labelNames: ['kind'],
        buckets: [0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 1],
        registers,
      }),
      redisUp: new Gauge({ name: 'cairn_collector_redis_up', help: '1 while Redis answers', registers }),
      restarts: new Counter({
        name: 'cairn_collector_worker_restarts_total',
        help: 'Workers recreated by the watchdog',
        registers,
      }),
      refused: new Counter({
        name: 'cairn_collector_refused_reports_total',
        help: 'Reports refused (never indexed), by kind and reason (bad-hash, insufficient-work, …)',
        labelNames: ['kind', 'reason'],
        registers,
      }),
      held: new Counter({
        name: 'cairn_collector_held_reports_total',
        help: 'Times a report was delayed to be judged again, by reason (unknown-parent, …)',
        labelNames: ['reason'],
        registers,
      }),
      dbUp: new Gauge({
        name: 'cairn_collector_index_db_up',
        help: '1 while the index DB answers',
        registers,
      }),
      retained: new Counter({
        name: 'cairn_collector_retention_deleted_total',
        help: 'Rows removed by the retention policy, by table (networkStats, snapshots, reports)',
        labelNames: ['table'],
        registers,
      }),
      scriptPreloads: new Counter({
        name: 'cairn_collector_script_preloads_total',
        help: "Loads of BullMQ's scripts into Redis's cache (at start and each reconnect), by outcome",
        labelNames: ['outcome'],
        registers,
      }),
      dbPauses: new Counter({
        name: 'cairn_collector_index_db_pauses_total',
        help: 'Times the worker paused because the index DB did not answer',
        registers,
      }),
    };
    this.repairs = queueRepairsCounter(o.registry);
    this.metrics.dbUp.set(1);
    this.worker = this.createWorker();
    this.queue = new Queue(REPORTS_QUEUE, {
      connection: this.connections.create(),
      prefix: this.prefix,
      streams: { events: { maxLen: REPORTS_EVENTS_MAX_LEN } },
    });
    this.queue.on('error', () => {});
    this.watchRedis = this.connections.create();
    this.redis = new RedisLiveness(this.watchRedis, {
      up: () => this.metrics.redisUp.set(1),
      down: () => this.metrics.redisUp.set(0),
    });
    // Node users may only EVALSHA (redis-acl.ts): the collector puts BullMQ's scripts in the
    // cache, again after every reconnect (a restarted Redis has none), as the gateway does.
    this.stopPreload = keepScriptsLoaded(this.watchRedis, {
      log: o.log,
      counter: this.metrics.scriptPreloads,
    });
    this.timer = setInterval(() => void this.check(), o.watchdogMs ?? 10_000);
    this.timer.unref();
    if (o.retention !== false) {
      const retention = new Retention(o.db, o.retention);
      this.retentionTimer = setInterval(
        () => void this.retain(retention),
        o.retention?.periodMs ?? RETENTION_PERIOD_MS,
      );
      this.retentionTimer.unref();
    }
  }

  private createWorker(): Worker {
    this.workerConnection = this.connections.create();
    // GatedWorker: a report carrying a scheduler key would otherwise sit active until the stall check.
    const w = new GatedWorker(REPORTS_QUEUE, (job, token) => this.process(job, token), {
      connection: this.workerConnection,
      prefix: this.prefix,
      concurrency: 1,
    });
    w.on('error', (err) => this.o.log.debug({ err: err.message }, 'worker error'));
    w.on('failed', (job, err) =>
      this.o.log.warn({ job: job?.id, kind: job?.name, err: err.message }, 'report failed'),
    );
    return w;
  }

  private async process(job: Job, token?: string): Promise<{ duplicate: boolean; receipt?: string }> {
    this.lastProcessedAt = Date.now();
    if (this.dbDown) return this.putBack();
    const kind = job.name;
    if (!isKind(kind)) {
      this.metrics.reports.inc({ kind: 'unknown', outcome: 'invalid' });
      throw new UnrecoverableError(`unknown report kind "${kind}"`);
    }
    const jobId = job.id ?? `${kind}.${job.timestamp}`;
    let checked: CheckedReport<typeof kind>;
    try {
      // The signature before anything else: nothing unsigned reaches the schema or the DB.
      checked = checkReport(kind, jobId, job.data, this.now(), this.o.maxClockSkewMs);
      // Before any DB work: a flood of one node's reports, of any kind, is refused at the cost of
      // its signatures.
      this.reportRate.take(kind, (checked.report as { nodeId: string }).nodeId);
    } catch (err) {
      if (err instanceof ReportRefused) return this.refuse(kind, job, err);
      throw err;
    }
    const end = this.metrics.duration.startTimer({ kind });
    try {
      // Fresh keys are free in an open network: the first reports of nodes the index does not
      // know share one budget (one primary-key read, before any write; a DB that is gone is
      // handled below as for the write).
      const { nodeId } = checked.report as { nodeId: string };
      if (this.reportRate.sharesNewcomers(kind) && (await this.writer.isNewcomer(nodeId)))
        this.reportRate.takeNewcomer(kind, nodeId);
      const { duplicate, publications } = await this.writer.apply(jobId, kind, checked.report);
      end();
      this.metrics.reports.inc({ kind, outcome: duplicate ? 'duplicate' : 'written' });
      if (kind === 'block.accepted' && !duplicate)
        void this.promoteWaiting((checked.report as { hash: string }).hash);
      for (const p of publications) {
        this.o.pubsub.publish(p.topic, p.payload as never);
        this.metrics.events.inc({ topic: p.topic });
      }
      const key = this.o.receiptKey;
      return key ? { duplicate, receipt: signReceipt('indexed', jobId, job.data, key) } : { duplicate };
    } catch (err) {
      if (err instanceof ReportRefused) return this.refuse(kind, job, err);
      if (err instanceof ReportHeld) return this.hold(kind, job, token, err);
      // A write that failed because the index DB is gone is not the report's fault: it goes
      // back to the queue without spending an attempt, and the worker waits for the DB.
      if (!(await this.dbAnswers())) {
        this.pauseForDb(err as Error);
        return this.putBack();
      }
      this.metrics.reports.inc({ kind, outcome: 'failed' });
      throw err;
    }
  }

  private refuse(kind: string, job: Job, err: ReportRefused): never {
    this.metrics.reports.inc({ kind, outcome: 'refused' });
    this.metrics.refused.inc({ kind, reason: err.code });
    // The reporting node id is the report's claim, so it is logged, not made a label.
    this.o.log.warn(
      {
        job: job.id?.slice(0, 256),
        kind,
        claimedNode: String((job.data as { report?: { nodeId?: unknown } })?.report?.nodeId).slice(0, 128),
        code: err.code,
      },
      `report refused: ${err.message}`,
    );
    // The failedReason is all a failed job carries back: the receipt rides at its end.
    const key = this.o.receiptKey;
    if (key && job.id) err.message += refusalReceiptSuffix(signReceipt('refused', job.id, job.data, key));
    throw err;
  }

  /**
   * Delays a report that cannot be judged yet, with a delay that grows with its age, until it
   * is `holdMs` old; then it is refused. The job keeps its attempts: waiting is not failing.
   */
  private async hold(kind: string, job: Job, token: string | undefined, err: ReportHeld): Promise<never> {
    const age = Date.now() - job.timestamp;
    if (age > (this.o.holdMs ?? 10 * 60_000))
      return this.refuse(kind, job, new ReportRefused(err.code, `held ${age} ms: ${err.message}`));
    this.metrics.held.inc({ reason: err.code });
    this.metrics.reports.inc({ kind, outcome: 'held' });
    const delay = Math.min(30_000, Math.max(250, Math.floor(age / 4)));
    await job.moveToDelayed(Date.now() + delay, token);
    if (err.waitingFor && job.id) this.waitFor(err.waitingFor, job.id);
    throw new DelayedError();
  }

  /**
   * Remembers that a held report waits for a block to be indexed. The delay grows with a
   * report's age (up to 30 s), so after an outage a chain of children reported before their
   * parents took one delay per generation to drain; now indexing a block promotes the reports
   * waiting for it at once. Bounded: past `maxWaiting` hashes the oldest are forgotten (those
   * reports then simply wait out their delay).
   */
  private waitFor(hash: string, jobId: string): void {
    const ids = this.waiting.get(hash) ?? new Set<string>();
    ids.add(jobId);
    this.waiting.delete(hash);
    this.waiting.set(hash, ids);
    if (this.waiting.size > 10_000) this.waiting.delete(this.waiting.keys().next().value!);
  }

  private async promoteWaiting(hash: string): Promise<void> {
    const ids = this.waiting.get(hash);
    if (!ids) return;
    this.waiting.delete(hash);
    for (const id of ids) {
      try {
        const job = await this.queue.getJob(id);
        if (job && (await job.isDelayed())) await job.promote();
      } catch {
        // Gone, or already moved on: it is judged when its delay ends, as before.
      }
    }
  }

  /** Moves the active job back to waiting, attempts untouched (BullMQ's manual rate limit). */
  private putBack(): never {
    throw Worker.RateLimitError();
  }

  private async dbAnswers(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.o.db.$queryRawUnsafe('SELECT 1'),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('index DB probe timed out')), 5_000);
        }),
      ]);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stops taking reports until the index DB answers again: the worker is paused (not the queue:
   * nodes keep adding) and a probe resumes it. Reports stay in Redis meanwhile, none is lost.
   */
  private pauseForDb(err: Error): void {
    if (this.dbDown) return;
    this.dbDown = true;
    this.metrics.dbUp.set(0);
    this.metrics.dbPauses.inc();
    this.o.log.warn({ err: err.message }, 'index DB unreachable: pausing the worker');
    // From inside the active job: not waiting for it to finish (it is this call's caller).
    void this.worker.pause(true);
    const probe = async () => {
      if (this.closed) return;
      if (!(await this.dbAnswers())) {
        this.dbProbe = setTimeout(probe, this.o.dbProbeMs ?? 1_000);
        return;
      }
      this.dbDown = false;
      this.metrics.dbUp.set(1);
      this.o.log.info('index DB answers again: resuming the worker');
      this.lastProcessedAt = Date.now();
      await this.worker.resume();
    };
    this.dbProbe = setTimeout(probe, this.o.dbProbeMs ?? 1_000);
  }

  /**
   * A worker that stopped after a Redis outage is replaced (a known BullMQ failure mode: it can
   * sit idle forever after a long disconnect): while Redis has been up for a while, a worker that
   * is not running, or that leaves waiting reports untouched for 20 s, is recreated.
   */
  private async check(): Promise<void> {
    if (this.closed || !this.redis.up) return;
    // Before anything else, and while the DB is down too: a paused queue or an exhausted events
    // stream stops every node's report adds, not just this worker (queue-watch.ts).
    try {
      await repairQueue({
        queue: this.queue,
        redis: this.watchRedis,
        eventsKey: `${this.prefix}:${REPORTS_QUEUE}:events`,
        label: 'reports',
        // Node users may not write it (jobs/redis-acl.ts): the collector keeps it.
        meta: { key: `${this.prefix}:${REPORTS_QUEUE}:meta`, maxLenEvents: REPORTS_EVENTS_MAX_LEN },
        repairs: this.repairs,
        log: this.o.log,
      });
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'reports queue check failed');
    }
    // A worker paused for the index DB is idle on purpose.
    if (this.closed || this.dbDown) return;
    const now = Date.now();
    let stalled = false;
    if (now - this.redis.upSince > 20_000 && now - this.lastProcessedAt > 20_000) {
      stalled = (await this.queue.getWaitingCount().catch(() => 0)) > 0;
    }
    if (this.worker.isRunning() && !this.worker.closing && !stalled) return;
    this.lastProcessedAt = now;
    this.o.log.warn(
      { stalled, lastRedisOutageMs: this.redis.lastOutageMs },
      'collector worker not taking reports: recreating it',
    );
    this.metrics.restarts.inc();
    const old = this.worker;
    const oldConnection = this.workerConnection;
    this.worker = this.createWorker();
    retireWorker(old, oldConnection);
  }

  /** One retention run, unless one is running or the index DB is away. */
  private async retain(retention: Retention): Promise<void> {
    if (this.retaining || this.dbDown || this.closed) return;
    this.retaining = true;
    try {
      const removed = await retention.run();
      for (const [table, n] of Object.entries(removed)) if (n) this.metrics.retained.inc({ table }, n);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'retention run failed; next run retries');
    } finally {
      this.retaining = false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.stopPreload();
    clearTimeout(this.dbProbe);
    clearInterval(this.retentionTimer);
    await this.worker.close().catch(() => {});
    await this.queue.close().catch(() => {});
    await this.connections.closeAll();
  }
}
