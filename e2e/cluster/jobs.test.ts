/**
 * Issue 4, "Must show" (the job-system half): a real three-node cluster with a real Redis and the
 * collector writing a real index DB.
 *
 *  - every node's stats appear, and keep coming, within one stats period;
 *  - the index holds the nodes' main chain: every block once, with the same hashes;
 *  - `admin.syncMempool` (what the gateway's syncMempool mutation sends) returns that node's
 *    reconciliation result; bad input and an absent node get typed errors;
 *  - issue 13: a raw BullMQ job without a signature, with a bad or expired one, replayed, or
 *    signed by a key without the `command` capability is refused with its code (counted in
 *    `cairn_admin_commands_total`) and its entry never appears; the gateway's signed one runs;
 *    a scheduled job's name queued by a client rather than the node's scheduler is refused; a
 *    flood of 300 bad jobs is counted in full and logged in a line or two;
 *  - the gateway's command is answered signed by the node and sealed to its reply key;
 *  - a forced reorg (one miner cut off, then healed) shows up as reorged-out orphaned blocks;
 *  - Redis restarted mid-run (it keeps nothing on disk, so every queue, scheduler and queued
 *    report is gone): schedulers and reports resume within 30 s and no report is lost — each
 *    node's count of reports equals what the index recorded from it.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, QueueEvents } from 'bullmq';
import { AdminClient, CommandError } from '../../jobs/admin-client.ts';
import { type Json, signCommand } from '../../jobs/command-codec.ts';
import { refusalOf } from '../../jobs/command-verifier.ts';
import { nodeQueueName } from '../../jobs/queues.ts';
import { closeRedis, createRedis } from '../../jobs/redis.ts';
import { checkAnswer } from '../../jobs/result-envelope.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { keyPairFromSeed, type SigningKey } from '../../node/chain/signature.ts';
import { eventually, JobsCluster } from './jobs-cluster.ts';

const STATS_MS = 4_000;
const SCHEDULE = `stats.report=${STATS_MS},mempool.sync=3000,chain.sync=5000,peers.refresh=10000`;

test('jobs: schedulers, reports, the collector and admin commands on a three-node cluster, through a Redis restart', {
  timeout: 420_000,
}, async (t) => {
  const jc = await JobsCluster.start({ nodes: 3, schedule: SCHEDULE, nodeOptions: () => ({ mine: true }) });
  t.after(() => jc.stop());
  const { db } = jc;
  const ids = jc.nodes.map((n) => n.peerId);
  t.diagnostic(`run dir ${jc.cluster.runDir}, namespace ${jc.namespace}`);

  await t.test('every node’s stats appear within one stats period, and keep coming', async () => {
    await eventually('a Node row for every node', async () => (await db.node.count()) === 3, STATS_MS);
    const before = await db.nodeStatsSnapshot.groupBy({ by: ['nodeId'], _max: { seq: true } });
    const seqBefore = new Map(before.map((r) => [r.nodeId, r._max.seq ?? 0]));
    // One more period (plus scheduling slack on a loaded 2-core machine): a new snapshot from each.
    await eventually(
      'a newer snapshot from each node',
      async () => {
        const now = await db.nodeStatsSnapshot.groupBy({ by: ['nodeId'], _max: { seq: true } });
        return ids.every(
          (id) => (now.find((r) => r.nodeId === id)?._max.seq ?? 0) > (seqBefore.get(id) ?? 0),
        );
      },
      STATS_MS + 3_000,
    );
    const nodes = await db.node.findMany();
    for (const n of nodes) {
      assert.ok(ids.includes(n.id));
      assert.equal(n.mining, true);
      assert.ok(JSON.parse(n.addrs).length > 0);
    }
    const stats = await db.networkStats.findFirstOrThrow({ orderBy: { id: 'desc' } });
    assert.equal(stats.totalNodes, 3);
  });

  await t.test('the index holds the main chain: every block once, same hashes as the nodes', async () => {
    await jc.cluster.waitForConverged({ minHeight: 6, timeoutMs: 60_000 });
    const node0 = jc.nodes[0]!;
    const { blocks } = await node0.chain(0, 5);
    await eventually(
      'the index to hold heights 0..5 as canonical',
      async () => {
        const rows = await db.block.findMany({
          where: { canonical: true, height: { lte: 5 } },
          orderBy: { height: 'asc' },
        });
        return rows.length === blocks.length && rows.every((r, i) => r.hash === blocks[i]!.hash);
      },
      20_000,
    );
    const dup = await db.block.groupBy({
      by: ['hash'],
      _count: { hash: true },
      having: { hash: { _count: { gt: 1 } } },
    });
    assert.deepEqual(dup, []);
  });

  await t.test(
    'admin.syncMempool returns the node’s reconciliation result; bad input and absent nodes get typed errors',
    async () => {
      const admin = new AdminClient(jc.redisUrl, jc.namespace, jc.signer);
      try {
        const [a, b] = jc.nodes;
        await a!.postEntry('a fact for reconciliation');
        const r = await admin.run(a!.peerId, 'admin.syncMempool', { peerId: b!.peerId });
        assert.equal(r.peerId, b!.peerId);
        assert.ok(r.roundTrips >= 1, `round trips ${r.roundTrips}`);
        assert.ok(r.bytes > 0);
        const chain = await admin.run(a!.peerId, 'admin.syncChain', {});
        assert.ok(chain.height >= 6);
        await assert.rejects(
          admin.run(a!.peerId, 'admin.blockPeers', { peerIds: [] }),
          (e: unknown) => e instanceof CommandError && e.code === 'invalid-input',
        );
        await assert.rejects(
          admin.run('12D3KooWNoSuchNodeNoSuchNodeNoSuchNodeNoSuchNode', 'admin.syncChain', {}, 1_500),
          (e: unknown) => e instanceof CommandError && e.code === 'node-unavailable',
        );
        await assert.rejects(
          admin.run(a!.peerId, 'admin.syncMempool', { peerId: 'not-a-peer-id' }),
          (e: unknown) =>
            e instanceof CommandError && e.code === 'command-failed' && /not a peer id/.test(e.message),
        );
      } finally {
        await admin.close();
      }
    },
  );

  await t.test(
    'raw jobs: unsigned, bad or expired signature, replayed, or signed without "command" are refused with their code; the gateway’s run',
    async () => {
      const node = jc.nodes[1]!;
      const connection = createRedis(jc.redisUrl);
      const name = nodeQueueName(node.peerId);
      const queue = new Queue(name, { connection, prefix: jc.namespace });
      const events = new QueueEvents(name, { connection: createRedis(jc.redisUrl), prefix: jc.namespace });
      await events.waitUntilReady();
      const tag = randomBytes(4).toString('hex');
      const entry = (what: string) => ({ content: `${what} ${tag}`, metadata: [] });
      /** Each command sent (by its hex), with the reply key that opens its answer. */
      const sent = new Map<string, ReturnType<typeof signCommand>>();
      const signed = (key: SigningKey, args: Json, o: { nowMs?: number; ttlMs?: number } = {}) => {
        const cmd = signCommand(
          {
            command: 'admin.submitEntry',
            target: node.peerId,
            args,
            ttlMs: o.ttlMs ?? 30_000,
            nowMs: o.nowMs,
          },
          key,
        );
        sent.set(toHex(cmd.encoded), cmd);
        return { command: toHex(cmd.encoded) };
      };
      /**
       * Adds a raw job and returns its outcome: the result, the code of the node's signed refusal
       * (checked as the gateway checks it), or the refusal code in its unsigned failed reason.
       * Under the id the gateway uses (cmd.<nonce>) unless told otherwise: the node refuses others.
       */
      const outcome = async (data: unknown, jobId?: string) => {
        const nonce = sent.get(String((data as { command?: unknown })?.command))?.nonceHex;
        const id = jobId ?? (nonce ? `cmd.${nonce}` : undefined);
        const job = await queue.add('admin.submitEntry', data, { attempts: 1, jobId: id });
        try {
          const value = await job.waitUntilFinished(events, 20_000);
          const cmd = sent.get((data as { command?: string }).command ?? '');
          const answer = cmd ? checkAnswer(value, cmd, cmd.reply, job.id) : undefined;
          if (answer && 'refused' in answer) return { refused: answer.refused, signed: true };
          return { ok: value };
        } catch (err) {
          return { refused: refusalOf((err as Error).message) ?? (err as Error).message };
        }
      };
      try {
        const gatewayKey = jc.signer!;
        const cert = toHex(gatewayKey.certificate!);
        assert.deepEqual(await outcome(entry('unsigned')), { refused: 'unsigned' });
        const bad = signed(gatewayKey.key, entry('bad signature'));
        const flipped = `${bad.command.slice(0, -2)}${bad.command.endsWith('00') ? '01' : '00'}`;
        assert.deepEqual(await outcome({ command: flipped, certificate: cert }), {
          refused: 'bad-signature',
        });
        const expired = signed(gatewayKey.key, entry('expired'), { nowMs: Date.now() - 60_000 });
        // Refusals of a signer that may command the node are the node's signed word.
        assert.deepEqual(await outcome({ ...expired, certificate: cert }), {
          refused: 'expired',
          signed: true,
        });
        // A full member of the roster, but not one that may command nodes; then a stranger.
        const member = jc.cluster.roster!.keys.at(-1)!;
        assert.deepEqual(await outcome(signed(member, entry('member'))), {
          refused: 'not-permitted',
          signed: true,
        });
        const stranger = keyPairFromSeed(randomBytes(32));
        assert.deepEqual(await outcome(signed(stranger, entry('stranger'))), { refused: 'not-admitted' });
        // The gateway's command runs, once: the same bytes again are a replay.
        const good = { ...signed(gatewayKey.key, entry('signed by the gateway')), certificate: cert };
        // Moved to an id its caller does not watch (attack 07 c): refused, the nonce left unused.
        assert.deepEqual(await outcome(good, `attacker.${tag}`), { refused: 'wrong-job-id' });
        const ran = await outcome(good);
        // The answer is the node's, signed and sealed to the command's reply key (result-envelope.ts).
        const cmd = sent.get(good.command)!;
        const opened = checkAnswer(ran.ok, cmd, cmd.reply) as { completed?: { accepted?: boolean } };
        assert.equal(opened.completed?.accepted, true, JSON.stringify(opened));
        // A replay needs the finished job gone first (BullMQ ignores an add for an existing id).
        await queue.remove(`cmd.${sent.get(good.command)!.nonceHex}`);
        assert.deepEqual(await outcome(good), { refused: 'replayed', signed: true });
        for (const code of [
          'unsigned',
          'bad-signature',
          'expired',
          'not-permitted',
          'not-admitted',
          'replayed',
          'wrong-job-id',
        ])
          assert.equal(
            await node.metric('cairn_admin_commands_total', { command: 'admin.submitEntry', outcome: code }),
            1,
            code,
          );
        assert.equal(
          await node.metric('cairn_admin_commands_total', { command: 'admin.submitEntry', outcome: 'ok' }),
          1,
        );
        // A flood of bad jobs: every one counted, yet the node logs a line or two, not one each
        // (jobs/command-refusal-log.ts): neither "admin command refused" nor "job failed" per job.
        const logged = async () => (await readFile(node.logPath, 'utf8')).split('\n');
        const from = (await logged()).length - 1;
        const FLOOD = 300;
        await queue.addBulk(
          Array.from({ length: FLOOD }, (_, i) => ({
            name: 'admin.submitEntry',
            data: entry(`flood ${i}`),
            opts: { attempts: 1, removeOnFail: true },
          })),
        );
        await eventually(
          'every flooded job refused and counted',
          async () =>
            (await node.metric('cairn_admin_commands_total', {
              command: 'admin.submitEntry',
              outcome: 'unsigned',
            })) ===
            1 + FLOOD,
          30_000,
        );
        await sleep(500); // the node's last lines on their way to its log file
        const noisy = (await logged()).slice(from).filter((l) => /refused|job failed/.test(l));
        assert.ok(
          noisy.length <= 2,
          `${noisy.length} log lines for ${FLOOD} refusals:\n${noisy.slice(0, 5).join('\n')}`,
        );
        // Only the gateway's entry reaches the chain (and so the index).
        const inIndex = (what: string) =>
          db.entry.count({ where: { payload: { contains: `${what} ${tag}` } } });
        await eventually(
          'the gateway’s entry in the index',
          async () => (await inIndex('signed by the gateway')) === 1,
          60_000,
        );
        for (const what of ['unsigned', 'bad signature', 'expired', 'member', 'stranger'])
          assert.equal(await inIndex(what), 0, what);
        // A scheduled job's name queued by a client, not the node's scheduler: refused, counted.
        const raw = await queue.add('chain.sync', {}, { attempts: 1 });
        await assert.rejects(raw.waitUntilFinished(events, 20_000), /\(unscheduled\)/);
        assert.equal(
          await node.metric('cairn_node_jobs_total', { name: 'chain.sync', outcome: 'unscheduled' }),
          1,
        );
        assert.ok(
          ((await node.metric('cairn_node_jobs_total', { name: 'chain.sync', outcome: 'ok' })) ?? 0) > 0,
          'the scheduler’s own chain.sync runs',
        );
      } finally {
        await events.close();
        await queue.close();
        await closeRedis(events.opts.connection as never);
        await closeRedis(connection);
      }
    },
  );

  await t.test('a forced reorg shows up as reorged-out orphaned blocks', async () => {
    await jc.forceReorg(3);
    const orphan = await eventually(
      'a reorged-out block in the index',
      async () => (await db.orphanedBlock.findFirst({ where: { reason: 'reorged-out' } })) ?? undefined,
      60_000,
    );
    assert.ok(ids.includes(orphan.reportedBy));
    // With the depth of the reorg that took it out: at least 1, at most the blocks the loser mined.
    assert.ok(orphan.reorgDepth !== null && orphan.reorgDepth >= 1, `reorgDepth ${orphan.reorgDepth}`);
    // The loser's block stays in the index, no longer canonical.
    await eventually(
      'the reorged-out block to lose the canonical flag',
      async () => (await db.block.findUnique({ where: { hash: orphan.hash } }))?.canonical === false,
      30_000,
    );
  });

  await t.test(
    'a Redis client pauses a node’s queue, exhausts its events stream and kills its stats scheduler: the node’s watchdog undoes each',
    async () => {
      const node = jc.nodes[2]!;
      const redis = createRedis(jc.redisUrl);
      const name = nodeQueueName(node.peerId);
      const base = `${jc.namespace}:${name}`;
      const queue = new Queue(name, { connection: redis, prefix: jc.namespace });
      const repairs = async (kind: string) =>
        (await node.metric('cairn_queue_repairs_total', { queue: 'node', kind })) ?? 0;
      try {
        // Attacks 01 and 02 (the pause first: it XADDs an event itself).
        await queue.pause();
        await redis.xadd(`${base}:events`, '18446744073709551615-18446744073709551615', 'event', 'poison');
        await eventually(
          'the node’s watchdog to delete the stream and resume its queue',
          async () =>
            (await repairs('events-exhausted')) >= 1 &&
            (await repairs('paused')) >= 1 &&
            !(await queue.isPaused()),
          30_000,
        );
        const admin = new AdminClient(jc.redisUrl, jc.namespace, jc.signer);
        try {
          const chain = await admin.run(node.peerId, 'admin.syncChain', {});
          assert.ok(chain.height >= 1, 'a signed command runs again');
        } finally {
          await admin.close();
        }
        // Attack 09: ZREM + DEL of the stats scheduler's pending iteration, definition intact.
        const silentBefore = await repairs('scheduler-silent');
        let killed = false;
        for (let i = 0; i < 200 && !killed; i++) {
          for (const id of await redis.zrange(`${base}:delayed`, 0, -1))
            if (id.startsWith('repeat:stats.report:') && (await redis.zrem(`${base}:delayed`, id)) === 1) {
              await redis.del(`${base}:${id}`);
              killed = true;
            }
          if (!killed) await sleep(50);
        }
        assert.ok(killed, 'took the pending stats iteration out');
        const killedAt = new Date();
        await eventually(
          'the silent stats scheduler rebuilt and a stats snapshot after it',
          async () =>
            (await repairs('scheduler-silent')) > silentBefore &&
            (await db.nodeStatsSnapshot.count({ where: { nodeId: node.peerId, at: { gt: killedAt } } })) > 0,
          45_000,
        );
      } finally {
        await queue.close();
        await closeRedis(redis);
      }
    },
  );

  await t.test('Redis restarted: schedulers and reports resume within 30 s, no report is lost', async () => {
    const heightBefore = (await jc.nodes[0]!.status()).height;
    await jc.redis.stop();
    const downAt = Date.now();
    await sleep(5_000);
    // The nodes never needed Redis: they kept mining.
    assert.ok((await jc.nodes[0]!.status()).height > heightBefore, 'mining went on while Redis was down');
    await jc.redis.start();
    const upAt = Date.now();
    t.diagnostic(`redis down for ${upAt - downAt} ms`);
    const redis = createRedis(jc.redisUrl);
    const queues = ids.map((id) => new Queue(nodeQueueName(id), { connection: redis, prefix: jc.namespace }));
    try {
      await eventually(
        'every node to upsert its four schedulers again',
        async () => (await Promise.all(queues.map((q) => q.getJobSchedulersCount()))).every((n) => n === 4),
        30_000,
      );
      await eventually(
        'a stats snapshot taken after the restart from every node',
        async () => {
          const fresh = await db.nodeStatsSnapshot.groupBy({
            by: ['nodeId'],
            where: { at: { gt: new Date(upAt) } },
          });
          return fresh.length === 3;
        },
        30_000,
      );
      const counts = async () =>
        Promise.all(
          jc.nodes.map(async (n) => ({
            node: n.name,
            sentStats: await n.metric('cairn_node_reports_total', { kind: 'node.stats' }),
            sentBlocks: await n.metric('cairn_node_reports_total', { kind: 'block.accepted' }),
            storedStats: await db.nodeStatsSnapshot.count({ where: { nodeId: n.peerId } }),
            storedBlocks: await db.report.count({ where: { nodeId: n.peerId, kind: 'block.accepted' } }),
          })),
        );
      let last: Awaited<ReturnType<typeof counts>> = [];
      await eventually(
        'every report a node sent to be in the index',
        async () => {
          last = await counts();
          return last.every((c) => c.sentStats === c.storedStats && c.sentBlocks === c.storedBlocks);
        },
        30_000,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}\n${JSON.stringify(last)}`);
      });
      t.diagnostic(JSON.stringify(last));
      assert.ok(last.every((c) => (c.sentStats ?? 0) > 3));
    } finally {
      await Promise.all(queues.map((q) => q.close()));
      redis.disconnect();
    }
  });
});
