import { randomBytes } from 'node:crypto';
import type { Job, Queue } from 'bullmq';
import { toHex } from '../node/chain/bytes.ts';
import { sha256 } from '../node/chain/hash.ts';
import type { SigningKey } from '../node/chain/signature.ts';
import type { Logger } from '../node/log.ts';
import { canonicalJson } from './command-codec.ts';
import type { ReportPayloads } from './payloads.ts';
import type { ReportKind } from './queues.ts';
import { type SignedReportJob, signReport } from './report-envelope.ts';
import { receiptOf, receiptValid } from './report-receipt.ts';

interface Pending<K extends ReportKind = ReportKind> {
  readonly kind: K;
  /** The job id: changes (with a fresh signature) when someone else's job holds it. */
  id: string;
  readonly payload: ReportPayloads[K];
  /** The job's data: the payload signed under `id` (report-envelope.ts). */
  data: SignedReportJob;
  readonly createdAt: number;
  sentAt: number | undefined;
}

export interface OutboxOptions {
  /** How often sent reports are checked for delivery (default 10 s). */
  readonly confirmMs?: number;
  /** Sent reports checked per round at most (one Redis call each). */
  readonly confirmBatch?: number;
  /** A single add that takes longer counts as failed and is retried. */
  readonly addTimeoutMs?: number;
  /** The node's identity key: every report is signed with it (report-envelope.ts). */
  readonly key: SigningKey;
  readonly log: Logger;
  /** Reports sent again under a new id, and why (a metric: each is a Redis client's doing). */
  readonly onReissued?: (why: ReissueReason, n: number) => void;
  /**
   * Collector keys whose receipts (report-receipt.ts) count a report delivered. With none, a
   * finished job of ours is taken at its word: any Redis client can forge that (a ZADD into
   * `completed`), so a node given keys counts only receipted reports delivered.
   */
  readonly receiptKeys?: readonly Uint8Array[];
  /** A job delayed further ahead than this is parked, not held (OUTBOX_DEFAULTS.maxDelayMs). */
  readonly maxDelayMs?: number;
}

/**
 * Why a report went again under a new id: its id held by someone else's job (`squatted`), its job
 * in no list (`stranded`), parked where nothing runs it (`parked`: prioritized, waiting for
 * children, or delayed far ahead; a report is never added so), or finished without a receipt of
 * a trusted collector (`unreceipted`).
 */
export type ReissueReason = 'squatted' | 'stranded' | 'parked' | 'unreceipted';

export const OUTBOX_DEFAULTS = {
  /**
   * The collector delays a job by at most 30 s at a time (a held report) and BullMQ's backoff of
   * a report's 5 attempts by at most 8 s: a due time past 60 s is no delay of theirs.
   */
  maxDelayMs: 60_000,
} as const;

/** States a report job never gets from the collector or BullMQ: a Redis client put it there. */
const PARKED = new Set(['prioritized', 'waiting-children']);

export interface OutboxStats {
  /** Not (or no longer) in Redis: to be sent. */
  readonly pending: number;
  /** Sent, not yet seen processed by the collector. */
  readonly unconfirmed: number;
}

type Verdict = 'delivered' | 'on-its-way' | 'lost' | ReissueReason;

const REISSUE_LOG: Record<ReissueReason, string> = {
  squatted: 'their ids were held by jobs that are not ours',
  stranded: 'their jobs were in no queue state (removed from their list by a Redis client)',
  parked: 'their jobs were parked where nothing runs them (by a Redis client)',
  unreceipted: 'their jobs finished without a receipt of a trusted collector',
};

/** Hex digits of the payload's SHA-256 in its job id (64 bits: not guessable ahead of the report). */
const CONTENT_ID_HEX = 16;

/**
 * A report's job id: the caller's id (what makes re-sending harmless) and a hash of the payload,
 * so a Redis client cannot take the id of a report before the node sends it (stats ids were
 * `stats.<node>.<boot>.<seq+1>`, predictable from the last one).
 */
export const reportJobId = (id: string, payload: unknown): string =>
  `${id}.${toHex(sha256(new TextEncoder().encode(canonicalJson(payload)))).slice(0, CONTENT_ID_HEX)}`;

/** Whether the job under our id is ours: same name and the same signed data. */
function isOurs(job: Job | undefined, p: Pending): boolean {
  if (job === undefined || job.name !== p.kind) return false;
  try {
    return canonicalJson(job.data) === canonicalJson(p.data);
  } catch {
    return false; // Not even JSON we could have written (nested past the stack, say).
  }
}

