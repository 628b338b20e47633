import type { Queue } from 'bullmq';
import { SCHEDULED_JOBS, type ScheduledJob } from './queues.ts';
import type { ScheduledGate } from './scheduled-gate.ts';

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

/** Periods a scheduled job may miss before its scheduler is rebuilt. */
export const SILENT_PERIODS = 2;

/**
 * The other half of the check: a scheduler lives as its definition plus ONE pending iteration
 * job, and BullMQ makes the next iteration only when that one is taken. A Redis client that
 * removes the pending job (ZREM from `delayed` + DEL) stops the scheduler for good while its
 * definition, all repairSchedulers compares, stays intact. So each scheduled name must also be
 * seen to run (ScheduledGate: genuine runs only): one that has not run for SILENT_PERIODS
 * periods, counted from `since(name)` when later (its last upsert, Redis coming back), is removed
 * (definition and whatever iteration is left) and upserted afresh. Returns the names rebuilt.
 */
export async function repairSilentSchedulers(
  queue: Pick<Queue, 'removeJobScheduler'>,
  schedule: Readonly<Record<ScheduledJob, number>>,
  gate: Pick<ScheduledGate, 'ranWithin'>,
  since: (name: ScheduledJob) => number,
  upsert: (name: ScheduledJob) => Promise<unknown>,
): Promise<ScheduledJob[]> {
  const silent = SCHEDULED_JOBS.filter(
    (name) => !gate.ranWithin(name, SILENT_PERIODS * schedule[name], since(name)),
  );
  for (const name of silent) {
    await queue.removeJobScheduler(name);
    await upsert(name);
  }
  return silent;
}
