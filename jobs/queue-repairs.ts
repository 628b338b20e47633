/**
 * One metric for what the node's and the collector's watchdogs undo on their Redis queues: every
 * repair is some Redis client's doing (or a Redis restart), so each is counted, by the queue it
 * was on (`node` or `reports`: never the node id, which would make the label unbounded) and kind.
 */
import { Counter, type Registry } from 'prom-client';

export const QUEUE_REPAIR_KINDS = [
  /** A report job in no state, its hash kept: sent again under a new id (report-outbox.ts). */
  'report-stranded',
  /** A report id held by a job that is not the node's: sent again under a new id. */
  'report-squatted',
  /** A report job parked where nothing runs it (prioritized, waiting-children, delayed far ahead). */
  'report-parked',
  /** A report job finished without a trusted collector's receipt (report-receipt.ts). */
  'report-unreceipted',
  /** An events stream whose last id is ahead of Redis's clock: deleted (queue-watch.ts). */
  'events-exhausted',
  /** A paused queue the component owns: resumed. */
  'paused',
  /** A queue meta without its events bound, which producers may not write: put back. */
  'meta-restored',
  /** Global concurrency or rate-limit fields in a queue's meta (Cairn sets none): deleted. */
  'meta-throttle',
  /** A limiter key set to outlast any of ours: deleted. */
  'limiter',
  /** A BullMQ key of another Redis type (every script on it fails WRONGTYPE): deleted. */
  'wrong-type',
  /** A scheduler whose job missed two periods while its definition stayed: removed and upserted. */
  'scheduler-silent',
] as const;
export type QueueRepairKind = (typeof QUEUE_REPAIR_KINDS)[number];
export type RepairedQueue = 'node' | 'reports';

export type QueueRepairs = Pick<Counter<'queue' | 'kind'>, 'inc'>;

export function queueRepairsCounter(registry: Registry): Counter<'queue' | 'kind'> {
  return new Counter({
    name: 'cairn_queue_repairs_total',
    help: 'Repairs the watchdogs made to Redis queues, by queue (node, reports) and kind (paused, events-exhausted, meta-restored, meta-throttle, limiter, wrong-type, scheduler-silent, report-*: QUEUE_REPAIR_KINDS)',
    labelNames: ['queue', 'kind'],
    registers: [registry],
  });
}
