import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Job, Queue, Worker } from 'bullmq';
import type { ScheduledJob } from './queues.ts';
import { closeRedis, createRedis } from './redis.ts';
import {
  fromScheduler,
  GatedWorker,
  isScheduled,
  ScheduledGate,
  ScheduledJobRefused,
} from './scheduled-gate.ts';

const PERIODS: Record<ScheduledJob, number> = {
  'mempool.sync': 400,
  'chain.sync': 400,
  'stats.report': 60_000,
  'peers.refresh': 60_000,
};

// Real Redis, real BullMQ scheduler: the scheduler's own jobs pass, plain adds of the same name
// are refused, and a flood that copies the scheduler's id form runs at most once per half period.
test('scheduled names run only from the scheduler, and at most once per half period', async (t) => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const conn = createRedis();
  const workerConn = createRedis();
  const queue = new Queue('node.gate', { connection: conn, prefix });
  const gate = new ScheduledGate(PERIODS);
  const ran: { id: string; at: number }[] = [];
  const skipped: string[] = [];
  const refused: { id: string; code: string }[] = [];
  const worker = new Worker(
    'node.gate',
    async (job: Job) => {
      assert.ok(isScheduled(job.name));
      try {
        const v = gate.admit(job);
        if (v.run) ran.push({ id: job.id!, at: Date.now() });
        else skipped.push(job.id!);
      } catch (err) {
        assert.ok(err instanceof ScheduledJobRefused);
        refused.push({ id: job.id!, code: err.code });
        throw err;
      }
    },
    { connection: workerConn, prefix, concurrency: 4 },
  );
  t.after(async () => {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    await closeRedis(workerConn);
    await closeRedis(conn);
  });
  await queue.upsertJobScheduler('chain.sync', { every: PERIODS['chain.sync'] }, { name: 'chain.sync' });
  const t0 = Date.now();
  // What any Redis client can do: plain adds of the scheduled name...
  for (let i = 0; i < 30; i++) await queue.add('chain.sync', { i });
  // ...and jobs that copy the scheduler's id form, key and repeat options (Job.create: Queue.add
  // would route `repeat` to a scheduler of its own). Small millis tell them from the scheduler's
  // own, which are epoch times.
  for (let i = 1; i <= 60; i++) {
    const forged = { jobId: `repeat:chain.sync:${i}`, repeatJobKey: 'chain.sync', repeat: { every: 400 } };
    await Job.create(queue, 'chain.sync', {}, forged);
    await sleep(20);
  }
  // Past the flood, the scheduler's next iterations run again.
  await sleep(1_000);
  const elapsed = Date.now() - t0;
  await worker.pause();

  assert.equal(refused.length, 30, 'every plain add refused');
  assert.ok(refused.every((r) => r.code === 'unscheduled' && !r.id.startsWith('repeat:')));
  const own = (id: string) => Number(id.split(':')[2]) > 1_000_000;
  const ownSeen = [...ran.map((r) => r.id), ...skipped].filter(own);
  assert.ok(ownSeen.length >= 3, `the scheduler kept going through the flood (${ownSeen})`);
  assert.ok(
    ran.some((r) => own(r.id)),
    `the scheduler's own job ran (${ran.map((r) => r.id)})`,
  );
  // The bound that holds against a forger: no two runs closer than half the period.
  for (let i = 1; i < ran.length; i++)
    assert.ok(
      ran[i]!.at - ran[i - 1]!.at >= PERIODS['chain.sync'] / 2,
      `runs ${ran[i - 1]!.id} and ${ran[i]!.id} ${ran[i]!.at - ran[i - 1]!.at} ms apart`,
    );
  assert.ok(
    ran.length <= Math.floor(elapsed / (PERIODS['chain.sync'] / 2)) + 1,
    `${ran.length} runs in ${elapsed} ms`,
  );
  assert.ok(skipped.length >= 40, `most of the 60 forged ones were skipped (${skipped.length})`);
  t.diagnostic(`${elapsed} ms: ${ran.length} runs, ${skipped.length} skipped, ${refused.length} refused`);
});

