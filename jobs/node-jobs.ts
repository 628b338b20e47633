import { type Job, Queue, UnrecoverableError, type Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Gauge } from 'prom-client';
import type { BlockNode } from '../node/chain/block-tree.ts';
import { fromHex, toHex } from '../node/chain/bytes.ts';
import type { ChainEvent } from '../node/chain/chain.ts';
import { type NodeControl, nodeControl } from '../node/control.ts';
import type { FlRoundEvent, ModelVersionEvent } from '../node/fl/net/round-events.ts';
import type { Logger } from '../node/log.ts';
import type { CairnNode } from '../node/node.ts';
import { JOBS_DEFAULTS } from '../node/options.ts';
import { RefusalLog } from './command-refusal-log.ts';
import { runCommandJob } from './command-runner.ts';
import { CommandRefused, CommandVerifier } from './command-verifier.ts';
import { flRoundReport, modelVersionOfEntry, modelVersionReport } from './fl-reports.ts';
import {
  BlockReportLedger,
  blockAcceptedReport,
  blockOrphanedReport,
  blocksToReport,
} from './node-reports.ts';
import { statsReport } from './node-stats.ts';
import type { ReportPayloads } from './payloads.ts';
import { type QueueRepairs, queueRepairsCounter } from './queue-repairs.ts';
import { repairQueue } from './queue-watch.ts';
import {
  ADMIN_COMMANDS,
  type AdminCommand,
  NODE_EVENTS_MAX_LEN,
  namespace,
  nodeQueueName,
  nodeQueueStreams,
  REPORTS_QUEUE,
  type ReportKind,
  SCHEDULED_JOBS,
  type ScheduledJob,
} from './queues.ts';
import { RedisConnections, RedisLiveness, retireWorker } from './redis.ts';
import { ReportOutbox } from './report-outbox.ts';
import { GatedWorker, isScheduled, ScheduledGate, ScheduledJobRefused } from './scheduled-gate.ts';
import { repairSchedulers, repairSilentSchedulers } from './scheduler-watch.ts';

export interface NodeJobsOptions {
  readonly node: CairnNode;
  readonly redisUrl: string;
  /** Queue prefix (default: CAIRN_NAMESPACE or `cairn`). */
  readonly namespace?: string;
  readonly schedule?: Partial<Record<ScheduledJob, number>>;
  readonly log: Logger;
  /** How often the watchdog checks the worker and the schedulers (default 10 s). */
  readonly watchdogMs?: number;
  /** Main-chain blocks reported below the tip at start (the index may have missed them). */
  readonly backfill?: number;
  /** Open networks: the keys (hex) whose signed admin commands this node runs (command-verifier.ts). */
  readonly commandKeys?: readonly string[];
  /** Collector keys (hex) whose receipts count a report delivered (report-receipt.ts). */
  readonly collectorKeys?: readonly string[];
  /**
   * Whether an operator may send messages as this node (admin.sendMessage, --allow-operator-messages).
   * Off by default: the text crosses Redis and the gateway, and the message carries this device's signature.
   */
  readonly allowOperatorMessages?: boolean;
}

/** Why admin.sendMessage is refused on a node that does not allow it. */
export const OPERATOR_MESSAGES_OFF =
  'this node does not send messages for operators: start it with --allow-operator-messages';

/** A job name this node does not run (anyone can queue one). */
class UnknownJob extends UnrecoverableError {}
/** What the node refused rather than ran: logged where refused, at a bounded rate. */
const isRefusal = (err: unknown): boolean =>
  err instanceof CommandRefused || err instanceof ScheduledJobRefused || err instanceof UnknownJob;

const isAdmin = (name: string): name is AdminCommand => (ADMIN_COMMANDS as readonly string[]).includes(name);
const KNOWN_JOBS: readonly string[] = [...SCHEDULED_JOBS, ...ADMIN_COMMANDS];
/** Job names are chosen by whoever writes to Redis: a metric label only takes the known ones. */
const jobLabel = (name: string): string => (KNOWN_JOBS.includes(name) ? name : 'unknown');

