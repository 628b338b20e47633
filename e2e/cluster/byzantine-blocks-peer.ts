/**
 * What the block-flooding attacks of byzantine-blocks.test.ts need beside ByzantinePeer: the
 * junk they send (orphans at the easiest possible target, a cheap fork from genesis), a flood
 * that redials after every disconnect until the victim refuses it, and a probe that samples the
 * victim's /status latency and resident memory while it is under attack.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import type { Chain } from '../../node/chain/chain.ts';
import { MAX_TARGET } from '../../node/chain/pow.ts';
import type { SigningKey } from '../../node/chain/signature.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { forgeBlock, forgeChain } from '../../node/testing/forge.ts';
import type { ByzantinePeer, Target } from './byzantine-peer.ts';
import { type ClusterNode, parseMetric } from './harness.ts';

/**
 * `n` signed blocks at target 2^256 − 1 (every hash meets it: no work at all), each on a random
 * unknown parent at a height between 1 and `maxHeight`.
 */
export function freeOrphans(chain: Chain, key: SigningKey, n: number, maxHeight: number): SealedBlock[] {
  return Array.from({ length: n }, () =>
    forgeBlock(chain, chain.tree.genesis, {
      miner: key,
      mine: false,
      header: {
        prevHash: randomBytes(32),
        height: 1 + Math.floor(Math.random() * maxHeight),
        target: MAX_TARGET,
      },
    }),
  );
}

/**
 * `n` valid blocks from genesis at the network's easiest target (minimum difficulty), one block
 * time apart (so retargets keep the target there), mined and signed: a fork anyone can make in
 * a second.
 */
export function cheapFork(chain: Chain, key: SigningKey, n: number): SealedBlock[] {
  return forgeChain(chain, chain.tree.genesis, n, { miner: key, gapMs: chain.config.blockTimeMs });
}

export interface FloodResult {
  /** Messages published with the victim among the recipients. */
  readonly delivered: number;
  /** Dials after a disconnect that got gossip going again. */
  readonly reconnects: number;
  /** Index of the first message it could not send because the victim refused it (banned). */
  readonly refusedAt: number | undefined;
}

/**
 * Gossips `blocks` to `victim` as fast as gossipsub takes them, redialling whenever the victim
 * drops the connection, until all are sent or a redial fails (the victim refuses us).
 */
export async function flood(
  peer: ByzantinePeer,
  victim: Target,
  blocks: readonly SealedBlock[],
  reconnectTimeoutMs = 4_000,
): Promise<FloodResult> {
  let delivered = 0;
  let reconnects = 0;
  for (let i = 0; i < blocks.length; i++) {
    if (!peer.gossipReady(victim)) {
      try {
        await peer.connect(victim, reconnectTimeoutMs);
        if (i > 0) reconnects++;
      } catch {
        return { delivered, reconnects, refusedAt: i };
      }
    }
    const to = await peer.publishBlockBytes(blocks[i]!.encoded).catch(() => [] as string[]);
    if (to.includes(victim.peerId)) delivered++;
    if (i % 64 === 63) await yieldToLoop();
  }
  return { delivered, reconnects, refusedAt: undefined };
}

/** Samples a node's /status latency and resident memory until stopped. */
export class VictimProbe {
  readonly statusMs: number[] = [];
  readonly failures: string[] = [];
  rssMaxBytes = 0;
  private running = true;
  private readonly loops: Promise<void>[];

  private readonly node: ClusterNode;
  readonly rssBaseBytes: number;
  constructor(node: ClusterNode, rssBaseBytes: number) {
    this.node = node;
    this.rssBaseBytes = rssBaseBytes;
    this.loops = [this.pollStatus(), this.pollRss()];
  }

  static async start(node: ClusterNode): Promise<VictimProbe> {
    return new VictimProbe(node, await rss(node));
  }

  get statusMaxMs(): number {
    return Math.max(0, ...this.statusMs);
  }

  get rssGrowthMb(): number {
    return (this.rssMaxBytes - this.rssBaseBytes) / 2 ** 20;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    // One last sample: memory held after the attack counts too.
    this.rssMaxBytes = Math.max(this.rssMaxBytes, await rss(this.node));
  }

  private async pollStatus(): Promise<void> {
    while (this.running) {
      const t0 = performance.now();
      try {
        await retryOnReset(() => this.node.request('GET', '/status', undefined, 5_000));
        this.statusMs.push(performance.now() - t0);
      } catch (err) {
        this.failures.push((err as Error).message);
      }
      await sleep(100);
    }
  }

  private async pollRss(): Promise<void> {
    while (this.running) {
      try {
        this.rssMaxBytes = Math.max(this.rssMaxBytes, await rss(this.node));
      } catch (err) {
        this.failures.push(`metrics: ${(err as Error).message}`);
      }
      await sleep(250);
    }
  }
}

/** The node's resident set size from its Prometheus process metrics. */
export async function rss(node: ClusterNode): Promise<number> {
  const v = parseMetric(await retryOnReset(() => node.metrics()), 'process_resident_memory_bytes');
  if (v === undefined) throw new Error(`${node.name} reports no process_resident_memory_bytes`);
  return v;
}

/**
 * Runs `fn` again, once, when it failed because the server closed a kept-alive socket just as
 * the client reused it (undici's "other side closed"): a race of HTTP keep-alive, not a node
 * that does not answer. Its latency includes the retry.
 */
async function retryOnReset<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const cause = (err as { cause?: { cause?: { code?: string } } }).cause?.cause;
    if (cause?.code !== 'UND_ERR_SOCKET' && cause?.code !== 'ECONNRESET') throw err;
    return fn();
  }
}