// A job with the scheduler's key but no repeat options: BullMQ's own Worker fails to schedule its
// "next iteration" as it takes it and leaves it active and unprocessed until the stalled check;
// the node's worker fails it with its refusal code at once, and the scheduler's own jobs still run.
test('a scheduler key without repeat options is refused at once, not left active', async (t) => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const conn = createRedis();
  const workerConn = createRedis();
  const queue = new Queue('node.gate', { connection: conn, prefix });
  const gate = new ScheduledGate({ ...PERIODS, 'chain.sync': 60_000 });
  const refused: string[] = [];
  const ran: string[] = [];
  const errors: string[] = [];
  const worker = new GatedWorker(
    'node.gate',
    async (job: Job) => {
      try {
        gate.admit(job);
        ran.push(job.id!);
      } catch (err) {
        refused.push(`${job.id} ${(err as ScheduledJobRefused).code}`);
        throw err;
      }
    },
    // The node's lock; the stalled check that would otherwise end it is far off.
    { connection: workerConn, prefix, lockDuration: 60_000 },
  );
  worker.on('error', (err) => errors.push(err.message));
  t.after(async () => {
    await worker.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    await closeRedis(workerConn);
    await closeRedis(conn);
  });
  await queue.upsertJobScheduler('chain.sync', { every: 60_000 }, { name: 'chain.sync' });
  const forged = [
    await Job.create(queue, 'chain.sync', {}, { repeatJobKey: 'chain.sync' }),
    // The scheduler's whole id form, still without repeat options.
    await Job.create(queue, 'chain.sync', {}, { repeatJobKey: 'chain.sync', jobId: 'repeat:chain.sync:5' }),
    await Job.create(queue, 'mempool.sync', {}, { repeatJobKey: 'chain.sync' }),
  ];
  const states = async () => Promise.all(forged.map((j) => queue.getJobState(j.id!)));
  const until = Date.now() + 5_000;
  while ((await states()).some((s) => s !== 'failed') && Date.now() < until) await sleep(50);
  assert.deepEqual(await states(), ['failed', 'failed', 'failed'], `refused ${refused}, errors ${errors}`);
  for (const j of forged) {
    const failed = await Job.fromId(queue, j.id!);
    assert.match(failed!.failedReason, /job refused \(unscheduled\)/);
  }
  assert.equal(refused.length, 3);
  assert.ok(
    ran.some((id) => id.startsWith('repeat:chain.sync:') && id !== 'repeat:chain.sync:5'),
    `the scheduler's own job ran (${ran})`,
  );
  assert.deepEqual(
    errors.filter((e) => /repeatable job/.test(e)),
    [],
    'BullMQ did not try to schedule a forged key',
  );
});

test('the scheduler id form: name, key, millis and repeat options must all match', () => {
  const ok = {
    name: 'chain.sync',
    id: 'repeat:chain.sync:1750000000000',
    repeatJobKey: 'chain.sync',
    // As BullMQ writes them for a scheduler's iteration.
    opts: { attempts: 0, repeat: { every: 30_000, count: 1 } },
  };
  assert.equal(fromScheduler(ok), true);
  assert.equal(fromScheduler({ ...ok, opts: { attempts: 0 } }), false);
  assert.equal(fromScheduler({ ...ok, repeatJobKey: undefined }), false);
  assert.equal(fromScheduler({ ...ok, repeatJobKey: 'mempool.sync' }), false);
  assert.equal(fromScheduler({ ...ok, id: 'repeat:mempool.sync:1750000000000' }), false);
  assert.equal(fromScheduler({ ...ok, id: 'repeat:chain.sync:x' }), false);
  assert.equal(fromScheduler({ ...ok, id: '17' }), false);
});

test('ranWithin: silent once a scheduled name has not run for the given time', () => {
  // NodeJobs hands mempool reconciliation back to the node after two silent periods.
  const clock = { now: 1_000 };
  const gate = new ScheduledGate(PERIODS, () => clock.now);
  const started = clock.now;
  assert.equal(gate.ranWithin('mempool.sync', 800, started), true, 'a new scheduler gets its time');
  clock.now = 1_900;
  assert.equal(gate.ranWithin('mempool.sync', 800, started), false, 'never ran: silent');
  gate.admit({
    name: 'mempool.sync',
    id: 'repeat:mempool.sync:1',
    repeatJobKey: 'mempool.sync',
    opts: { repeat: { every: 400 } },
  } as never);
  assert.equal(gate.ranWithin('mempool.sync', 800, started), true);
  clock.now = 2_701;
  assert.equal(gate.ranWithin('mempool.sync', 800, started), false, 'ran, then silent for > 800 ms');
});