/**
 * The node's side of the job system: upserts its schedulers on its own queue, runs the Worker
 * that executes scheduled jobs and admin commands against the node, and sends reports (stats,
 * blocks, orphans) to the collector through an outbox. Redis going away pauses all of this and
 * nothing else: the node keeps mining and syncing; when Redis returns the schedulers are upserted
 * again (a restarted Redis has lost them), retained reports are re-sent, and a watchdog recreates
 * a worker that stopped taking jobs.
 */
export class NodeJobs {
  private worker: Worker | undefined;
  private readonly queue: Queue;
  private readonly reports: Queue;
  private redis: RedisLiveness | undefined;
  /** The liveness probe's connection, also the watchdog's for plain Redis commands. */
  private watchRedis: Redis | undefined;
  readonly outbox: ReportOutbox;
  private readonly schedule: Record<ScheduledJob, number>;
  private readonly ledger: BlockReportLedger;
  private readonly boot = Date.now();
  private seq = 0;
  private lastJobAt = Date.now();
  private watchdog: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly metrics;
  private readonly onHead = (tip: BlockNode) => void this.reportMainChain(tip);
  private readonly onEvents = (events: readonly ChainEvent[]) => this.reportOrphans(events);
  private readonly onFlRound = (e: FlRoundEvent) => this.reportFlRound(e);
  private readonly onModelVersion = (e: ModelVersionEvent) => this.reportModelVersion(e, null);
  readonly nodeId: string;
  private readonly prefix: string;
  private readonly connections: RedisConnections;
  private workerConnection: Redis | undefined;
  private readonly commands: CommandVerifier;
  /** Scheduled names run only as the node's scheduler queued them, at most once per half period. */
  private readonly scheduled: ScheduledGate;
  /** Scheduled jobs and admin commands act on the node through its operator surface only. */
  private readonly control: NodeControl;
  /** Refusals are logged per code at most once per interval: a flood of bad jobs is one line. */
  private readonly refusals: RefusalLog;
  /** cairn_queue_repairs_total: what the watchdog undid on the node's queues. */
  private readonly repairs: QueueRepairs;
  /** When each scheduler was last upserted: a fresh one gets its periods before it is judged silent. */
  private readonly upsertedAt = new Map<ScheduledJob, number>();
  private startedAt = Date.now();

