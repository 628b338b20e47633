import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'bullmq';
import { AdminClient } from './admin-client.ts';
import { commandSignatureValid, decodeCommand } from './command-codec.ts';
import { NODE_EVENTS_MAX_LEN, nodeQueueName } from './queues.ts';
import { closeRedis, createRedis, redisUrl } from './redis.ts';

const NODE = '12D3KooWinviteNode';

// Real Redis; a BullMQ worker answers for the node (checking the signature as a node would).
test('an invitation returned by a command is left nowhere in Redis once the gateway has it', async (t) => {
  const prefix = `t${randomBytes(4).toString('hex')}`;
  const secret = `cairn-invite-${randomBytes(16).toString('hex')}`;
  const redis = createRedis();
  const worker = new Worker(
    nodeQueueName(NODE),
    async (job) => {
      const cmd = decodeCommand(Buffer.from(job.data.command, 'hex'));
      assert.ok(commandSignatureValid(cmd) && cmd.command === job.name && cmd.target === NODE);
      const at = new Date(Date.now() + 86_400_000).toISOString();
      return { invitation: secret, expiresAt: at, memberUntil: at };
    },
    { connection: createRedis(), prefix },
  );
  const client = new AdminClient(redisUrl(), prefix);
  t.after(async () => {
    await client.close();
    await worker.close();
    await closeRedis(worker.opts.connection as never);
    for (const k of await redis.keys(`${prefix}:*`)) await redis.del(k);
    await closeRedis(redis);
  });
  await worker.waitUntilReady();
  const out = await client.run(NODE, 'admin.inviteDevice', {
    name: 'phone',
    role: 'submind',
    capabilities: ['submit'],
    expiresInMs: 86_400_000,
  });
  assert.equal(out.invitation, secret);

  const base = `${prefix}:${nodeQueueName(NODE)}`;
  const holders = async () => {
    const found: string[] = [];
    for (const key of await redis.keys(`${base}:*`)) {
      const type = await redis.type(key);
      const text =
        type === 'hash'
          ? JSON.stringify(await redis.hgetall(key))
          : type === 'stream'
            ? JSON.stringify(await redis.xrange(key, '-', '+'))
            : type === 'list'
              ? JSON.stringify(await redis.lrange(key, 0, -1))
              : type === 'zset'
                ? JSON.stringify(await redis.zrange(key, 0, -1))
                : type === 'string'
                  ? String(await redis.get(key))
                  : '';
      if (text.includes(secret)) found.push(`${key} (${type})`);
    }
    return found;
  };
  // The stream entry is deleted right after it was read (not awaited by the caller): allow a moment.
  let left = await holders();
  for (let i = 0; i < 20 && left.length; i++) {
    await sleep(50);
    left = await holders();
  }
  assert.deepEqual(left, [], 'no key holds the invitation');
  assert.equal(await redis.exists(`${base}:completed`), 0, 'no completed job kept');
  assert.equal(
    await redis.hget(`${base}:meta`, 'opts.maxLenEvents'),
    String(NODE_EVENTS_MAX_LEN),
    'the event stream is trimmed short',
  );
});
