import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { fromHex, toHex } from '../node/chain/bytes.ts';
import { identityFromSeed, type NodeIdentity } from '../node/identity/identity.ts';
import { createLogger } from '../node/log.ts';
import { AdminClient, CommandError } from './admin-client.ts';
import { decodeCommand } from './command-codec.ts';
import { ephemeralSigner } from './command-signer.ts';
import { CommandVerifier } from './command-verifier.ts';
import type { AdminPayloads } from './payloads.ts';
import { queueRepairsCounter } from './queue-repairs.ts';
import { repairEventsStream } from './queue-watch.ts';
import { NODE_EVENTS_MAX_LEN, nodeQueueName } from './queues.ts';
import { closeRedis, createRedis, redisUrl } from './redis.ts';
import { decodeResult } from './result-codec.ts';
import { answerCommand } from './result-envelope.ts';

const MAX_ID = '18446744073709551615-18446744073709551615';
const newNode = () => identityFromSeed(randomBytes(32));
const INVITE: AdminPayloads['admin.inviteDevice'] = {
  name: 'phone',
  role: 'submind',
  capabilities: ['submit'],
  expiresInMs: 86_400_000,
};
const inviteResult = (invitation: string) => {
  const at = new Date(Date.now() + 86_400_000).toISOString();
  return { invitation, expiresAt: at, memberUntil: at };
};
/** The fields of one stream entry as an object. */
const fields = (f: string[]): Record<string, string> =>
  Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!]));

async function setup(t: import('node:test').TestContext) {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const redis = createRedis();
  const signer = ephemeralSigner();
  const client = new AdminClient(redisUrl(), prefix, signer);
  const registry = new Registry();
  client.registerMetrics(registry);
  const closing: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    await client.close();
    for (const c of closing) await c();
    for (const k of await redis.keys(`${prefix}:*`)) await redis.del(k);
    await closeRedis(redis);
  });
  const refusedResults = async () =>
    Object.fromEntries(
      (
        (await registry.getSingleMetric('cairn_gateway_command_results_refused_total')?.get())?.values ?? []
      ).map((v) => [v.labels.reason, v.value]),
    );
  return { prefix, redis, signer, client, closing, refusedResults, registry };
}

/**
 * A node's answering side on real Redis: a BullMQ worker that checks commands with the node's own
 * verifier (open network, the gateway's key among its command keys) and answers as NodeJobs does.
 */
function nodeWorker(s: Awaited<ReturnType<typeof setup>>, node: NodeIdentity, run: () => unknown): Worker {
  const nodeId = node.peerId.toString();
  const verifier = new CommandVerifier({
    nodeId,
    membership: {
      mode: 'open',
      admit: () => {
        throw new Error('an open network takes commands from its command keys only');
      },
      memberAt: () => undefined,
      certifiedCapabilities: () => undefined,
    },
    commandKeys: [toHex(s.signer.key.publicKey)],
  });
  const connection = createRedis();
  const worker = new Worker(
    nodeQueueName(nodeId),
    async (job) =>
      answerCommand(verifier.verify(job.name, job.data, job.id), { completed: run() }, node.signingKey),
    { connection, prefix: s.prefix },
  );
  s.closing.push(async () => {
    await worker.close();
    await closeRedis(connection);
  });
  return worker;
}

/** Waits until `redis` (named `name`) is blocked in XREAD. */
async function blockedInXread(control: Redis, name: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const list = String(await control.call('CLIENT', 'LIST'));
    if (list.split('\n').some((l) => l.includes(`name=${name}`) && l.includes('cmd=xread'))) return;
    await sleep(10);
  }
  throw new Error(`${name} never blocked in XREAD`);
}