/**
 * Reports leave the node through here. Each report has a deterministic job id, so sending it
 * twice is harmless (BullMQ ignores a duplicate id while the job exists, the collector records
 * every report id it processed). A report stays here until the collector has processed it: a
 * job in Redis is not a delivered report (a Redis without persistence loses its queues when it
 * restarts, and the collector may be down meanwhile). So sent reports are checked for delivery
 * every `confirmMs`. A processed job (completed or failed) counts only if it is ours (name and
 * signed data) and, when the node trusts collector keys, carries a receipt by one of them
 * (report-receipt.ts): Redis state alone is what any client of it can write. Every other way a
 * Redis client can keep a report from the collector sends it again under a fresh id (an add under
 * the old one is ignored while its hash is there): its id squatted, its job taken out of `wait`
 * (stranded), parked in a state nothing runs (prioritized, waiting-children, delayed far ahead),
 * or finished unreceipted; ones Redis no longer knows at all are sent again as they were. Nothing
 * undelivered is ever dropped; what the outbox holds is bounded by what the node reports while
 * the collector or Redis is away (exported as a gauge).
 */
export class ReportOutbox {
  private readonly items: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private confirming: Promise<void> | undefined;
  private closed = false;
  private readonly addTimeoutMs: number;
  private readonly confirmBatch: number;
  private retryTimer: NodeJS.Timeout | undefined;
  /** When a failed add was last logged at warn (0: the last add went through). */
  private lastAddWarnAt = 0;
  private readonly confirmTimer: NodeJS.Timeout;

  private readonly queue: Queue;
  private readonly opts: OutboxOptions;
  constructor(queue: Queue, opts: OutboxOptions) {
    this.queue = queue;
    this.opts = opts;
    this.addTimeoutMs = opts.addTimeoutMs ?? 5_000;
    this.confirmBatch = opts.confirmBatch ?? 500;
    this.confirmTimer = setInterval(() => void this.confirm(), opts.confirmMs ?? 10_000);
    this.confirmTimer.unref();
  }

  /** Queues a report; `id` is made unique by its content (reportJobId). Returns the job id. */
  push<K extends ReportKind>(kind: K, id: string, payload: ReportPayloads[K]): string {
    const jobId = reportJobId(id, payload);
    if (this.closed) return jobId;
    const data = signReport(kind, jobId, payload, this.opts.key);
    this.items.push({ kind, id: jobId, payload, data, createdAt: Date.now(), sentAt: undefined } as Pending);
    this.kick();
    return jobId;
  }

  /** After a reconnect: send again everything not confirmed delivered. */
  replay(): void {
    for (const it of this.items) it.sentAt = undefined;
    this.kick();
  }

  stats(): OutboxStats {
    const pending = this.items.filter((i) => i.sentAt === undefined).length;
    return { pending, unconfirmed: this.items.length - pending };
  }

