import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { Queue, Worker } from 'bullmq';
import { JobEvents } from './job-events.ts';
import { closeRedis, createRedis } from './redis.ts';

// Real Redis (the machine's): completions and failures of jobs on several queues, all read by
// one blocking connection.
test('one blocking XREAD serves jobs on many queues: results, failures, a queue added mid-read', async (t) => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const blocking = createRedis();
  const control = createRedis();
  const conn = createRedis();
  // Named, to count this test's connections apart from others on the machine's Redis.
  const tag = `je-${prefix}`;
  for (const r of [blocking, control, conn]) await r.client('SETNAME', tag);
  const events = new JobEvents(blocking, control);
  const names = ['node.a', 'node.b', 'node.c'];
  const queues = names.map((n) => new Queue(n, { connection: conn, prefix }));
  const workers = names.map(
    (n) =>
      new Worker(
        n,
        async (job) => {
          if (job.name === 'fail') throw new Error(`no ${n}`);
          await new Promise((r) => setTimeout(r, 300));
          return { from: n, x: job.data.x };
        },
        { connection: createRedis(), prefix },
      ),
  );
  t.after(async () => {
    await events.close();
    await Promise.all(workers.map((w) => w.close()));
    await Promise.all(queues.map((q) => q.close()));
    for (const w of workers) await closeRedis(w.opts.connection as never);
    for (const r of [blocking, control, conn]) await closeRedis(r);
  });
  const stream = (n: string) => `${prefix}:${n}:events`;
  // Two queues first; the third is added while the read blocks on the first two.
  const first = await Promise.all([0, 1].map((i) => events.watch(stream(names[i]!), `j${i}`)));
  await Promise.all([0, 1].map((i) => queues[i]!.add('ok', { x: i }, { jobId: `j${i}` })));
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  const third = await events.watch(stream('node.c'), 'j2');
  const failing = await events.watch(stream('node.c'), 'f2');
  await queues[2]!.add('ok', { x: 2 }, { jobId: 'j2' });
  await queues[2]!.add('fail', {}, { jobId: 'f2' });
  // Sampled, since the reader re-issues its XREAD when a stream is added or an event arrives:
  // one snapshot can fall between two reads. Never more than one, and one seen.
  const counts: number[] = [];
  for (let i = 0; i < 20; i++) {
    const list = String(await control.call('CLIENT', 'LIST'));
    counts.push(
      list.split('\n').filter((l: string) => l.includes(`name=${tag}`) && l.includes('cmd=xread')).length,
    );
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.ok(Math.max(...counts) === 1, `one blocking read for three queues (samples ${counts})`);
  assert.deepEqual(await first[0]!.done, { completed: { from: 'node.a', x: 0 } });
  assert.deepEqual(await first[1]!.done, { completed: { from: 'node.b', x: 1 } });
  assert.deepEqual(await third.done, { completed: { from: 'node.c', x: 2 } });
  assert.ok(
    Date.now() - t0 < 1500,
    `the added queue was read at once (${Date.now() - t0} ms), not after the block`,
  );
  assert.deepEqual(await failing.done, { failed: 'no node.c' });
  assert.equal(events.streamCount, 3);
});