// Real Redis. The attacker of issue 13 item 1 "D": a Redis client blocked on XREAD of the node's
// event stream, which sees each completion the moment the node writes it.
test('an invitation crosses Redis sealed: a live XREAD reader sees no secret; none is left once read', async (t) => {
  const s = await setup(t);
  const node = await newNode();
  const NODE = node.peerId.toString();
  const secret = `cairn-invite:${randomBytes(24).toString('base64url')}`;
  const worker = nodeWorker(s, node, () => inviteResult(secret));
  await worker.waitUntilReady();
  const base = `${s.prefix}:${nodeQueueName(NODE)}`;

  const spy = createRedis();
  s.closing.push(() => closeRedis(spy));
  const spyName = `spy-${s.prefix}`;
  await spy.client('SETNAME', spyName);
  const seen: Record<string, string>[] = [];
  const watching = (async () => {
    let last = '$';
    for (;;) {
      const res = (await spy.xread('BLOCK', 10_000, 'STREAMS', `${base}:events`, last)) as
        | [string, [string, string[]][]][]
        | null;
      if (!res) return;
      for (const [id, f] of res[0]![1]) {
        last = id;
        seen.push(fields(f));
        if (fields(f).event === 'completed') return;
      }
    }
  })();
  await blockedInXread(s.redis, spyName);

  const out = await s.client.run(NODE, 'admin.inviteDevice', INVITE);
  assert.equal(out.invitation, secret, 'the gateway opened the sealed answer');
  await watching;
  const completed = seen.find((e) => e.event === 'completed');
  assert.ok(completed, `the spy saw the completion live (${seen.map((e) => e.event)})`);
  const raw = JSON.stringify(completed);
  const body = secret.slice('cairn-invite:'.length);
  for (const form of [
    secret,
    body,
    Buffer.from(body, 'base64url').toString('hex'),
    Buffer.from(secret).toString('hex'),
  ])
    assert.ok(!raw.includes(form), `the live entry holds no form of the secret (${form.slice(0, 20)}…)`);
  // What it does hold: the node's signed answer, naming the node.
  const answer = decodeResult(fromHex(JSON.parse(completed.returnvalue!).result));
  assert.equal(answer.target, NODE);
  assert.equal(answer.outcome, 'completed');

  // And once read, the entry is gone too (deleted after reading, not awaited by the caller).
  const signed = JSON.parse(completed.returnvalue!).result as string;
  const holders = async () => {
    const found: string[] = [];
    for (const key of await s.redis.keys(`${base}:*`)) {
      const type = await s.redis.type(key);
      const text =
        type === 'hash'
          ? JSON.stringify(await s.redis.hgetall(key))
          : type === 'stream'
            ? JSON.stringify(await s.redis.xrange(key, '-', '+'))
            : type === 'list'
              ? JSON.stringify(await s.redis.lrange(key, 0, -1))
              : type === 'zset'
                ? JSON.stringify(await s.redis.zrange(key, 0, -1))
                : type === 'string'
                  ? String(await s.redis.get(key))
                  : '';
      if (text.includes(secret) || text.includes(signed)) found.push(`${key} (${type})`);
    }
    return found;
  };
  let left = await holders();
  for (let i = 0; i < 20 && left.length; i++) {
    await sleep(50);
    left = await holders();
  }
  assert.deepEqual(left, [], 'no key holds the answer');
  assert.equal(await s.redis.exists(`${base}:completed`), 0, 'no completed job kept');
  assert.equal(
    await s.redis.hget(`${base}:meta`, 'opts.maxLenEvents'),
    String(NODE_EVENTS_MAX_LEN),
    'the event stream is trimmed short',
  );
});

test('completions forged by a bare Redis client are refused, counted and never believed', async (t) => {
  const s = await setup(t);
  const node = await newNode();
  const attacker = await newNode();
  const NODE = node.peerId.toString();
  const base = `${s.prefix}:${nodeQueueName(NODE)}`;
  const handled = new Set<string>();
  /**
   * Runs an invitation on NODE (no worker: nobody but the forger answers). The forger polls the
   * event stream for the job being added, reads the job (the signed command is there for anyone),
   * and writes a completion of its making, as BullMQ would.
   */
  const forged = async (make: (cmd: ReturnType<typeof decodeCommand>) => unknown) => {
    const run = s.client.run(NODE, 'admin.inviteDevice', INVITE, 5_000);
    run.catch(() => {});
    let jobId: string | undefined;
    for (let i = 0; i < 200 && !jobId; i++) {
      const entries = (await s.redis.xrange(`${base}:events`, '-', '+')) as [string, string[]][];
      jobId = entries
        .map(([, f]) => fields(f))
        .find((f) => f.event === 'added' && !handled.has(f.jobId!))?.jobId;
      if (!jobId) await sleep(10);
    }
    assert.ok(jobId, 'the command was queued');
    handled.add(jobId);
    const data = JSON.parse((await s.redis.hget(`${base}:${jobId}`, 'data'))!) as { command: string };
    const cmd = decodeCommand(fromHex(data.command));
    const returnvalue = JSON.stringify(make(cmd));
    await s.redis.xadd(
      `${base}:events`,
      '*',
      'event',
      'completed',
      'jobId',
      jobId,
      'returnvalue',
      returnvalue,
    );
    return { run, returnvalue };
  };
  const refusedAs = (reason: string) => (err: unknown) => {
    assert.ok(err instanceof CommandError, `${err}`);
    assert.equal(err.code, 'bad-result-signature', err.message);
    assert.equal(err.resultRefusal, reason, err.message);
    return true;
  };
  const evil = inviteResult('cairn-invite:AAAAattackerAAAA');

  // A bare result, the shape a node used to return.
  await assert.rejects((await forged(() => evil)).run, refusedAs('unsigned'));
  // A well-made answer sealed to the gateway's reply key (it is in the command), signed by a key
  // that is not the node's.
  await assert.rejects(
    (await forged((cmd) => answerCommand(cmd, { completed: evil }, attacker.signingKey))).run,
    refusedAs('bad-signature'),
  );
  // The node's genuine answer to one command (believed), replayed for the next.
  const genuine = await forged((cmd) => answerCommand(cmd, { completed: evil }, node.signingKey));
  assert.equal((await genuine.run).invitation, evil.invitation, 'the node’s own answer is believed');
  await assert.rejects((await forged(() => JSON.parse(genuine.returnvalue))).run, refusedAs('wrong-nonce'));

  assert.deepEqual(await s.refusedResults(), { unsigned: 1, 'bad-signature': 1, 'wrong-nonce': 1 });
});

