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
 */
import type { Job } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
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

/** Whether `job` has the id and scheduler key BullMQ gives an iteration of scheduler `job.name`. */
export function fromScheduler(job: Pick<Job, 'name' | 'id' | 'repeatJobKey'>): boolean {
  if (job.repeatJobKey !== job.name || typeof job.id !== 'string') return false;
  const prefix = `repeat:${job.name}:`;
  return job.id.startsWith(prefix) && /^\d{1,16}$/.test(job.id.slice(prefix.length));
}

export type GateVerdict = { readonly run: true } | { readonly run: false; readonly ranMsAgo: number };

export class ScheduledGate {
  /** When each scheduled job last ran here. */
  private readonly lastRun = new Map<ScheduledJob, number>();

  constructor(
    private readonly periods: Readonly<Record<ScheduledJob, number>>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Throws ScheduledJobRefused for a job its scheduler did not make; says to skip one whose name
   * ran within half its period; otherwise records the run and says to go ahead.
   */
  admit(job: Pick<Job, 'name' | 'id' | 'repeatJobKey'>): GateVerdict {
    if (!isScheduled(job.name) || !fromScheduler(job)) throw new ScheduledJobRefused(job.name, job.id);
    const now = this.now();
    const last = this.lastRun.get(job.name);
    if (last !== undefined && now - last < this.periods[job.name] / 2)
      return { run: false, ranMsAgo: now - last };
    this.lastRun.set(job.name, now);
    return { run: true };
  }
}