  private readonly o: NodeJobsOptions;
  private constructor(o: NodeJobsOptions) {
    this.o = o;
    this.nodeId = o.node.identity.peerId.toString();
    this.control = nodeControl(o.node);
    this.refusals = new RefusalLog(o.log);
    this.commands = new CommandVerifier({
      nodeId: this.nodeId,
      membership: o.node.membership,
      commandKeys: o.commandKeys,
      ...(o.allowOperatorMessages
        ? {}
        : { disabledCommands: new Map([['admin.sendMessage', OPERATOR_MESSAGES_OFF] as const]) }),
    });
    this.ledger = new BlockReportLedger(this.nodeId);
    this.prefix = namespace(o.namespace);
    // Its Redis user may run only scripts a trusted component loaded (redis-scripts.ts): after a
    // Redis restart the node's calls wait for that preload instead of failing.
    this.connections = new RedisConnections(o.redisUrl, {
      onNoScript: (s, waiting) => this.noScript(s, waiting),
    });
    this.schedule = { ...JOBS_DEFAULTS.scheduleMs, ...o.schedule };
    this.scheduled = new ScheduledGate(this.schedule);
    this.queue = new Queue(nodeQueueName(this.nodeId), {
      connection: this.connections.create(),
      prefix: this.prefix,
      streams: nodeQueueStreams,
    });
    // The collector owns the reports queue's meta: a node's Redis user may not write it (HSET on
    // meta is also how a queue is paused, jobs/redis-acl.ts).
    this.reports = new Queue(REPORTS_QUEUE, {
      connection: this.connections.create(),
      prefix: this.prefix,
      skipMetasUpdate: true,
    });
    for (const q of [this.queue, this.reports])
      q.on('error', (err) => this.o.log.debug({ err: err.message }, 'queue error'));
    const repairs = queueRepairsCounter(o.node.metrics.registry);
    this.repairs = repairs;
    this.outbox = new ReportOutbox(this.reports, {
      log: o.log,
      key: o.node.identity.signingKey,
      receiptKeys: (o.collectorKeys ?? []).map((k) => fromHex(k)),
      onReissued: (why, n) => repairs.inc({ queue: 'reports', kind: `report-${why}` }, n),
    });
    const registers = [o.node.metrics.registry];
    this.metrics = {
      jobs: new Counter({
        name: 'cairn_node_jobs_total',
        help: 'Jobs taken by the node worker, by name and outcome (ok, failed, unscheduled, skipped)',
        labelNames: ['name', 'outcome'],
        registers,
      }),
      workerRestarts: new Counter({
        name: 'cairn_node_worker_restarts_total',
        help: 'Workers recreated by the watchdog',
        registers,
      }),
      redisUp: new Gauge({ name: 'cairn_node_redis_up', help: '1 while Redis answers', registers }),
      outboxPending: new Gauge({
        name: 'cairn_node_reports_pending',
        help: 'Reports not yet handed to Redis',
        registers,
        collect: () => {
          this.metrics.outboxPending.set(this.outbox.stats().pending);
        },
      }),
      commands: new Counter({
        name: 'cairn_admin_commands_total',
        help: 'Admin commands taken off the queue, by command and outcome (ok, failed, or the refusal code)',
        labelNames: ['command', 'outcome'],
        registers,
      }),
      noScript: new Counter({
        name: 'cairn_node_redis_noscript_total',
        help: "EVALSHA answers NOSCRIPT (a BullMQ script not in Redis's cache: Redis restarted, preload pending), by script",
        labelNames: ['script'],
        registers,
      }),
      reports: new Counter({
        name: 'cairn_node_reports_total',
        help: 'Reports queued for the collector, by kind',
        labelNames: ['kind'],
        registers,
      }),
    };
  }

  static async start(o: NodeJobsOptions): Promise<NodeJobs> {
    const jobs = new NodeJobs(o);
    jobs.watchRedis = jobs.connections.create();
    jobs.redis = new RedisLiveness(jobs.watchRedis, {
      up: (wasDown) => jobs.redisReady(wasDown),
      down: (wasUp) => jobs.redisLost(wasUp),
    });
    jobs.worker = jobs.createWorker();
    o.node.chainService.on('head', jobs.onHead);
    o.node.chainService.on('events', jobs.onEvents);
    o.node.fl?.on('round', jobs.onFlRound);
    o.node.fl?.on('version', jobs.onModelVersion);
    // The scheduler is in charge only while it is seen to be: if no genuine `mempool.sync` ran
    // for two periods (deleted, swapped or stretched by a Redis client, or a stuck worker), the
    // node's own reconcile timer (node.ts) runs until it is back.
    const startedAt = Date.now();
    jobs.startedAt = startedAt;
    const silentAfter = 2 * jobs.schedule['mempool.sync'];
    o.node.externalReconcile = () =>
      jobs.redisUp && !jobs.stopped && jobs.scheduled.ranWithin('mempool.sync', silentAfter, startedAt);
    jobs.watchdog = setInterval(() => void jobs.check(), o.watchdogMs ?? 10_000);
    jobs.watchdog.unref();
    // First report at once: a new node shows up in the index without waiting a stats period.
    jobs.reportStats();
    void jobs.reportMainChain(o.node.chain.tip);
    return jobs;
  }

