/**
 * A watchdog's check of a BullMQ queue its component owns (the node its `node.<id>` queue, the
 * collector `reports`). Any Redis client can break a queue with one command while every
 * definition still looks right:
 *
 *  - `XADD <q>:events 18446744073709551615-18446744073709551615 …`: every BullMQ Lua script
 *    XADDs `*` to the events stream, and once its last id is the largest possible each one fails
 *    ("The stream has exhausted the last possible ID"): no add, no move to active, no finish.
 *    XTRIM keeps the last id, so only DEL helps. BullMQ's ids are Redis's clock in ms, so a last
 *    id ahead of Redis TIME (by more than a clock step) was written by someone else: the stream is
 *    deleted (its events are lost: a QueueEvents reader then misses what was in flight, which is
 *    better than a queue on which nothing runs).
 *  - `Queue.pause()` (one HSET on `<q>:meta`): no worker takes a job until someone resumes. Nothing
 *    in Cairn pauses a queue (the collector pauses its worker for the index DB, not the queue), so
 *    a paused queue is resumed.
 *  - A queue meta without `opts.maxLenEvents` (Redis lost its data, or a client deleted it): every
 *    BullMQ add then HSETs it, which the nodes' Redis users may not (jobs/redis-acl.ts), so on the
 *    reports queue no report could be added until the collector restarted. Put back with HSETNX.
 *
 *  - `HSET <q>:meta concurrency 0` (BullMQ's global concurrency: no job moves to active) or
 *    `HSET <q>:meta max 1 duration 2147483647` (a global rate limit): Cairn sets neither, so both
 *    are deleted (`meta-throttle`); so is a `<q>:limiter` key set to last longer than
 *    LIMITER_MAX_MS (or for ever), a rate limit used up that nothing of ours set (`limiter`).
 *  - `SET <q>:events x` (or any BullMQ key of another type): every script fails WRONGTYPE, and so
 *    would this watchdog's own XINFO. Every key BullMQ uses is TYPE-checked first, and one of the
 *    wrong type is deleted (`wrong-type`): it held nothing BullMQ could have written.
 *
 * Each repair is logged at warn and counted in cairn_queue_repairs_total.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../node/log.ts';
import type { QueueRepairKind, QueueRepairs, RepairedQueue } from './queue-repairs.ts';

/** How far an events stream's last id may be ahead of Redis's clock (a clock stepped back). */
export const EVENTS_AHEAD_MS = 60_000;

/**
 * The longest a `<q>:limiter` key of ours may last: Cairn sets no rate limit on its queues, and a
 * worker's RateLimitError (the collector's put-back while the index DB is away) sets none either.
 */
export const LIMITER_MAX_MS = 60_000;

/** Meta fields that throttle every worker of a queue; Cairn sets none of them. */
const THROTTLE_FIELDS = ['concurrency', 'max', 'duration'] as const;

/** The Redis type of each key BullMQ keeps for a queue (queue-keys.js; `de` is only a prefix). */
const KEY_TYPES: Readonly<Record<string, string>> = {
  active: 'list',
  wait: 'list',
  paused: 'list',
  'waiting-children': 'zset',
  delayed: 'zset',
  prioritized: 'zset',
  completed: 'zset',
  failed: 'zset',
  repeat: 'zset',
  marker: 'zset',
  stalled: 'set',
  meta: 'hash',
  events: 'stream',
  id: 'string',
  pc: 'string',
  limiter: 'string',
  'stalled-check': 'string',
};

export interface QueueWatchOptions {
  readonly queue: Pick<Queue, 'isPaused' | 'resume' | 'name'>;
  /** A connection of the component's own (the stream checks are plain Redis commands). */
  readonly redis: Redis;
  /** The queue's events stream: `<prefix>:<name>:events`. */
  readonly eventsKey: string;
  readonly label: RepairedQueue;
  readonly repairs: QueueRepairs;
  readonly log: Pick<Logger, 'warn'>;
  readonly aheadMs?: number;
  /** The queue's meta hash and its events bound, when this component keeps the meta (collector). */
  readonly meta?: { readonly key: string; readonly maxLenEvents: number };
}

/** The ms part of a stream's last id, or undefined if the stream does not exist. */
async function lastIdMs(client: Redis, key: string): Promise<bigint | undefined> {
  let info: unknown[];
  try {
    info = (await client.xinfo('STREAM', key)) as unknown[];
  } catch (err) {
    if (/no such key/i.test((err as Error).message)) return undefined;
    throw err;
  }
  const i = info.indexOf('last-generated-id');
  const id = i >= 0 ? String(info[i + 1]) : '';
  const m = /^(\d+)-\d+$/.exec(id);
  return m ? BigInt(m[1]!) : undefined;
}

