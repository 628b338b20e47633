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
  decodeHeights,
  decodeRangeRequest,
  encodeBlockRef,
  MAX_BLOCKS_PER_REQUEST,
  MAX_HEADERS_PER_REQUEST,
  type Status,
} from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { ByzantinePeer, successFrame } from './byzantine-peer.ts';
import type { ClusterNode } from './harness.ts';

/** Who the attacker is: `seed`, an admitted member's identity (the insider case), or a fresh key. */
export interface InsiderOptions {
  readonly seed?: Uint8Array;
}

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

  readonly peer: ByzantinePeer;
  readonly lie: Status;
  private readonly victim: ClusterNode;
  private constructor(peer: ByzantinePeer, lie: Status, victim: ClusterNode) {
    this.peer = peer;
    this.lie = lie;
    this.victim = victim;
  }

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
    { seed }: InsiderOptions = {},
  ): Promise<StatusLiar> {
    const peer = await ByzantinePeer.start(name, network, dir, { gossip: false, seed });
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
    { seed }: InsiderOptions = {},
  ): Promise<StatusLiar> {
    const peer = await ByzantinePeer.start(name, network, dir, { gossip: false, seed });
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

/**
 * The two liars of issue 11: heads at 2^32−1 and 5·10^7 blocks; dialled and repeating their lie.
 * `seeds`: their identities (admitted members of a roster network), in that order.
 */
export async function startStatusLiars(
  network: NetworkConfig,
  dir: string,
  victim: ClusterNode,
  seeds: readonly (Uint8Array | undefined)[] = [],
): Promise<StatusLiar[]> {
  const liars: StatusLiar[] = [];
  for (const [i, [name, height]] of (
    [
      ['tall', 2 ** 32 - 1],
      ['fifty', 5 * 10 ** 7],
    ] as const
  ).entries()) {
    const liar = await StatusLiar.start(name, network, dir, victim, height, { seed: seeds[i] });
    liars.push(liar);
    await liar.peer.dial(victim);
    liar.persist();
  }
  return liars;
}

/**
 * A peer that serves an in-memory chain honestly, up to a head the test moves: status,
 * locator, headers, blocks and hashes-at all answer from `blocks[0..head)`. Colluders use it
 * to earn a good score by serving real blocks before they vote (their hashes-at answers are
 * true for their chain, and name other blocks than a heavier chain's).
 */
export class ChainPeer {
  /** Hashes-at requests received (checkpoint votes asked). */
  votesAsked = 0;
  rangeRequests = 0;
  private head = 0;
  /** The height its status claims (its head unless the test says otherwise). */
  private claim = 0;
  private readonly heightOf = new Map<string, number>();

  readonly peer: ByzantinePeer;
  private readonly network: NetworkConfig;
  private readonly blocks: readonly SealedBlock[];
  private readonly work: readonly bigint[];
  private constructor(
    peer: ByzantinePeer,
    network: NetworkConfig,
    blocks: readonly SealedBlock[],
    /** Work of each prefix: work[i] is the chain work at height i. */
    work: readonly bigint[],
  ) {
    this.peer = peer;
    this.network = network;
    this.blocks = blocks;
    this.work = work;
    for (const [i, b] of blocks.entries()) this.heightOf.set(b.hashHex, i + 1);
  }

  get name(): string {
    return this.peer.name;
  }

  get peerId(): string {
    return this.peer.peerId;
  }

  /** `blocks[i]` has height i + 1; `work[i]` is the chain work at height i (work[0]: genesis). */
  static async start(
    name: string,
    network: NetworkConfig,
    dir: string,
    blocks: readonly SealedBlock[],
    work: readonly bigint[],
    { seed }: InsiderOptions = {},
  ): Promise<ChainPeer> {
    const peer = await ByzantinePeer.start(name, network, dir, { gossip: false, seed });
    const c = new ChainPeer(peer, network, blocks, work);
    const genesis = genesisBlock(network);
    const upTo = (start: number, count: number) =>
      c.blocks.slice(Math.max(0, start - 1), Math.min(c.head, start - 1 + count));
    await peer.serve('status', () => [successFrame(STATUS.encodeResponse(c.status()))]);
    await peer.serve('ancestor', (req) => {
      for (const h of decodeHashes(req)) {
        const height = c.heightOf.get(toHex(h));
        if (height !== undefined && height <= c.head)
          return [successFrame(encodeBlockRef({ height, hash: h }))];
      }
      return [successFrame(encodeBlockRef({ height: 0, hash: genesis.hash }))];
    });
    await peer.serve('headers-by-range', (req) => {
      const q = decodeRangeRequest(req, MAX_HEADERS_PER_REQUEST);
      return upTo(q.startHeight, q.count).map((b) => successFrame(b.headerBytes));
    });
    await peer.serve('blocks-by-range', (req) => {
      c.rangeRequests++;
      const q = decodeRangeRequest(req, MAX_BLOCKS_PER_REQUEST);
      return upTo(q.startHeight, q.count).map((b) => successFrame(b.encoded));
    });
    await peer.serve('hashes-at', (req) => {
      c.votesAsked++;
      return decodeHeights(req)
        .filter((h) => h >= 1 && h <= c.head)
        .map((height) => successFrame(encodeBlockRef({ height, hash: c.blocks[height - 1]!.hash })));
    });
    return c;
  }

  status(): Status {
    const genesis = genesisBlock(this.network);
    return {
      chainId: chainIdOf(this.network),
      genesisHash: genesis.hash,
      headHash: this.head ? this.blocks[this.head - 1]!.hash : genesis.hash,
      headHeight: this.claim,
      totalWork: this.work[this.head]!,
      role: 'hub',
      capabilities: ['mine'],
    };
  }

  /**
   * Moves the head and tells the victim (dialling it if needed). `claimHeight` makes the status
   * claim a taller head (with the work it really has), so that the victim counts it among the
   * peers it may ask to vote.
   */
  async announce(victim: ClusterNode, head: number, claimHeight = head): Promise<void> {
    this.head = head;
    this.claim = claimHeight;
    if (!this.peer.isConnected(victim)) await this.peer.dial(victim);
    await this.peer.request(victim, STATUS, this.status()).catch(() => {});
  }

  async stop(): Promise<void> {
    await this.peer.stop();
  }
}
