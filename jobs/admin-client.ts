import { Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { AdminPayload, type AdminPayloads, AdminResult, type AdminResults } from './payloads.ts';
import { type AdminCommand, namespace, nodeQueueName } from './queues.ts';
import { closeRedis, RedisConnections, redisUrl } from './redis.ts';

export class CommandError extends Error {
  constructor(
    readonly code: 'invalid-input' | 'node-unavailable' | 'command-failed' | 'bad-result',
    message: string,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

interface NodeChannel {
  readonly queue: Queue;
  readonly events: QueueEvents;
  /** QueueEvents blocks on its connection, so it gets its own; BullMQ never closes a connection it was handed. */
  readonly eventsConnection: Redis;
  lastUsed: number;
}

async function closeChannel(ch: NodeChannel): Promise<void> {
  await Promise.all([ch.queue.close(), ch.events.close()]).catch(() => {});
  await closeRedis(ch.eventsConnection);
}

/** Channels idle this long are closed (a gateway may talk to many nodes over its life). */
const IDLE_CLOSE_MS = 5 * 60_000;

/**
 * Sends admin commands to nodes as jobs on their queues and waits for the job's return value:
 * the gateway's only way to act on a node. Queues and event listeners are opened per node on
 * first use and shared by all requests.
 */
export class AdminClient {
  private readonly channels = new Map<string, NodeChannel>();
  private readonly connections: RedisConnections;
  private readonly connection: Redis;
  private readonly sweep: NodeJS.Timeout;

  constructor(
    url = redisUrl(),
    private readonly prefix = namespace(),
  ) {
    this.connections = new RedisConnections(url);
    this.connection = this.connections.create();
    this.sweep = setInterval(() => void this.closeIdle(), 60_000);
    this.sweep.unref();
  }

  async run<C extends AdminCommand>(
    nodeId: string,
    command: C,
    payload: AdminPayloads[C],
    timeoutMs = 30_000,
  ): Promise<AdminResults[C]> {
    const input = AdminPayload[command].safeParse(payload);
    if (!input.success)
      throw new CommandError('invalid-input', input.error.issues.map((i) => i.message).join('; '));
    const ch = await this.channel(nodeId);
    // A node that is gone leaves the job waiting: it must not run much later, so it expires.
    const job = await ch.queue.add(command, input.data, {
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 3600, count: 1000 },
      attempts: 1,
    });
    let value: unknown;
    try {
      value = await job.waitUntilFinished(ch.events, timeoutMs);
    } catch (err) {
      const msg = (err as Error).message;
      if (/timed out/i.test(msg)) {
        await job.remove().catch(() => {});
        throw new CommandError(
          'node-unavailable',
          `node ${nodeId} did not answer ${command} within ${timeoutMs} ms`,
        );
      }
      throw new CommandError('command-failed', `${command} failed on node ${nodeId}: ${msg}`);
    }
    const out = AdminResult[command].safeParse(value);
    if (!out.success)
      throw new CommandError('bad-result', `node ${nodeId} returned a malformed ${command} result`);
    return out.data as AdminResults[C];
  }

  private async channel(nodeId: string): Promise<NodeChannel> {
    let ch = this.channels.get(nodeId);
    if (!ch) {
      const name = nodeQueueName(nodeId);
      const queue = new Queue(name, { connection: this.connection, prefix: this.prefix });
      const eventsConnection = this.connections.create();
      const events = new QueueEvents(name, { connection: eventsConnection, prefix: this.prefix });
      ch = { queue, events, eventsConnection, lastUsed: Date.now() };
      this.channels.set(nodeId, ch);
      await events.waitUntilReady();
    }
    ch.lastUsed = Date.now();
    return ch;
  }

  private async closeIdle(): Promise<void> {
    const now = Date.now();
    for (const [id, ch] of this.channels) {
      if (now - ch.lastUsed < IDLE_CLOSE_MS) continue;
      this.channels.delete(id);
      await closeChannel(ch);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    const all = [...this.channels.values()];
    this.channels.clear();
    await Promise.all(all.map(closeChannel));
    await this.connections.closeAll();
  }
}
