/**
 * The node's check of a scheduled job (`mempool.sync`, `chain.sync`, …) taken off its queue.
 * These carry no signature, yet do what the signed `admin.sync*` commands do, so any Redis client
 * could queue thousands of them. Two checks bound that:
 *
 *  - the job must look like one the node's own job scheduler made: BullMQ (6.x) gives each
 *    iteration of scheduler `<id>` the job id `repeat:<id>:<millis>` and `repeatJobKey = <id>`,
 *    and the node names its schedulers after the job (NodeJobs.upsertSchedulers). A plain
 *    `queue.add('chain.sync', …)` has neither and is refused (`unscheduled`). This stops casual
 *    and accidental abuse only: a Redis client can write that form too.
 *  - what holds against such a forger: a scheduled job that already ran within half its period
 *    is skipped, so however many are queued, each job runs at most twice a period (a forged run
 *    may also displace one of the scheduler's runs, delaying it by at most half a period).
 *
 * BullMQ itself acts on a job's scheduler key before any processor runs, so the node's Worker
 * (GatedWorker) drops keys that fail the first check; see there.
 */
import type { Job, JobJson } from 'bullmq';
import { UnrecoverableError, Worker } from 'bullmq';
import { SCHEDULED_JOBS, type ScheduledJob } from './queues.ts';

export const isScheduled = (name: string): name is ScheduledJob =>
  (SCHEDULED_JOBS as readonly string[]).includes(name);

/** A job with a scheduled name that its scheduler did not make. Retrying cannot change that. */
export class ScheduledJobRefused extends UnrecoverableError {
  readonly code = 'unscheduled';
  constructor(name: string, id: string | undefined) {
    super(
      `job refused (unscheduled): ${name} ${String(id).slice(0, 80)} does not come from the node's scheduler`,
    );
    this.name = 'ScheduledJobRefused';
  }
}

type SchedulerFields = Pick<Job, 'name' | 'id' | 'repeatJobKey' | 'opts'>;

/**
 * Whether `job` has the id, scheduler key and repeat options BullMQ gives an iteration of
 * scheduler `job.name`.
 */
export function fromScheduler(job: SchedulerFields): boolean {
  if (job.repeatJobKey !== job.name || typeof job.id !== 'string') return false;
  // BullMQ types `repeat` as internal: only the jobs its schedulers write carry it.
  const { repeat } = job.opts as { repeat?: unknown };
  if (typeof repeat !== 'object' || repeat === null) return false;
  const prefix = `repeat:${job.name}:`;
  return job.id.startsWith(prefix) && /^\d{1,16}$/.test(job.id.slice(prefix.length));
}

export type GateVerdict = { readonly run: true } | { readonly run: false; readonly ranMsAgo: number };

export class ScheduledGate {
  /** When each scheduled job last ran here. */
  private readonly lastRun = new Map<ScheduledJob, number>();

  private readonly periods: Readonly<Record<ScheduledJob, number>>;
  private readonly now: () => number;
  constructor(periods: Readonly<Record<ScheduledJob, number>>, now: () => number = Date.now) {
    this.periods = periods;
    this.now = now;
  }

  /**
   * Throws ScheduledJobRefused for a job its scheduler did not make; says to skip one whose name
   * ran within half its period; otherwise records the run and says to go ahead.
   */
  admit(job: SchedulerFields): GateVerdict {
    if (!isScheduled(job.name) || !fromScheduler(job)) throw new ScheduledJobRefused(job.name, job.id);
    const now = this.now();
    const last = this.lastRun.get(job.name);
    if (last !== undefined && now - last < this.periods[job.name] / 2)
      return { run: false, ranMsAgo: now - last };
    this.lastRun.set(job.name, now);
    return { run: true };
  }

  /**
   * Whether `name` ran here within the last `ms`, counting from `since` when that is later than
   * its last run (a scheduler just upserted, or Redis just back, gets its periods before it is
   * judged silent).
   */
  ranWithin(name: ScheduledJob, ms: number, since: number): boolean {
    return this.now() - Math.max(this.lastRun.get(name) ?? since, since) <= ms;
  }
}

/**
 * A Worker that does not take a job's scheduler key on trust. On taking a job with a
 * `repeatJobKey`, BullMQ (6.7) upserts that scheduler's next iteration from the job's
 * `opts.repeat` before any processor sees the job. A job written with the key but no repeat
 * options (any Redis client can write one) makes that upsert throw; BullMQ then emits an error and
 * leaves the job active and locked, never processed, until the stalled check (lockDuration 60 s
 * plus up to stalledInterval 30 s at the node, and once more with maxStalledCount 1) fails it as
 * stalled. Here a key on a job without the scheduler's shape is dropped as the job is read, so
 * BullMQ schedules nothing for it and the processor's gate refuses it at once (`unscheduled`);
 * a job of another name carrying a key goes on to its own checks (a command's signature).
 */
export class GatedWorker extends Worker {
  protected override createJob(data: JobJson, jobId: string): Job {
    const job = super.createJob(data, jobId);
    if (job.repeatJobKey !== undefined && !(isScheduled(job.name) && fromScheduler(job)))
      job.repeatJobKey = undefined;
    return job;
  }
}