  /** Resolves when nothing is pending (or the timeout passes); used at shutdown and in tests. */
  async drain(timeoutMs = 5_000): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (!this.items.some((i) => i.sentAt === undefined)) return true;
      this.kick();
      await (this.flushing ?? new Promise((r) => setTimeout(r, 50)));
    }
    return false;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.confirmTimer);
  }

  /** One delivery check of the oldest sent reports; exposed for tests (the timer calls it). */
  confirm(): Promise<void> {
    this.confirming ??= this.checkDelivered().finally(() => {
      this.confirming = undefined;
    });
    return this.confirming;
  }

  private async checkDelivered(): Promise<void> {
    if (this.closed) return;
    const sent = this.items.filter((i) => i.sentAt !== undefined).slice(0, this.confirmBatch);
    const delivered = new Set<Pending>();
    let lost = 0;
    const reissued = new Map<ReissueReason, number>();
    const again = (it: Pending, why: ReissueReason) => {
      this.reissue(it);
      reissued.set(why, (reissued.get(why) ?? 0) + 1);
    };
    for (const it of sent) {
      const sentAt = it.sentAt;
      let verdict: Verdict;
      try {
        verdict = await this.judge(it);
      } catch {
        break; // Redis is away: the reconnect replays everything anyway; count what was judged.
      }
      // Replayed (and maybe added again) while we asked: the verdict is stale. Commands queued
      // through a Redis restart run on the new, empty Redis, so the state read "unknown" before
      // the replay's add and the hash read after it would look stranded.
      if (it.sentAt !== sentAt) continue;
      if (verdict === 'delivered') delivered.add(it);
      else if (verdict === 'lost') {
        // Gone from Redis before the collector processed it (a restart without persistence).
        it.sentAt = undefined;
        lost++;
      } else if (verdict !== 'on-its-way') again(it, verdict);
    }
    if (delivered.size) {
      const keep = this.items.filter((i) => !delivered.has(i));
      this.items.length = 0;
      this.items.push(...keep);
    }
    if (lost) this.opts.log.info({ lost }, 'reports lost by Redis before delivery: sending them again');
    for (const [why, n] of reissued) {
      this.opts.log.warn({ why, reports: n }, `reports sent again under new ids: ${REISSUE_LOG[why]}`);
      this.opts.onReissued?.(why, n);
    }
    if (lost || reissued.size) this.kick();
  }

  /** Where one sent report stands, from its job in Redis (throws when Redis does not answer). */
  private async judge(it: Pending): Promise<Verdict> {
    const state = await this.queue.getJobState(it.id);
    if (state === 'completed' || state === 'failed') {
      // Read once per report, when it is done: is what was processed ours, and receipted?
      const job = await this.queue.getJob(it.id);
      if (!isOurs(job, it)) return 'squatted'; // Someone else's job held the id (or replaced ours).
      const keys = this.opts.receiptKeys ?? [];
      if (keys.length === 0) return 'delivered';
      const outcome = state === 'completed' ? 'indexed' : 'refused';
      return receiptValid(receiptOf(state, job!), outcome, it.id, job!.data, keys)
        ? 'delivered'
        : 'unreceipted';
    }
    if (PARKED.has(state)) return 'parked';
    if (state === 'delayed') {
      // Delayed scores are the due time in ms times 4096 (plus a counter).
      const score = await (await this.queue.getBackend().client).zscore(this.queue.toKey('delayed'), it.id);
      const due = score === null ? Number.NaN : Math.floor(Number(score) / 4096);
      const maxDelay = this.opts.maxDelayMs ?? OUTBOX_DEFAULTS.maxDelayMs;
      return Number.isFinite(due) && due - Date.now() <= maxDelay ? 'on-its-way' : 'parked';
    }
    if (state === 'unknown') {
      // In no list yet its hash is there (an LREM from `wait`): BullMQ ignores an add for an id
      // whose hash exists, so the same id would be "sent" forever and never processed, and the
      // collector would hold every later block of ours as unknown-parent.
      return (await this.queue.getJob(it.id)) !== undefined ? 'stranded' : 'lost';
    }
    return 'on-its-way'; // waiting, active
  }

  /** The report goes again under a fresh, unguessable id, signed anew (the id is in the signature). */
  private reissue(it: Pending): void {
    it.id = `${it.id.replace(/\.r[0-9a-f]{12}$/, '')}.r${randomBytes(6).toString('hex')}`;
    it.data = signReport(it.kind, it.id, it.payload as object, this.opts.key);
    it.sentAt = undefined;
  }

  private kick(): void {
    if (this.flushing || this.closed) return;
    this.flushing = this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  private async flush(): Promise<void> {
    for (;;) {
      // In creation order: the collector sees a node's blocks parent first.
      const next = this.items.find((i) => i.sentAt === undefined);
      if (!next || this.closed) return;
      try {
        await this.add(next);
        next.sentAt = Date.now();
        this.lastAddWarnAt = 0;
      } catch (err) {
        // At warn, but not a line a second through a Redis outage: once a minute while failing.
        // A failing add is not always an outage (attack 02: an events stream at its last id
        // fails every add while Redis answers).
        const now = Date.now();
        const level = now - this.lastAddWarnAt >= 60_000 ? 'warn' : 'debug';
        if (level === 'warn') this.lastAddWarnAt = now;
        this.opts.log[level]({ err: (err as Error).message, id: next.id }, 'report not sent yet; retrying');
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.kick(), 1_000);
        this.retryTimer.unref();
        return;
      }
    }
  }

  private async add(p: Pending): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('add timed out')), this.addTimeoutMs);
    });
    try {
      await Promise.race([
        this.queue.add(p.kind, p.data, {
          jobId: p.id,
          attempts: 5,
          backoff: { type: 'exponential', delay: 500 },
          removeOnComplete: { age: 3600, count: 10_000 },
          removeOnFail: { age: 24 * 3600 },
        }),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}
