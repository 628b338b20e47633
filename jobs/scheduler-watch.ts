import type { Queue } from 'bullmq';
import { SCHEDULED_JOBS, type ScheduledJob } from './queues.ts';

/** How a node's queue's schedulers differ from the ones it should have. */
export interface SchedulerDrift {
  /** Expected and absent. */
  readonly missing: ScheduledJob[];
  /** Present under an expected key but with another period, a cron pattern or another job name. */
  readonly changed: ScheduledJob[];
  /** Keys the node never upserts (removed: only the node schedules on its own queue). */
  readonly unknown: string[];
}

/**
 * The watchdog's scheduler check. Counting schedulers is not enough: any Redis client can swap
 * `mempool.sync` for a scheduler of another name (the count stays 4) or stretch its period to an
 * hour, and the node's reconciliation stops while nothing looks wrong. Each expected key is
 * checked for its `every` and its job name; what differs or is absent is upserted again, what
 * the node never made is removed. Returns what it found (empty lists: nothing done).
 */
export async function repairSchedulers(
  queue: Pick<Queue, 'getJobSchedulers' | 'removeJobScheduler'>,
  schedule: Readonly<Record<ScheduledJob, number>>,
  upsert: (name: ScheduledJob) => Promise<unknown>,
): Promise<SchedulerDrift> {
  const present = new Map((await queue.getJobSchedulers(0, -1)).map((s) => [s.key, s]));
  const missing: ScheduledJob[] = [];
  const changed: ScheduledJob[] = [];
  for (const name of SCHEDULED_JOBS) {
    const s = present.get(name);
    present.delete(name);
    if (!s) missing.push(name);
    else if (s.every !== schedule[name] || s.pattern || s.name !== name) changed.push(name);
  }
  const unknown = [...present.keys()];
  for (const key of unknown) await queue.removeJobScheduler(key);
  for (const name of [...missing, ...changed]) await upsert(name);
  return { missing, changed, unknown };
}