  private createWorker(): Worker {
    this.workerConnection = this.connections.create();
    // GatedWorker: a forged scheduler key would otherwise leave its job active until the stall check.
    const worker = new GatedWorker(nodeQueueName(this.nodeId), (job) => this.process(job), {
      connection: this.workerConnection,
      prefix: this.prefix,
      concurrency: 4,
      // Admin commands wait for sync or reconciliation; a short lock would hand them to no one.
      lockDuration: 60_000,
    });
    worker.on('error', (err) => this.o.log.debug({ err: err.message }, 'worker error'));
    // Refusals are logged (rate-limited) where they are made; a line each here would undo that.
    worker.on('failed', (job, err) => {
      if (!isRefusal(err)) this.o.log.warn({ job: job?.name, err: err.message }, 'job failed');
    });
    return worker;
  }

  private async process(job: Job): Promise<unknown> {
    this.lastJobAt = Date.now();
    const node = this.o.node;
    if (isScheduled(job.name)) {
      let verdict: ReturnType<ScheduledGate['admit']>;
      try {
        verdict = this.scheduled.admit(job);
      } catch (err) {
        const outcome = err instanceof ScheduledJobRefused ? err.code : 'failed';
        this.metrics.jobs.inc({ name: job.name, outcome });
        this.refusals.refused(outcome, 'scheduled job refused: not from the scheduler', {
          job: job.id?.slice(0, 80),
          name: job.name,
        });
        throw err;
      }
      if (!verdict.run) {
        this.metrics.jobs.inc({ name: job.name, outcome: 'skipped' });
        return { skipped: `ran ${verdict.ranMsAgo} ms ago` };
      }
    }
    try {
      let result: unknown;
      switch (job.name) {
        case 'mempool.sync':
          result = node.peers.book.all().length ? await this.control.reconcile() : { skipped: 'no peers' };
          break;
        case 'chain.sync':
          result = await this.control.syncChain();
          break;
        case 'stats.report':
          result = { seq: this.reportStats() };
          break;
        case 'peers.refresh':
          result = await node.refreshPeers();
          break;
        default: {
          if (!isAdmin(job.name)) {
            this.refusals.refused('unknown-job', 'job refused: unknown name', {
              name: job.name.slice(0, 64),
            });
            throw new UnknownJob(`unknown job ${job.name.slice(0, 64)}`);
          }
          const { answer, ok } = await runCommandJob(job, {
            verifier: this.commands,
            control: this.control,
            key: node.identity.signingKey,
            counter: this.metrics.commands,
            refusals: this.refusals,
            log: this.o.log,
            reportStats: () => this.reportStats(),
          });
          // A command that failed still completes the job: its failure is in the signed answer.
          this.metrics.jobs.inc({ name: job.name, outcome: ok ? 'ok' : 'failed' });
          return answer;
        }
      }
      this.metrics.jobs.inc({ name: jobLabel(job.name), outcome: 'ok' });
      return result;
    } catch (err) {
      this.metrics.jobs.inc({ name: jobLabel(job.name), outcome: 'failed' });
      throw err;
    }
  }

  /** Hands a report to the outbox and counts it. */
  private send<K extends ReportKind>(kind: K, id: string, payload: ReportPayloads[K]): void {
    this.outbox.push(kind, id, payload);
    this.metrics.reports.inc({ kind });
  }

  /** Queues a stats report now; returns its sequence number. */
  reportStats(): number {
    const seq = ++this.seq;
    const payload = statsReport(this.o.node, this.control.status(), this.boot, seq);
    this.send('node.stats', `stats.${this.nodeId}.${this.boot}.${seq}`, payload);
    return seq;
  }

