import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../node/log.ts';
import { type Json, MAX_COMMAND_TTL_MS, signCommand } from './command-codec.ts';
import { type CommandSigner, ephemeralSigner } from './command-signer.ts';
import { type CommandRefusal, commandJobId, refusalOf, type SignedJobData } from './command-verifier.ts';
import { JobEvents } from './job-events.ts';
import { AdminPayload, type AdminPayloads, AdminResult, type AdminResults } from './payloads.ts';
import { type AdminCommand, namespace, nodeQueueName, nodeQueueStreams } from './queues.ts';
import { RedisConnections, redisUrl } from './redis.ts';
import { keepScriptsLoaded } from './redis-scripts.ts';
import { checkAnswer, type ResultRefusal, ResultRefused } from './result-envelope.ts';

export class CommandError extends Error {
  readonly code:
    | 'invalid-input'
    | 'unknown-node'
    | 'node-unavailable'
    | 'refused'
    | 'command-failed'
    | 'bad-result'
    | 'bad-result-signature'
    | 'unverified';
  readonly refusal?: CommandRefusal;
  readonly resultRefusal?: ResultRefusal;
  readonly claimedRefusal?: CommandRefusal;
  constructor(
    code:
      | 'invalid-input'
      | 'unknown-node'
      | 'node-unavailable'
      | 'refused'
      | 'command-failed'
      | 'bad-result'
      | 'bad-result-signature'
      | 'unverified',
    message: string,
    /** For `refused`: the node's refusal code (command-verifier.ts). */
    refusal?: CommandRefusal,
    /** For `bad-result-signature`: why the answer was not believed (result-envelope.ts). */
    resultRefusal?: ResultRefusal,
    /** For `unverified`: the refusal code the unsigned failure claimed (not believed). */
    claimedRefusal?: CommandRefusal,
  ) {
    super(message);
    this.code = code;
    this.refusal = refusal;
    this.resultRefusal = resultRefusal;
    this.claimedRefusal = claimedRefusal;
    this.name = 'CommandError';
  }
}

/** Queues idle this long are closed (a gateway may talk to many nodes over its life). */
const IDLE_CLOSE_MS = 5 * 60_000;

/**
 * Sends admin commands to nodes as jobs on their queues and waits for the job's result: the
 * gateway's only way to act on a node. Every command is signed with the gateway's key
 * (command-codec.ts) and valid only as long as the caller waits for it, so a command queued while
 * a node was down never runs after its caller gave up. Two Redis connections serve every node:
 * one for the queues, one blocking read for all their completion events (job-events.ts).
 *
 * A completion is believed only as the node's signed answer to the command sent, sealed to the
 * reply key made for it (result-envelope.ts): anything else is `bad-result-signature`, counted
 * in cairn_gateway_command_results_refused_total (see registerMetrics).
 */
export class AdminClient {
  private readonly queues = new Map<string, { queue: Queue; lastUsed: number }>();
  private readonly connections: RedisConnections;
  private readonly connection: Redis;
  private readonly events: JobEvents;
  private readonly sweep: NodeJS.Timeout;
  /** Registered in no registry until registerMetrics: the gateway's /metrics registry is its own. */
  private readonly refusedResults = new Counter({
    name: 'cairn_gateway_command_results_refused_total',
    help: 'Command results the admin client refused (unsigned, forged, for another command), by command and reason',
    labelNames: ['command', 'reason'] as const,
    registers: [],
  });

  /** Event streams found deleted or recreated behind the reader, and read again (job-events.ts). */
  private readonly streamResets = new Counter({
    name: 'cairn_gateway_event_stream_resets_total',
    help: 'Node event streams the admin client found deleted (gone) or recreated behind its last id (behind) and read again from the start',
    labelNames: ['why'] as const,
    registers: [],
  });

  /** Loads of BullMQ's scripts into Redis's cache (redis-scripts.ts), by outcome. */
  private readonly scriptPreloads = new Counter({
    name: 'cairn_gateway_script_preloads_total',
    help: "Loads of BullMQ's scripts into Redis's cache (at start and each reconnect), by outcome",
    labelNames: ['outcome'] as const,
    registers: [],
  });
  private readonly stopPreload: () => void;

  private readonly prefix;
  private readonly signer: CommandSigner;
  constructor(
    url = redisUrl(),
    prefix = namespace(),
    signer: CommandSigner = ephemeralSigner(),
    log?: Logger,
  ) {
    this.prefix = prefix;
    this.signer = signer;
    this.connections = new RedisConnections(url);
    this.connection = this.connections.create();
    // Node users may only EVALSHA (redis-acl.ts): the gateway, like the collector, puts BullMQ's
    // scripts in the cache, again after every reconnect, so nodes run even while one of them is down.
    this.stopPreload = keepScriptsLoaded(this.connection, { log, counter: this.scriptPreloads });
    this.events = new JobEvents(this.connections.create(), this.connection, {
      // By reason only: a node id label would grow with the network.
      onReset: (_stream, why) => this.streamResets.inc({ why }),
    });
    this.sweep = setInterval(() => void this.closeIdle(), 60_000);
    this.sweep.unref();
  }

