/**
 * Finding 2 of attack review #13: one-command breaks of a queue beyond the two queue-watch.ts
 * undid first (an exhausted events stream, a pause), each of which stops every job while the
 * queue still looks right:
 *  - `HSET <q>:meta concurrency 0`: BullMQ's global concurrency, so no job moves to active;
 *  - `HSET <q>:meta max 1 duration 2147483647` + `SET <q>:limiter 1 PX 2147483647`: a global rate
 *    limit of one job per 24 days, already used up;
 *  - `SET <q>:events x`: the stream key of another type, so every script's XADD fails WRONGTYPE
 *    (and the watchdog's own XINFO threw instead of repairing).
 * Each case: one watchdog check repairs it, counts it by kind, and a job runs again. A healthy
 * queue's limiter of a few seconds is left alone. Real Redis and BullMQ.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Registry } from 'prom-client';
import { type QueueRepairKind, queueRepairsCounter } from './queue-repairs.ts';
import { repairQueue } from './queue-watch.ts';
import { nodeQueueName } from './queues.ts';
import { closeRedis, createRedis } from './redis.ts';

type Redis = ReturnType<typeof createRedis>;

/**
 * How soon a job must run after the check. A worker that read the forged rate limit before the
 * check sleeps it out, clamped to BullMQ's maximumRateLimitDelay (30 s): that much, not 24 days.
 */
const RUNS_WITHIN_MS = 5_000;
const RATE_LIMITED_RUNS_WITHIN_MS = 35_000;

const ATTACKS: Record<
  string,
  { attack: (r: Redis, q: string) => Promise<unknown>; kinds: QueueRepairKind[]; withinMs?: number }
> = {
  'global concurrency 0': {
    attack: (r, q) => r.hset(`${q}:meta`, 'concurrency', 0),
    kinds: ['meta-throttle'],
  },
  'global rate limit used up': {
    attack: async (r, q) => {
      await r.hset(`${q}:meta`, 'max', 1, 'duration', 2_147_483_647);
      await r.set(`${q}:limiter`, 1, 'PX', 2_147_483_647);
    },
    kinds: ['meta-throttle', 'limiter'],
    withinMs: RATE_LIMITED_RUNS_WITHIN_MS,
  },
  'events key of another type': {
    attack: async (r, q) => {
      await r.del(`${q}:events`);
      await r.set(`${q}:events`, 'x');
    },
    kinds: ['wrong-type'],
  },
};

function rig(t: { after: (fn: () => Promise<void>) => void }) {
  const prefix = `qv${randomBytes(4).toString('hex')}`;
  const name = nodeQueueName('12D3KooWqueueVariant');
  const conns = [createRedis(), createRedis(), createRedis(), createRedis()] as const;
  const [own, attackerConn, workerConn, eventsConn] = conns;
  const queue = new Queue(name, { connection: own, prefix });
  const events = new QueueEvents(name, { connection: eventsConn, prefix });
  const counter = { ran: 0 };
  const worker = new Worker(name, async () => ++counter.ran, { connection: workerConn, prefix });
  const registry = new Registry();
  const watch = {
    queue,
    redis: own,
    eventsKey: `${prefix}:${name}:events`,
    label: 'node' as const,
    repairs: queueRepairsCounter(registry),
    log: { warn: () => {} },
  };
  t.after(async () => {
    await worker.close(true).catch(() => {});
    await queue.obliterate({ force: true }).catch(() => {});
    await Promise.all([queue.close(), events.close()]);
    for (const c of conns) await closeRedis(c);
  });
  return { base: `${prefix}:${name}`, queue, events, counter, watch, registry, attackerConn };
}

for (const [what, { attack, kinds, withinMs = RUNS_WITHIN_MS }] of Object.entries(ATTACKS))
  test(`node queue after "${what}": one watchdog check repairs it (${kinds.join(', ')}) and a job runs`, async (t) => {
    const { base, queue, events, counter, watch, registry, attackerConn } = rig(t);
    await events.waitUntilReady();
    const first = await queue.add('admin.syncChain', {});
    assert.equal(await first.waitUntilFinished(events, 10_000), 1, 'control: a job runs before the attack');

    await attack(attackerConn, base);
    assert.deepEqual(await repairQueue(watch), kinds);
    const counted = (await registry.getSingleMetric('cairn_queue_repairs_total')!.get()).values;
    for (const kind of kinds)
      assert.ok(
        counted.some((v) => v.labels.kind === kind && v.value >= 1),
        `${kind} counted`,
      );
    const before = counter.ran;
    await queue.add('admin.syncChain', {});
    const until = Date.now() + withinMs;
    while (counter.ran === before && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    assert.equal(counter.ran, before + 1, `a job ran within ${withinMs / 1000} s after the check`);
    assert.deepEqual(await repairQueue(watch), [], 'nothing left to repair');
  });

test('node queue: a limiter of a few seconds and unknown meta fields are left alone', async (t) => {
  const { base, watch, attackerConn } = rig(t);
  await attackerConn.set(`${base}:limiter`, 1, 'PX', 5_000);
  await attackerConn.hset(`${base}:meta`, 'opts.maxLenEvents', 10_000);
  assert.deepEqual(await repairQueue(watch), []);
  assert.ok((await attackerConn.pttl(`${base}:limiter`)) > 0);
});