  private async reportMainChain(tip: BlockNode): Promise<void> {
    const path = blocksToReport(tip, (h) => this.ledger.isReported(h), this.o.backfill ?? 100);
    for (const n of path) {
      const block = await this.o.node.chain.getBlock(n.hashHex);
      if (!block) continue;
      this.send(
        'block.accepted',
        this.ledger.accepted(n.hashHex),
        blockAcceptedReport(this.nodeId, block, n),
      );
      for (const e of block.entries)
        if (e.payload.kind === 'model')
          this.reportModelVersion(
            modelVersionOfEntry(e.payload),
            n.hashHex,
            await this.committedWeights(e.payload.modelHash),
          );
    }
  }

  /**
   * A committed version's encoded weights for its report, so the collector archives every model
   * (fetched from peers if this node has not got it yet). Without them the report still goes:
   * another node's report of the same version can bring them.
   */
  private async committedWeights(hash: Uint8Array): Promise<Uint8Array | undefined> {
    const fl = this.o.node.fl;
    if (!fl) return undefined;
    try {
      await fl.models.resolve(hash, fl.data.paramCount);
      return await fl.store.getEncoded(toHex(hash));
    } catch (err) {
      this.o.log.debug(
        { err: (err as Error).message, model: toHex(hash) },
        'no weights for the model report',
      );
      return undefined;
    }
  }

  /**
   * Each status of a round is its own report (ids must differ); the collector keeps the latest.
   * Like every report id it names the node: its Redis user may write only such job hashes.
   */
  private reportFlRound(e: FlRoundEvent): void {
    this.send('fl.round', `flround.${this.nodeId}.${e.id}.${e.status}`, flRoundReport(this.nodeId, e));
  }

  /** A version as committed (blockHash null) or as found in a main-chain block. */
  private reportModelVersion(e: ModelVersionEvent, blockHash: string | null, weights?: Uint8Array): void {
    this.send(
      'model.version',
      `model.${this.nodeId}.${e.hash}.${blockHash ?? 'pending'}`,
      modelVersionReport(this.nodeId, e, blockHash, weights),
    );
  }

  private reportOrphans(events: readonly ChainEvent[]): void {
    for (const e of events) {
      let r: ReturnType<typeof blockOrphanedReport> | undefined;
      // A reorged-out block may come back on a later reorg; the ledger gives its reports new ids.
      if (e.type === 'block-stale')
        r = blockOrphanedReport(
          this.nodeId,
          { hashHex: e.node.hashHex, header: e.node.header },
          e.reason,
          e.reorgDepth,
        );
      else if (e.type === 'orphan-added') r = blockOrphanedReport(this.nodeId, e.block, 'unknown-parent');
      else if (e.type === 'orphan-dropped') r = blockOrphanedReport(this.nodeId, e.block, 'dropped');
      if (!r) continue;
      this.send('block.orphaned', this.ledger.orphaned(r.hash, r.reason), r);
    }
  }

  private lastNoScriptLog = 0;
  /**
   * A BullMQ script Redis lacks: counted; logged, at most every 10 s, when the node must wait
   * for the preload (a Redis user that may SCRIPT LOAD just loaded it).
   */
  private noScript(script: string, waiting: boolean): void {
    this.metrics.noScript.inc({ script });
    if (!waiting) return;
    const now = Date.now();
    if (now - this.lastNoScriptLog < 10_000) return;
    this.lastNoScriptLog = now;
    this.o.log.warn(
      { script },
      "redis lacks a BullMQ script (restarted?): jobs wait until the collector or gateway loads BullMQ's scripts",
    );
  }

  private get redisUp(): boolean {
    return this.redis?.up ?? false;
  }

  private redisReady(wasDown: boolean): void {
    this.metrics.redisUp.set(1);
    if (!wasDown || this.stopped) return;
    this.o.log.info('redis is up: upserting job schedulers and re-sending retained reports');
    void this.upsertSchedulers();
    this.outbox.replay();
  }

  private redisLost(wasUp: boolean): void {
    if (wasUp) this.o.log.warn('redis connection lost; the node carries on without jobs and reports');
    this.metrics.redisUp.set(0);
  }