/** Deletes the queue's events stream if its last id is ahead of Redis's clock; true if it did. */
export async function repairEventsStream(o: QueueWatchOptions): Promise<boolean> {
  const client = o.redis;
  const key = o.eventsKey;
  const last = await lastIdMs(client, key);
  if (last === undefined) return false;
  const [secs, micros] = (await client.time()) as [number | string, number | string];
  const nowMs = BigInt(secs) * 1000n + BigInt(micros) / 1000n;
  if (last <= nowMs + BigInt(o.aheadMs ?? EVENTS_AHEAD_MS)) return false;
  await client.del(key);
  o.repairs.inc({ queue: o.label, kind: 'events-exhausted' });
  o.log.warn(
    { queue: o.queue.name, lastIdMs: last.toString(), redisNowMs: nowMs.toString() },
    'events stream id ahead of Redis time (no BullMQ script could run on the queue): deleted it',
  );
  return true;
}

/** Resumes the queue if a Redis client paused it; true if it did. */
export async function resumeIfPaused(o: QueueWatchOptions): Promise<boolean> {
  if (!(await o.queue.isPaused())) return false;
  await o.queue.resume();
  o.repairs.inc({ queue: o.label, kind: 'paused' });
  o.log.warn({ queue: o.queue.name }, 'queue was paused by a Redis client: resumed it');
  return true;
}

/** Puts back the meta's events bound if it is missing; true if it did. */
export async function restoreMeta(o: QueueWatchOptions): Promise<boolean> {
  if (!o.meta) return false;
  if (!(await o.redis.hsetnx(o.meta.key, 'opts.maxLenEvents', o.meta.maxLenEvents))) return false;
  o.repairs.inc({ queue: o.label, kind: 'meta-restored' });
  o.log.warn(
    { queue: o.queue.name },
    'queue meta had no events bound (producers could not add): restored it',
  );
  return true;
}

/** `<prefix>:<name>`: what every key of the queue starts with. */
const queueKeyBase = (o: QueueWatchOptions): string => o.eventsKey.replace(/:events$/, '');

/** Deletes every BullMQ key of the queue that has another Redis type than BullMQ gives it. */
export async function deleteWrongTyped(o: QueueWatchOptions): Promise<string[]> {
  const base = queueKeyBase(o);
  const names = Object.keys(KEY_TYPES);
  const pipe = o.redis.pipeline();
  for (const n of names) pipe.type(`${base}:${n}`);
  const types = ((await pipe.exec()) ?? []).map(([err, t]) => (err ? undefined : String(t)));
  const wrong = names.filter(
    (n, i) => types[i] !== undefined && types[i] !== 'none' && types[i] !== KEY_TYPES[n],
  );
  if (wrong.length === 0) return [];
  await o.redis.del(...wrong.map((n) => `${base}:${n}`));
  o.repairs.inc({ queue: o.label, kind: 'wrong-type' }, wrong.length);
  o.log.warn(
    { queue: o.queue.name, keys: wrong, types: wrong.map((n) => types[names.indexOf(n)]) },
    'queue keys of the wrong Redis type (every BullMQ script on them fails): deleted them',
  );
  return wrong;
}

/** Deletes the global concurrency and rate-limit fields of the queue's meta; true if any was set. */
export async function clearThrottles(o: QueueWatchOptions): Promise<boolean> {
  const key = `${queueKeyBase(o)}:meta`;
  const values = await o.redis.hmget(key, ...THROTTLE_FIELDS);
  const set = THROTTLE_FIELDS.filter((_, i) => values[i] !== null);
  if (set.length === 0) return false;
  await o.redis.hdel(key, ...set);
  o.repairs.inc({ queue: o.label, kind: 'meta-throttle' });
  o.log.warn(
    {
      queue: o.queue.name,
      fields: Object.fromEntries(set.map((f) => [f, values[THROTTLE_FIELDS.indexOf(f)]])),
    },
    'queue throttled by a Redis client (global concurrency or rate limit; Cairn sets none): cleared it',
  );
  return true;
}

/** Deletes a limiter key set to last longer than any of ours; true if it did. */
export async function clearStrayLimiter(o: QueueWatchOptions): Promise<boolean> {
  const key = `${queueKeyBase(o)}:limiter`;
  const ttl = await o.redis.pttl(key);
  // -2: no key; -1: no expiry (never ours); otherwise ms left.
  if (ttl === -2 || (ttl >= 0 && ttl <= LIMITER_MAX_MS)) return false;
  await o.redis.del(key);
  o.repairs.inc({ queue: o.label, kind: 'limiter' });
  o.log.warn({ queue: o.queue.name, ttlMs: ttl }, 'queue rate limiter set by a Redis client: deleted it');
  return true;
}

/**
 * Every check: key types first (the others read those keys), then the stream (a resume is itself a
 * script that XADDs an event), throttles, the limiter, a pause and the meta's events bound.
 * Returns what was repaired.
 */
export async function repairQueue(o: QueueWatchOptions): Promise<QueueRepairKind[]> {
  const done: QueueRepairKind[] = [];
  if ((await deleteWrongTyped(o)).length) done.push('wrong-type');
  if (await repairEventsStream(o)) done.push('events-exhausted');
  if (await clearThrottles(o)) done.push('meta-throttle');
  if (await clearStrayLimiter(o)) done.push('limiter');
  if (await resumeIfPaused(o)) done.push('paused');
  if (await restoreMeta(o)) done.push('meta-restored');
  return done;
}