test('an unsigned failure is reported unverified and the job removed, so the node never runs it', async (t) => {
  // Attack review of issue 13: a Redis client wrote a `failed` event for a waiting job; the
  // gateway reported the node's "refusal" (any code, any text) and the node ran the job later.
  const s = await setup(t);
  const NODE = (await newNode()).peerId.toString();
  const base = `${s.prefix}:${nodeQueueName(NODE)}`;
  const run = s.client.run(NODE, 'admin.submitEntry', { content: 'hello', metadata: [] }, 5_000);
  run.catch(() => {});
  let jobId: string | undefined;
  for (let i = 0; i < 200 && !jobId; i++) {
    jobId = (await s.redis.lrange(`${base}:wait`, 0, -1))[0];
    if (!jobId) await sleep(10);
  }
  assert.ok(jobId, 'the command was queued');
  await s.redis.xadd(
    `${base}:events`,
    '*',
    'event',
    'failed',
    'jobId',
    jobId,
    'failedReason',
    'command refused (replayed): nonce was run before',
  );
  await assert.rejects(run, (err: unknown) => {
    assert.ok(err instanceof CommandError, `${err}`);
    assert.equal(err.code, 'unverified', err.message);
    assert.equal(err.refusal, undefined, 'not taken as the node’s refusal');
    assert.equal(err.claimedRefusal, 'replayed');
    return true;
  });
  assert.deepEqual(await s.redis.lrange(`${base}:wait`, 0, -1), [], 'nothing left for the node to run');
  assert.equal(await s.redis.exists(`${base}:${jobId}`), 0);
  assert.deepEqual(await s.refusedResults(), { 'unsigned-failure': 1 });
});

// Real Redis and BullMQ. The watchdogs delete an events stream whose last id is ahead of Redis's
// clock (queue-watch.ts); the admin client's one reader for all nodes had read the poisoned entry,
// so its last id was ahead of every id the recreated stream gets, and no completion on that node
// reached a caller again.
test('a node events stream deleted by the watchdog and recreated: completions still reach the caller', async (t) => {
  const s = await setup(t);
  const node = await newNode();
  const NODE = node.peerId.toString();
  let n = 0;
  const worker = nodeWorker(s, node, () => inviteResult(`invite-${++n}`));
  await worker.waitUntilReady();
  const base = `${s.prefix}:${nodeQueueName(NODE)}`;
  const eventsKey = `${base}:events`;
  assert.equal((await s.client.run(NODE, 'admin.inviteDevice', INVITE)).invitation, 'invite-1');

  // The node stops taking jobs for a moment; two commands wait (the second stays in flight across
  // the repair), and a Redis client poisons the stream with a completion of the first at the
  // largest id. The reader takes it (refused: it is not the node's answer), and its last id is
  // now the largest one: no BullMQ script can run on the queue until the watchdog deletes it.
  await worker.pause();
  const poisoned = s.client.run(NODE, 'admin.inviteDevice', INVITE, 5_000);
  poisoned.catch(() => {});
  let waiting: string[] = [];
  for (let i = 0; i < 200 && waiting.length < 1; i++) {
    waiting = await s.redis.lrange(`${base}:wait`, 0, -1);
    if (waiting.length < 1) await sleep(10);
  }
  const inFlight = s.client.run(NODE, 'admin.inviteDevice', INVITE, 15_000);
  inFlight.catch(() => {});
  for (let i = 0; i < 200 && (await s.redis.llen(`${base}:wait`)) < 2; i++) await sleep(10);
  assert.equal(await s.redis.llen(`${base}:wait`), 2, 'both commands queued');
  await s.redis.xadd(eventsKey, MAX_ID, 'event', 'completed', 'jobId', waiting[0]!, 'returnvalue', '"x"');
  await assert.rejects(poisoned, (err) => err instanceof CommandError && err.code === 'bad-result-signature');

  const repairs = queueRepairsCounter(new Registry());
  assert.equal(
    await repairEventsStream({
      queue: { name: nodeQueueName(NODE) } as never,
      redis: s.redis,
      eventsKey,
      label: 'node',
      repairs,
      log: createLogger('silent'),
    }),
    true,
    'the watchdog deleted the stream',
  );
  worker.resume();
  const t0 = Date.now();
  const got = new Set([(await inFlight).invitation]);
  t.diagnostic(`in-flight answer after the repair: ${Date.now() - t0} ms`);
  // And a command sent after the repair.
  got.add((await s.client.run(NODE, 'admin.inviteDevice', INVITE, 5_000)).invitation);
  // The first waiting job ran too once the worker resumed: its answer went to nobody.
  assert.equal(got.size, 2);
  for (const v of got) assert.match(v, /^invite-[2-4]$/);
  const resets = (await s.registry.getSingleMetric('cairn_gateway_event_stream_resets_total')!.get()).values;
  assert.ok(
    resets.reduce((a, v) => a + v.value, 0) >= 1,
    `the reset was counted (${JSON.stringify(resets)})`,
  );
});
