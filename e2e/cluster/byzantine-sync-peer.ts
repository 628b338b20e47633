/**
 * Status liars for sync attacks: ByzantinePeers that repeat their status like a persistent
 * attacker would, redialling whenever the victim drops it, until the victim bans them.
 *
 * - `StatusLiar.start`: a status claiming a head far above the victim's (a given height, far
 *   more work, a hash nobody has); it answers the victim's locator with the true fork point (so
 *   the victim goes on to ask for the promised blocks) and serves no blocks at all.
 * - `StatusLiar.startForkServer`: a status claiming far more work for a real, valid, cheap fork
 *   from genesis, whose headers and blocks it serves by range.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { toHex } from '../../node/chain/bytes.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf, type NetworkConfig } from '../../node/chain/network-config.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import {
  decodeHashes,
  decodeRangeRequest,
  encodeBlockRef,
  MAX_BLOCKS_PER_REQUEST,
  MAX_HEADERS_PER_REQUEST,
  type Status,
} from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { ByzantinePeer, successFrame } from './byzantine-peer.ts';
import type { ClusterNode } from './harness.ts';

export class StatusLiar {
  /** Range requests the victim sent (each answered with nothing, or a fork server's blocks). */
  rangeRequests = 0;
  /** Headers-by-range requests the victim sent, and the headers served in all. */
  headerRequests = 0;
  headersServed = 0;
  /** Locator requests the victim sent (each answered with the true fork point). */
  ancestorRequests = 0;
  private running = false;
  private loop: Promise<void> | undefined;

  private constructor(
    readonly peer: ByzantinePeer,
    readonly lie: Status,
    private readonly victim: ClusterNode,
  ) {}

  get name(): string {
    return this.peer.name;
  }

  get peerId(): string {
    return this.peer.peerId;
  }

  /** Starts a liar claiming `headHeight` with 2^40 times the victim's work. */
  static async start(
    name: string,
    network: NetworkConfig,
    dir: string,
    victim: ClusterNode,
    headHeight: number,
  ): Promise<StatusLiar> {
    const peer = await ByzantinePeer.start(name, network, dir, { gossip: false });
    const v = await victim.status();
    const lie: Status = {
      chainId: chainIdOf(network),
      genesisHash: genesisBlock(network).hash,
      headHash: randomBytes(32),
      headHeight,
      totalWork: BigInt(v.totalWork) << 40n,
      role: 'hub',
      capabilities: ['mine'],
    };
    const liar = new StatusLiar(peer, lie, victim);
    await peer.serve('status', () => [successFrame(STATUS.encodeResponse(lie))]);
    await peer.serve('ancestor', async (req) => {
      liar.ancestorRequests++;
      return [successFrame(encodeBlockRef(await liar.trueForkPoint(req)))];
    });
    await peer.serve('blocks-by-range', () => {
      liar.rangeRequests++;
      return [];
    });
    return liar;
  }

  /**
   * A fork server: its status names the head of `fork` (valid blocks from genesis) with far more
   * work than the victim has (2^40 times: the lie is the work, not the chain), it answers every
   * locator with genesis (the true fork point of its chain) and serves the fork's headers and
   * blocks by range, as an honest node would serve its own chain.
   */
  static async startForkServer(
    name: string,
    network: NetworkConfig,
    dir: string,
    victim: ClusterNode,
    fork: readonly SealedBlock[],
  ): Promise<StatusLiar> {
    const peer = await ByzantinePeer.start(name, network, dir, { gossip: false });
    const v = await victim.status();
    const genesis = genesisBlock(network);
    const lie: Status = {
      chainId: chainIdOf(network),
      genesisHash: genesis.hash,
      headHash: fork.at(-1)!.hash,
      headHeight: fork.length,
      totalWork: BigInt(v.totalWork) << 40n,
      role: 'hub',
      capabilities: ['mine'],
    };
    const server = new StatusLiar(peer, lie, victim);
    const range = (req: Uint8Array, max: number) => {
      const q = decodeRangeRequest(req, max);
      return fork.slice(Math.max(0, q.startHeight - 1), q.startHeight - 1 + q.count);
    };
    await peer.serve('status', () => [successFrame(STATUS.encodeResponse(lie))]);
    await peer.serve('ancestor', () => [successFrame(encodeBlockRef({ height: 0, hash: genesis.hash }))]);
    await peer.serve('headers-by-range', (req) => {
      server.headerRequests++;
      const blocks = range(req, MAX_HEADERS_PER_REQUEST);
      server.headersServed += blocks.length;
      return blocks.map((b) => successFrame(b.headerBytes));
    });
    await peer.serve('blocks-by-range', (req) => {
      server.rangeRequests++;
      return range(req, MAX_BLOCKS_PER_REQUEST).map((b) => successFrame(b.encoded));
    });
    return server;
  }

  /** The first locator hash on the victim's main chain: what an honest peer on its chain answers. */
  private async trueForkPoint(req: Uint8Array): Promise<{ height: number; hash: Uint8Array }> {
    const locator = decodeHashes(req).map((h) => toHex(h));
    const { height } = await this.victim.status();
    const main = (await this.victim.chain(Math.max(0, height - 64), height)).blocks;
    const at = new Map(main.map((b) => [b.hash, b.height]));
    const hit = locator.find((h) => at.has(h)) ?? main[0]!.hash;
    return { height: at.get(hit) ?? 0, hash: Buffer.from(hit, 'hex') };
  }

  /**
   * Keeps telling the victim its status (every `everyMs`, within the status rate limit of 10 per
   * 10 s) and redials when dropped, until `stop()`.
   */
  persist(everyMs = 1_500): void {
    this.running = true;
    this.loop = (async () => {
      let lastSent = 0;
      while (this.running) {
        const connected = this.peer.isConnected(this.victim);
        if (!connected || Date.now() - lastSent >= everyMs) {
          if (!connected) await this.peer.dial(this.victim, 2_000).catch(() => {});
          await this.peer.request(this.victim, STATUS, this.lie).catch(() => {});
          lastSent = Date.now();
        }
        await sleep(200);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.peer.stop();
  }
}

/** The two liars of issue 11: heads at 2^32−1 and 5·10^7 blocks; dialled and repeating their lie. */
export async function startStatusLiars(
  network: NetworkConfig,
  dir: string,
  victim: ClusterNode,
): Promise<StatusLiar[]> {
  const liars: StatusLiar[] = [];
  for (const [name, height] of [
    ['tall', 2 ** 32 - 1],
    ['fifty', 5 * 10 ** 7],
  ] as const) {
    const liar = await StatusLiar.start(name, network, dir, victim, height);
    liars.push(liar);
    await liar.peer.dial(victim);
    liar.persist();
  }
  return liars;
}