  /** Adds this client's metrics to `registry` (the gateway's). */
  registerMetrics(registry: Registry): void {
    registry.registerMetric(this.refusedResults);
    registry.registerMetric(this.streamResets);
    registry.registerMetric(this.scriptPreloads);
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
    let signed: ReturnType<typeof signCommand>;
    try {
      signed = signCommand(
        {
          command,
          target: nodeId,
          args: input.data as Json,
          // Valid as long as we wait: a node that picks it up later must not run it.
          ttlMs: Math.min(Math.max(timeoutMs, 1), MAX_COMMAND_TTL_MS),
        },
        this.signer.key,
      );
    } catch (err) {
      throw new CommandError('invalid-input', (err as Error).message);
    }
    const data: SignedJobData = {
      command: Buffer.from(signed.encoded).toString('hex'),
      ...(this.signer.certificate
        ? { certificate: Buffer.from(this.signer.certificate).toString('hex') }
        : {}),
    };
    const queue = this.queue(nodeId);
    const jobId = commandJobId(signed.nonceHex);
    let watch: Awaited<ReturnType<JobEvents['watch']>>;
    try {
      watch = await this.events.watch(`${this.prefix}:${nodeQueueName(nodeId)}:events`, jobId);
    } catch (err) {
      throw new CommandError(
        'node-unavailable',
        `cannot reach Redis for ${command}: ${(err as Error).message}`,
      );
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), timeoutMs);
    });
    try {
      const job = await queue.add(command, data, {
        jobId,
        // The result is read from the event stream, not the job: nothing to keep (an invitation
        // is a bearer secret). A failure's reason is no secret; kept briefly for an operator.
        removeOnComplete: true,
        removeOnFail: { age: 60, count: 100 },
        attempts: 1,
      });
      const outcome = await Promise.race([watch.done, timeout]);
      if (outcome === 'timeout') {
        await job.remove().catch(() => {});
        throw new CommandError(
          'node-unavailable',
          `node ${nodeId} did not answer ${command} within ${timeoutMs} ms`,
        );
      }
      if ('failed' in outcome) {
        // A failure event is unsigned: any Redis client can write one, to make the caller give up
        // while the job still waits for the node, which would then run it unobserved. So the job
        // is removed, as on a timeout, and the claim reported as unverified, never as the node's
        // refusal (a genuine refusal reads the same, with the node's reason in the message).
        await job.remove().catch(() => {});
        this.refusedResults.inc({ command, reason: 'unsigned-failure' });
        const claimed = refusalOf(outcome.failed);
        throw new CommandError(
          'unverified',
          `${command} on node ${nodeId} ended with an unsigned failure, which anyone able to write Redis can forge, so it was not run: ${outcome.failed.slice(0, 500)}`,
          undefined,
          undefined,
          claimed,
        );
      }
      let answer: ReturnType<typeof checkAnswer>;
      try {
        answer = checkAnswer(outcome.completed, signed, signed.reply, jobId);
      } catch (err) {
        if (!(err instanceof ResultRefused)) throw err;
        this.refusedResults.inc({ command, reason: err.code });
        throw new CommandError(
          'bad-result-signature',
          `the answer to ${command} from node ${nodeId} was not believed: ${err.message}`,
          undefined,
          err.code,
        );
      }
      if ('refused' in answer)
        throw new CommandError(
          'refused',
          answer.refused === 'replayed'
            ? `node ${nodeId} refused ${command} as replayed: this command already ran, from another job (${answer.message})`
            : `node ${nodeId} refused ${command} (${answer.refused}): ${answer.message}`,
          answer.refused,
        );
      if ('failed' in answer)
        throw new CommandError('command-failed', `${command} failed on node ${nodeId}: ${answer.failed}`);
      const out = AdminResult[command].safeParse(answer.completed);
      if (!out.success)
        throw new CommandError('bad-result', `node ${nodeId} returned a malformed ${command} result`);
      return out.data as AdminResults[C];
    } finally {
      clearTimeout(timer);
      watch.cancel();
    }
  }

  private queue(nodeId: string): Queue {
    let q = this.queues.get(nodeId);
    if (!q) {
      q = {
        queue: new Queue(nodeQueueName(nodeId), {
          connection: this.connection,
          prefix: this.prefix,
          streams: nodeQueueStreams,
        }),
        lastUsed: 0,
      };
      q.queue.on('error', () => {});
      this.queues.set(nodeId, q);
    }
    q.lastUsed = Date.now();
    return q.queue;
  }

  private async closeIdle(): Promise<void> {
    const now = Date.now();
    for (const [id, q] of this.queues) {
      if (now - q.lastUsed < IDLE_CLOSE_MS) continue;
      this.queues.delete(id);
      await q.queue.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    clearInterval(this.sweep);
    this.stopPreload();
    const all = [...this.queues.values()];
    this.queues.clear();
    await this.events.close();
    await Promise.all(all.map((q) => q.queue.close().catch(() => {})));
    await this.connections.closeAll();
  }
}