  async upsertSchedulers(): Promise<void> {
    for (const name of SCHEDULED_JOBS) await this.upsertScheduler(name);
  }

  private upsertScheduler(name: ScheduledJob) {
    this.upsertedAt.set(name, Date.now());
    return this.queue.upsertJobScheduler(
      name,
      { every: this.schedule[name] },
      { name, data: {}, opts: { removeOnComplete: { count: 50 }, removeOnFail: { count: 50 } } },
    );
  }

  /**
   * The watchdog. BullMQ workers have been seen to stay idle forever after a long Redis outage;
   * if Redis has been up for a while and no job (the schedulers guarantee some) has run for
   * three periods of the fastest scheduler, the worker is replaced. Schedulers lost with Redis's
   * data, or changed by another Redis client, are put back (scheduler-watch.ts).
   */
  private async check(): Promise<void> {
    if (this.stopped || !this.redisUp) return;
    // First: with its events stream exhausted no scheduler upsert (nor any job) can run, and a
    // paused queue looks like a stuck worker (queue-watch.ts).
    try {
      await repairQueue({
        queue: this.queue,
        redis: this.watchRedis!,
        eventsKey: `${this.prefix}:${nodeQueueName(this.nodeId)}:events`,
        label: 'node',
        repairs: this.repairs,
        log: this.o.log,
      });
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'queue check failed');
    }
    try {
      const drift = await repairSchedulers(this.queue, this.schedule, (name) => this.upsertScheduler(name));
      if (drift.missing.length + drift.changed.length + drift.unknown.length > 0)
        this.o.log.warn(drift, 'job schedulers differed from the node’s: put back');
      const silent = await repairSilentSchedulers(
        this.queue,
        this.schedule,
        this.scheduled,
        (name) => Math.max(this.startedAt, this.redis?.upSince ?? 0, this.upsertedAt.get(name) ?? 0),
        (name) => this.upsertScheduler(name),
      );
      if (silent.length) {
        this.repairs.inc({ queue: 'node', kind: 'scheduler-silent' }, silent.length);
        this.o.log.warn(
          { silent },
          'scheduled jobs missed two periods (pending iteration gone?): schedulers rebuilt',
        );
      }
      // Command results sit in the event stream (queues.ts): bounded even if some other client
      // opened this queue with BullMQ's default length.
      await this.queue.trimEvents(NODE_EVENTS_MAX_LEN);
    } catch (err) {
      this.o.log.debug({ err: (err as Error).message }, 'scheduler check failed');
      return;
    }
    const stallMs = 3 * Math.min(...Object.values(this.schedule)) + 5_000;
    const now = Date.now();
    const stalled = now - this.lastJobAt > stallMs && now - (this.redis?.upSince ?? 0) > stallMs;
    if (!this.worker?.isRunning() || stalled) {
      this.o.log.warn(
        { stalled, running: this.worker?.isRunning() },
        'worker not taking jobs: recreating it',
      );
      this.metrics.workerRestarts.inc();
      const old = this.worker;
      const oldConnection = this.workerConnection;
      this.worker = this.createWorker();
      this.lastJobAt = now;
      if (old) retireWorker(old, oldConnection);
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.watchdog);
    this.o.node.chainService.off('head', this.onHead);
    this.o.node.chainService.off('events', this.onEvents);
    this.o.node.fl?.off('round', this.onFlRound);
    this.o.node.fl?.off('version', this.onModelVersion);
    this.o.node.externalReconcile = undefined;
    // Give queued reports a moment to leave (shutdown should not lose the last blocks).
    if (this.redisUp) await this.outbox.drain(2_000);
    this.outbox.close();
    this.refusals.flush();
    await this.worker?.close().catch(() => {});
    await Promise.all([this.queue.close(), this.reports.close()]).catch(() => {});
    await this.connections.closeAll();
  }
}
