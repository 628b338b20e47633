/**
 * ATK-13 finding 1b (MEDIUM, open): a node's Redis user stops the shared Redis for seconds to
 * minutes with one of BullMQ's own scripts.
 *
 * Node users now run only BullMQ's scripts (EVALSHA of what the collector and gateway preload,
 * e2e/compose-redis-scripts.test.ts), but BullMQ's scripts walk whatever is in the keys they are
 * given, and a node chooses both: its own queue's keys, filled with plain writes (ZADD, LPUSH,
 * HSET on `cairn:node.<id>:*`), and the arguments (`cleanJobsInSet` with limit 0 is "all").
 * A script runs to its end; every other client gets BUSY after busy-reply-threshold (1 s), and
 * once it has written (cleanJobsInSet deletes as it goes) SCRIPT KILL answers UNKILLABLE.
 *
 * Figures (Redis 7.0.15, this 2-core host shared with other jobs, compose's bounds):
 * `cleanJobsInSet` limit 0 over 200,000 ids in the node's own `completed` set (22 MB): 2.2 to
 * 3.4 s under compose's ACL (6.1 s with the host loaded), others BUSY, SCRIPT KILL UNKILLABLE; over
 * 1,000,000 ids (105 MB, under --maxmemory 256mb, host loaded): 130 s. A plain ZRANGE 0 -1 of
 * the same 200,000 answered another client's PING within 10 ms; `getRanges` over it, 0.8 s.
 *
 * Run: npm exec -- node --test attack/control/bullmq-script-walks-own-keys.attack.ts
 *
 * Fixes that make it pass: bound what a node user can store (ACL cannot: a Redis per trust
 * domain with its own maxmemory, or nodes without Redis access, reports over the node's API),
 * or keep the scripts that walk a whole key (cleanJobsInSet, obliterate, drain, getRanges,
 * paginate…) out of the cache nodes run from, which needs BullMQ's scripts split by caller.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type AclRig, startComposeRedis, within } from '../../e2e/compose-redis-rig.ts';
import { BULLMQ_SCRIPTS, loadScripts } from '../../jobs/redis-scripts.ts';

let rig: AclRig;
before(async () => {
  rig = await startComposeRedis();
});
after(async () => {
  await rig?.close();
});

test("a node user cannot stop Redis for the collector with BullMQ's cleanJobsInSet on its own keys", async (t) => {
  const node1 = rig.as('node-1');
  const collector = rig.as('collector');
  await loadScripts(collector); // what the collector does at start
  const base = `cairn:node.${rig.ids['node-1']!.peerId.toString()}:`;
  const N = 200_000;
  for (let i = 0; i < N; i += 10_000) {
    const args: (string | number)[] = [];
    for (let j = i; j < i + 10_000; j++) args.push(j, `j${j}`);
    await node1.zadd(`${base}completed`, ...args);
  }
  const clean = BULLMQ_SCRIPTS.find((s) => s.name === 'cleanJobsInSet')!;
  const started = Date.now();
  const cleaned = node1
    .evalsha(
      clean.sha,
      3,
      `${base}completed`,
      `${base}events`,
      `${base}repeat`,
      base,
      Date.now() + 1e9,
      0,
      'completed',
    )
    .then(
      (r) => `${(r as unknown[]).length} ids after ${Date.now() - started} ms`,
      (e: Error) => e.message,
    );
  await new Promise((r) => setTimeout(r, 300));
  const pong = await within(
    collector.ping().catch((e: Error) => e.message),
    2_000,
  );
  const kill = await within(
    rig
      .as('gateway', { enableReadyCheck: false })
      .script('KILL')
      .catch((e: Error) => e.message),
    2_000,
  );
  t.diagnostic(
    `collector PING while node-1's cleanJobsInSet runs: ${String(pong)}; gateway's SCRIPT KILL: ${String(kill)}; it returned ${await cleaned}`,
  );
  assert.equal(pong, 'PONG', "the collector must still be served while a node user runs BullMQ's script");
});
