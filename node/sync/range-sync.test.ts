/**
 * Range sync against an in-memory network: every fake peer is backed by its own Chain holding
 * a forged chain and answers range, locator and hashes-at requests from it (as the node's
 * handlers do); misbehaving peers rewrite their answers. The local node imports through
 * `processBlock`, so everything that is imported was fully validated.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import pino from 'pino';
import { sealBlock } from '../chain/block-codec.ts';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { Chain, ProcessResult } from '../chain/chain.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { SealedHeader } from '../chain/validation.ts';
import type { BlockRef, Status } from '../p2p/messages.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { forgeBlock, forgeChain, type TestChain, testChain, testKey, testNetwork } from '../testing/forge.ts';
import {
  BATCH_BUFFER_SIZE,
  type CheckpointDisagreement,
  type RangeSyncDeps,
  type RangeSyncOptions,
  rangeSync,
  type SyncPeer,
} from './range-sync.ts';

const silent = pino({ level: 'silent' });
const GENESIS_TS = testNetwork().genesisTimestamp;
const BLOCK_TIME = testNetwork().blockTimeMs;

/** Blocks are forged once on this chain (which holds MAIN), then loaded into every peer's chain. */
const forger = testChain();
/** The main chain everyone agrees on: MAIN[i] has height i + 1. */
let MAIN: SealedBlock[] = [];

/** `n` blocks on MAIN's block at `height`, mined by `miner` (a different miner: a different fork). */
const forkAt = (height: number, n: number, miner: number) =>
  forgeChain(forger.chain, forger.chain.tree.mainAt(height)!, n, { miner: testKey(miner) });

/** Another block at MAIN's height `height` (same parent, another miner). */
const rivalAt = (height: number) =>
  forgeBlock(forger.chain, forger.chain.tree.mainAt(height - 1)!, { miner: testKey(9) });

/** The same block with one signature bit flipped (its hash is unchanged: the signature is not hashed). */
const badSignature = (b: SealedBlock) => {
  const signature = b.signature.slice();
  signature[7]! ^= 1;
  return sealBlock({ header: b.header, signature, entries: b.entries });
};

before(async () => {
  MAIN = forgeChain(forger.chain, forger.chain.tip, 600);
  for (const b of MAIN) assert.equal((await forger.submit(b)).status, 'connected');
});

/** Peers holding the same blocks share one chain (serving does not change it). */
const chainCache = new Map<readonly SealedBlock[], Promise<TestChain>>();
async function loaded(blocks: readonly SealedBlock[]): Promise<TestChain> {
  const t = testChain();
  for (const b of blocks) {
    const r = await t.submit(b);
    assert.ok(r.status === 'connected' || r.status === 'reorg', `setup: ${r.status}`);
  }
  return t;
}
function sharedChain(blocks: readonly SealedBlock[]): Promise<TestChain> {
  let c = chainCache.get(blocks);
  if (!c) {
    c = loaded(blocks);
    chainCache.set(blocks, c);
  }
  return c;
}

const statusOf = (c: Chain): Status => ({
  chainId: c.chainId,
  genesisHash: c.genesis.hash,
  headHash: c.tip.hash,
  headHeight: c.tip.height,
  totalWork: c.tip.chainWork,
  role: 'submind',
  capabilities: ['relay'],
});

interface FakePeer {
  readonly id: PeerId;
  readonly key: string;
  readonly t: TestChain;
  status: Status;
  /** Range requests received, in arrival order. */
  readonly ranges: { start: number; count: number }[];
  /** Hashes-at requests received. */
  readonly hashQueries: number[][];
  /** Headers-by-range requests received. */
  readonly headerRanges: { start: number; count: number }[];
  /** Rewrites an honest headers answer. */
  headers?: (headers: SealedHeader[], start: number, count: number) => SealedHeader[];
  ancestorCalls: number;
  /** Milliseconds before each range answer. */
  delayMs: number;
  /** Rewrites an honest range answer (`nth` counts this peer's range requests from 0). */
  serve?: (blocks: SealedBlock[], start: number, count: number, nth: number) => SealedBlock[];
  /** Rewrites an honest locator answer. */
  ancestor?: (honest: BlockRef) => BlockRef;
  hashesAt?: (heights: number[]) => BlockRef[];
}

async function makePeer(blocks: readonly SealedBlock[], delayMs = 0): Promise<FakePeer> {
  const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  const t = await sharedChain(blocks);
  return {
    id,
    key: id.toString(),
    t,
    status: statusOf(t.chain),
    ranges: [],
    hashQueries: [],
    headerRanges: [],
    ancestorCalls: 0,
    delayMs,
  };
}

const syncPeer = (p: FakePeer): SyncPeer => ({ peer: p.id, status: p.status });

interface Penalty {
  readonly peer: string;
  readonly action: PeerAction;
  readonly reason: string;
}

class Net {
  readonly penalties: Penalty[] = [];
  readonly splits: { peer: string; forkHeight: number; ourHeight: number; theirHeight: number }[] = [];
  preverified = 0;
  submitted = 0;
  /** Batches whose submit has finished. */
  submits = 0;
  /** Milliseconds each submit takes (a slow import). */
  submitDelayMs = 0;
  readonly disagreements: CheckpointDisagreement[] = [];
  /** Peers whose word counts in the checkpoint vote; undefined: no isTrustedVoter at all. */
  trusted: Set<string> | undefined;
  readonly rewards: string[] = [];

  readonly local: TestChain;
  readonly peers: readonly FakePeer[];
  constructor(local: TestChain, peers: readonly FakePeer[]) {
    this.local = local;
    this.peers = peers;
  }

  private find(id: PeerId): FakePeer {
    const p = this.peers.find((q) => q.id.equals(id));
    if (!p) throw new Error(`unknown peer ${id.toString()}`);
    return p;
  }

  penaltiesOf(p: FakePeer): Penalty[] {
    return this.penalties.filter((x) => x.peer === p.key);
  }

  /** These peers have an established good score: they vote at checkpoints. */
  trust(...peers: FakePeer[]): this {
    this.trusted ??= new Set();
    for (const p of peers) this.trusted.add(p.key);
    return this;
  }

  deps(): RangeSyncDeps {
    return {
      chain: this.local.chain,
      requestRange: async (id, start, count) => {
        const p = this.find(id);
        const nth = p.ranges.length;
        p.ranges.push({ start, count });
        await sleep(p.delayMs);
        // As the node's BLOCKS_BY_RANGE handler: main-chain blocks, stopping at the head.
        const hashes: Hex[] = [];
        for (let h = Math.max(1, start); h < start + count; h++) {
          const node = p.t.chain.tree.mainAt(h);
          if (!node) break;
          hashes.push(node.hashHex);
        }
        const blocks = await p.t.chain.getBlocks(hashes);
        return p.serve ? p.serve(blocks, start, count, nth) : blocks;
      },
      requestAncestor: async (id, locator) => {
        const p = this.find(id);
        p.ancestorCalls++;
        // As the node's ANCESTOR handler: the first locator hash on the peer's main chain.
        let ref: BlockRef = { height: 0, hash: p.t.chain.genesis.hash };
        for (const h of locator) {
          const node = p.t.chain.tree.get(toHex(h));
          if (node?.onMain) {
            ref = { height: node.height, hash: node.hash };
            break;
          }
        }
        return p.ancestor ? p.ancestor(ref) : ref;
      },
      requestHeaders: async (id, start, count) => {
        const p = this.find(id);
        p.headerRanges.push({ start, count });
        // As the node's HEADERS_BY_RANGE handler: main-chain headers, stopping at the head.
        const out: SealedHeader[] = [];
        for (let h = Math.max(1, start); h < start + count; h++) {
          const node = p.t.chain.tree.mainAt(h);
          if (!node) break;
          out.push({ header: node.header, hash: node.hash, hashHex: node.hashHex });
        }
        return p.headers ? p.headers(out, start, count) : out;
      },
      requestHashesAt: async (id, heights) => {
        const p = this.find(id);
        p.hashQueries.push([...heights]);
        if (p.hashesAt) return p.hashesAt(heights);
        return heights.flatMap((h) => {
          const node = p.t.chain.tree.mainAt(h);
          return node ? [{ height: h, hash: node.hash }] : [];
        });
      },
      submit: async (blocks, from) => {
        const out: ProcessResult[] = [];
        if (this.submitDelayMs) await sleep(this.submitDelayMs);
        for (const b of blocks) out.push(await this.local.submit(b, from));
        this.submitted += blocks.length;
        this.submits++;
        return out;
      },
      ...(this.trusted ? { isTrustedVoter: (id: PeerId) => this.trusted!.has(id.toString()) } : {}),
      onCheckpointDisagreement: (d) => {
        this.disagreements.push(d);
      },
      reward: (id) => {
        this.rewards.push(id.toString());
      },
      preverify: async (blocks) => {
        this.preverified += blocks.length;
      },
      penalise: (id, action, reason) => {
        this.penalties.push({ peer: id.toString(), action, reason });
      },
      onSplit: (info) => {
        this.splits.push(info);
      },
      log: silent,
    };
  }

  sync(
    target: FakePeer,
    helpers: readonly FakePeer[] | (() => readonly SyncPeer[]),
    opts?: RangeSyncOptions,
  ) {
    const helpersNow = typeof helpers === 'function' ? helpers : () => helpers.map(syncPeer);
    return rangeSync(syncPeer(target), helpersNow, this.deps(), opts);
  }
}

/** A fresh local node, or one that already holds `blocks`. */
const localWith = (blocks: readonly SealedBlock[] = []) => loaded(blocks);

const starts = (p: FakePeer) => p.ranges.map((r) => r.start);
const sortedNums = (xs: number[]) => [...xs].sort((a, b) => a - b);
const BATCH_STARTS_600 = [1, 129, 257, 385, 513];

function assertOnMain(local: TestChain, blocks: readonly SealedBlock[]) {
  for (const b of blocks) {
    assert.equal(local.chain.tree.mainAt(b.header.height)?.hashHex, b.hashHex, `height ${b.header.height}`);
  }
}

describe('range sync from honest peers', () => {
  test('a fresh node syncs 600 blocks from one peer in bounded, contiguous batches', async () => {
    const t = await makePeer(MAIN);
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, []);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.equal(net.local.chain.tip.hashHex, MAIN.at(-1)!.hashHex);
    assertOnMain(net.local, MAIN);
    const ranges = [...t.ranges].sort((a, b) => a.start - b.start);
    assert.deepEqual(ranges, [
      { start: 1, count: 128 },
      { start: 129, count: 128 },
      { start: 257, count: 128 },
      { start: 385, count: 128 },
      { start: 513, count: 88 },
    ]);
    assert.equal(t.ancestorCalls, 1);
    assert.deepEqual(t.headerRanges, [], 'a chain extending our tip needs no pre-sync');
    assert.deepEqual(t.hashQueries, [], 'no helper batch to check against the target');
    assert.equal(net.preverified, 600, 'every batch is handed to preverify');
    assert.equal(net.submitted, 600, 'each block is submitted once');
    assert.deepEqual(net.penalties, []);
    assert.deepEqual(net.splits, []);
  });

  test('a node that holds part of the chain downloads from the fork point only', async () => {
    const t = await makePeer(MAIN);
    const net = new Net(await localWith(MAIN.slice(0, 250)), [t]);
    const outcome = await net.sync(t, [], { batchSize: 100 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 350, tip: 600 });
    assert.deepEqual(sortedNums(starts(t)), [251, 351, 451, 551]);
    assert.ok(
      t.ranges.every((r) => r.count <= 100),
      'batch size honoured',
    );
    assert.equal(net.submitted, 350);
  });

  test('batch sizes above the protocol maximum are clamped to 128', async () => {
    const t = await makePeer(MAIN);
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], { batchSize: 1000 });
    assert.equal(outcome.kind, 'synced');
    assert.deepEqual(sortedNums(starts(t)), BATCH_STARTS_600);
    assert.ok(Math.max(...t.ranges.map((r) => r.count)) === 128);
  });

  test('a node at the peer head has nothing to do', async () => {
    const t = await makePeer(MAIN);
    const net = new Net(await localWith(MAIN), [t]);
    const outcome = await net.sync(t, []);
    assert.deepEqual(outcome, { kind: 'synced', imported: 0, tip: 600 });
    assert.deepEqual(t.ranges, []);
    assert.deepEqual(net.penalties, []);
  });

  test('with three peers the batches are spread over all of them, each fetched once', async () => {
    const [a, b, c] = [await makePeer(MAIN, 5), await makePeer(MAIN, 5), await makePeer(MAIN, 5)] as const;
    const net = new Net(await localWith(), [a, b, c]);
    // No checkpoint below 600: the only hash queries are the target's batch-end hashes.
    const outcome = await net.sync(a, [b, c], { checkpointInterval: 1000 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assertOnMain(net.local, MAIN);
    for (const p of [a, b, c]) assert.ok(p.ranges.length >= 1, `peer served ${p.ranges.length} batches`);
    assert.deepEqual(sortedNums([a, b, c].flatMap(starts)), BATCH_STARTS_600, 'no batch fetched twice');
    assert.deepEqual(net.penalties, []);
    // Helper batches are checked against the target's hashes at the batch ends, asked once.
    assert.deepEqual(a.hashQueries, [[128, 256, 384, 512, 600]]);
    assert.deepEqual(
      [b, c].flatMap((p) => p.hashQueries),
      [],
    );
  });

  test('the target is asked for its batch-end hashes at most 64 at a time', async () => {
    const [a, b] = [await makePeer(MAIN, 1), await makePeer(MAIN, 1)] as const;
    const net = new Net(await localWith(), [a, b]);
    // 75 batches of 8: two anchor requests (64 + 11 heights).
    const outcome = await net.sync(a, [b], { batchSize: 8, checkpointInterval: 1000 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.ok(b.ranges.length > 0);
    const asked = a.hashQueries.map((q) => q.length).sort((x, y) => y - x);
    assert.ok(asked.length <= 2 && asked[0] === 64, JSON.stringify(asked));
    assert.ok(
      a.hashQueries.flat().every((h) => h % 8 === 0 || h === 600),
      'batch ends only',
    );
  });

  test('without the target hashes (the request fails) helper batches are still used', async () => {
    const [a, b] = [await makePeer(MAIN, 3), await makePeer(MAIN, 3)] as const;
    a.hashesAt = () => {
      throw new Error('rate-limited');
    };
    const net = new Net(await localWith(), [a, b]);
    const outcome = await net.sync(a, [b]);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.ok(b.ranges.length > 0);
    assert.equal(a.hashQueries.length, 1);
    assert.deepEqual(net.penalties, []);
  });

  test('at most `parallelPeers` peers download', async () => {
    const peers = [
      await makePeer(MAIN, 2),
      await makePeer(MAIN, 2),
      await makePeer(MAIN, 2),
      await makePeer(MAIN, 2),
    ];
    const net = new Net(await localWith(), peers);
    const outcome = await net.sync(peers[0]!, peers.slice(1), { parallelPeers: 2, batchSize: 32 });
    assert.equal(outcome.kind, 'synced');
    assert.deepEqual(
      peers.map((p) => p.ranges.length > 0),
      [true, true, false, false],
    );
  });

  test('helpers whose statuses arrive later join the download', async () => {
    const t = await makePeer(MAIN, 10);
    const [h1, h2] = [await makePeer(MAIN, 10), await makePeer(MAIN, 10)] as const;
    const net = new Net(await localWith(), [t, h1, h2]);
    let calls = 0;
    const helpersNow = () => {
      calls++;
      // Statuses of the helpers arrive once the target has answered a first request.
      if (t.ranges.length < 3) return [];
      return [syncPeer(h1), syncPeer(h2)];
    };
    const outcome = await net.sync(t, helpersNow, { batchSize: 32 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.ok(calls > 1, 'helpers are looked up during the sync, not only at its start');
    assert.ok(h1.ranges.length >= 1, `h1 served ${h1.ranges.length}`);
    assert.ok(h2.ranges.length >= 1, `h2 served ${h2.ranges.length}`);
    assert.ok(t.ranges.length < 19, 'the target did not fetch everything alone');
    assert.equal([t, h1, h2].flatMap(starts).length, 19, 'each of the 19 batches fetched once');
    assertOnMain(net.local, MAIN);
  });
});

describe('short answers: the byte bound and reorgs under the server', () => {
  /** Blocks at heights start..start+count-1 of a fork that leaves MAIN below `start`. */
  const otherFork = (start: number, count: number) => forkAt(start - 2, count + 1, 7).slice(1);
  /** One request per peer at a time: a peer's nth answer is then for its nth request in order. */
  const SEQUENTIAL = { requestsPerPeer: 1 };

  test("a helper's short answer is continued from the next height: no penalty, nothing fetched twice", async () => {
    const t = await makePeer(MAIN, 3);
    const h = await makePeer(MAIN, 3);
    h.serve = (blocks, _s, _c, nth) => (nth === 0 ? blocks.slice(0, 50) : blocks);
    const net = new Net(await localWith(), [t, h]);
    const outcome = await net.sync(t, [h], SEQUENTIAL);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assertOnMain(net.local, MAIN);
    assert.deepEqual(net.penalties, []);
    const first = h.ranges[0]!;
    assert.deepEqual(h.ranges[1], { start: first.start + 50, count: 78 }, 'the rest, from the same peer');
    assert.ok(!starts(t).includes(first.start), 'not fetched again');
  });

  test('a target whose every answer ends after 30 blocks (its byte bound) is followed to the end', async () => {
    const t = await makePeer(MAIN);
    t.serve = (blocks) => blocks.slice(0, 30);
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], SEQUENTIAL);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.deepEqual(net.penalties, []);
    // 600 blocks in answers of at most 30.
    assert.ok(t.ranges.length >= 20, `${t.ranges.length} requests`);
  });

  test('a server whose chain changed between its answers is excused once: no penalty, the batch comes from another peer', async () => {
    const t = await makePeer(MAIN, 3);
    const h = await makePeer(MAIN, 3);
    h.serve = (blocks, start, count, nth) =>
      nth === 0 ? blocks.slice(0, 50) : nth === 1 ? otherFork(start, count) : blocks;
    const net = new Net(await localWith(), [t, h]);
    const outcome = await net.sync(t, [h], SEQUENTIAL);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assertOnMain(net.local, MAIN);
    assert.deepEqual(net.penalties, []);
    const failedStart = h.ranges[0]!.start;
    assert.ok(starts(t).includes(failedStart), 'the batch was fetched again from the target');
  });

  test('a chain that changes under the same server twice in one sync counts as a lie', async () => {
    const t = await makePeer(MAIN);
    t.serve = (blocks, start, count, nth) => (nth % 2 === 0 ? blocks.slice(0, 50) : otherFork(start, count));
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], SEQUENTIAL);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, 'lie');
    assert.equal(outcome.blame, t.key);
    assert.match(outcome.reason, /does not continue its answer before/);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'mid-tolerance']],
    );
    assert.equal(t.ranges.length, 4, 'two tries of one batch, each a short answer and its continuation');
  });

  test('an empty continuation below the claimed head is a lie (the short answer did not end at a bound)', async () => {
    const t = await makePeer(MAIN);
    t.serve = (blocks, _s, _c, nth) => (nth === 0 ? blocks.slice(0, 50) : []);
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], SEQUENTIAL);
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'lie');
    assert.match(net.penalties[0]?.reason ?? '', /^range 1\+128: 50 blocks for a range of 128$/);
    assert.equal(net.penalties.length, 1);
  });
});

describe('pace: a peer that trickles its answers cannot hold the sync', () => {
  const PROGRESS = { graceMs: 10_000, minBytesPerSec: 128 * 1024 };
  /** The downloader's clock; a slow peer's answers move it on. */
  const clocked = () => {
    const clock = { now: 0 };
    return { clock, opts: { clock: () => clock.now, progress: PROGRESS, requestsPerPeer: 1 } };
  };

  test('a target answering each batch just inside the request deadline: penalised, dropped, the sync ends unserved', async () => {
    const t = await makePeer(MAIN);
    const { clock, opts } = clocked();
    // 128 small blocks (~40 KB) per answer, 19 s each: far below 128 KiB/s after the 10 s grace.
    t.serve = (blocks) => {
      clock.now += 19_000;
      return blocks;
    };
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], opts);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.blame, t.key);
    assert.equal(outcome.disproved, 'unserved', 'not a lie: its claim waits for a back-off');
    assert.match(outcome.reason, /target was too slow: range 1\+128: too slow/);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'high-tolerance']],
    );
    assert.equal(t.ranges.length, 1, 'asked for nothing after its first late answer');
    assert.equal(outcome.imported, 128, 'the batch it did deliver is used');
  });

  test('the same slow target with a helper: the helper serves the rest and the sync completes', async () => {
    const t = await makePeer(MAIN);
    const h = await makePeer(MAIN);
    const { clock, opts } = clocked();
    t.serve = (blocks) => {
      clock.now += 19_000;
      return blocks;
    };
    const net = new Net(await localWith(), [t, h]);
    // The helper joins once the target has been judged (its requests then see no clock jump).
    const outcome = await net.sync(t, () => (net.penalties.length ? [syncPeer(h)] : []), opts);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'high-tolerance']],
    );
    assert.equal(t.ranges.length, 1);
    assert.equal(h.ranges.length, 4);
  });

  test('a trickle of short answers is cut off at the floor, before the batch completes', async () => {
    const t = await makePeer(MAIN);
    const { clock, opts } = clocked();
    // Four blocks per answer, 5 s each: 128 blocks would take 160 s.
    t.serve = (blocks) => {
      clock.now += 5_000;
      return blocks.slice(0, 4);
    };
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], opts);
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'unserved');
    assert.ok(t.ranges.length <= 3, `${t.ranges.length} requests`);
    assert.equal(outcome.imported, 0);
    assert.deepEqual(
      net.penalties.map((p) => p.action),
      ['high-tolerance'],
    );
  });

  test('an honest peer within the floor is never judged slow', async () => {
    const t = await makePeer(MAIN);
    const { clock, opts } = clocked();
    // 9 s per batch: inside the grace.
    t.serve = (blocks) => {
      clock.now += 9_000;
      return blocks;
    };
    const net = new Net(await localWith(), [t]);
    assert.deepEqual(await net.sync(t, [], opts), { kind: 'synced', imported: 600, tip: 600 });
    assert.deepEqual(net.penalties, []);
  });
});

describe('range sync with misbehaving peers', () => {
  const brokenAnswers: [string, (blocks: SealedBlock[]) => SealedBlock[], RegExp][] = [
    ['one block too many', (blocks) => [...blocks, blocks.at(-1)!], /129 blocks for a range of 128/],
    [
      'a block that does not link',
      (blocks) => blocks.map((b, i) => (i === 10 ? rivalAt(b.header.height) : b)),
      /block \d+ does not link/,
    ],
    ['heights shifted by one', (blocks) => [blocks[1]!, ...blocks.slice(1)], /position 0 has height/],
  ];
  for (const [name, mangle, reason] of brokenAnswers) {
    test(`a helper answering with ${name} is penalised and the batch is fetched from another peer`, async () => {
      const t = await makePeer(MAIN, 3);
      const bad = await makePeer(MAIN, 3);
      const good = await makePeer(MAIN, 3);
      bad.serve = (blocks, _s, _c, nth) => (nth === 0 ? mangle(blocks) : blocks);
      const net = new Net(await localWith(), [t, bad, good]);
      const outcome = await net.sync(t, [bad, good]);

      assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
      assertOnMain(net.local, MAIN);
      assert.equal(net.penalties.length, 1, JSON.stringify(net.penalties));
      const [p] = net.penaltiesOf(bad);
      assert.equal(p?.action, 'mid-tolerance');
      assert.match(p?.reason ?? '', reason);
      const failedStart = bad.ranges[0]!.start;
      assert.match(p?.reason ?? '', new RegExp(`^range ${failedStart}\\+128`));
      assert.ok(
        [t, good].some((q) => starts(q).includes(failedStart)),
        'the broken batch was fetched again from another peer',
      );
      assert.equal(bad.ranges.length, 2, 'the bad helper is given no further batches');
    });
  }

  test('a target serving a block with a bad signature is penalised (low tolerance) and blamed', async () => {
    const t = await makePeer(MAIN);
    t.serve = (blocks) => blocks.map((b) => (b.header.height === 300 ? badSignature(b) : b));
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, []);

    assert.equal(outcome.kind, 'aborted');
    assert.equal(outcome.kind === 'aborted' && outcome.blame, t.key);
    assert.match(outcome.kind === 'aborted' ? outcome.reason : '', /bad-block-signature/);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'low-tolerance']],
    );
    assert.match(net.penalties[0]!.reason, /served invalid block/);
    // Everything below the bad block was valid and is kept; nothing above it is.
    assert.equal(net.local.chain.tip.height, 299);
    assert.equal(outcome.imported, 299, 'imported counts the blocks that were connected');
    assert.equal(net.local.chain.tree.mainAt(300), undefined);
    assert.equal(net.submitted, 384, 'no batch after the bad one was submitted');
  });

  test('a helper serving bad signatures is blamed, not the honest target', async () => {
    const t = await makePeer(MAIN, 3);
    const h = await makePeer(MAIN, 3);
    h.serve = (blocks) => blocks.map(badSignature);
    const net = new Net(await localWith(), [t, h]);
    const outcome = await net.sync(t, [h]);
    assert.ok(h.ranges.length > 0, 'the helper served a batch');
    assert.equal(outcome.kind, 'aborted');
    assert.equal(outcome.kind === 'aborted' && outcome.blame, h.key);
    assert.deepEqual(net.penaltiesOf(t), []);
    assert.deepEqual(
      net.penaltiesOf(h).map((p) => p.action),
      ['low-tolerance'],
    );
  });

  test('a block from the future (a transient error) costs a high-tolerance penalty only', async () => {
    const t = await makePeer(MAIN);
    const local = await localWith();
    // Our clock says block ~300 is now: blocks more than 30 s ahead are refused for the time being.
    local.clock.now = GENESIS_TS + 300 * BLOCK_TIME;
    const net = new Net(local, [t]);
    const outcome = await net.sync(t, []);
    assert.equal(outcome.kind, 'aborted');
    assert.match(outcome.kind === 'aborted' ? outcome.reason : '', /timestamp-in-future/);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'high-tolerance']],
    );
    const limit = local.clock.now + testNetwork().maxFutureDriftMs;
    const firstFuture = MAIN.find((b) => b.header.timestamp > limit)!;
    assert.ok(firstFuture.header.height > 257 && firstFuture.header.height < 384, 'inside the third batch');
    assert.equal(local.chain.tip.height, firstFuture.header.height - 1);
    assert.equal(outcome.imported, firstFuture.header.height - 1);
  });

  const badForkPoints: [string, (local: TestChain) => BlockRef][] = [
    ['an unknown hash', () => ({ height: 50, hash: randomBytes(32) })],
    ['a block above our tip', () => ({ height: 200, hash: MAIN[199]!.hash })],
    ['a block of ours at the wrong height', () => ({ height: 40, hash: MAIN[49]!.hash })],
  ];
  for (const [name, answer] of badForkPoints) {
    test(`a locator answered with ${name} costs a mid-tolerance penalty and aborts`, async () => {
      const t = await makePeer(MAIN);
      const local = await localWith(MAIN.slice(0, 100));
      t.ancestor = () => answer(local);
      const net = new Net(local, [t]);
      const outcome = await net.sync(t, []);
      assert.deepEqual(outcome, { kind: 'aborted', imported: 0, reason: 'bad fork point', blame: t.key });
      assert.deepEqual(
        net.penalties.map((p) => [p.peer, p.action]),
        [[t.key, 'mid-tolerance']],
      );
      assert.deepEqual(t.ranges, [], 'nothing downloaded');
      assert.equal(local.chain.tip.height, 100);
    });
  }

  test('a locator answered with one of our side-chain blocks is refused', async () => {
    const t = await makePeer(MAIN);
    const side = forkAt(80, 3, 4);
    const local = await localWith(MAIN.slice(0, 100));
    for (const b of side) assert.equal((await local.submit(b)).status, 'side');
    t.ancestor = () => ({ height: 81, hash: side[0]!.hash });
    const net = new Net(local, [t]);
    const outcome = await net.sync(t, []);
    assert.equal(outcome.kind === 'aborted' && outcome.reason, 'bad fork point');
    assert.deepEqual(
      net.penalties.map((p) => p.action),
      ['mid-tolerance'],
    );
  });

  test('a failed locator request aborts without blame', async () => {
    const t = await makePeer(MAIN);
    t.ancestor = () => {
      throw new Error('timeout: no answer');
    };
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, []);
    assert.equal(outcome.kind, 'aborted');
    assert.equal(outcome.kind === 'aborted' && outcome.blame, undefined);
    assert.match(outcome.kind === 'aborted' ? outcome.reason : '', /ancestor request failed: timeout/);
    assert.deepEqual(net.penalties, []);
  });

  test('a status claiming a head the peer cannot serve: penalised, and the sync ends', async () => {
    const t = await makePeer(MAIN);
    t.status = {
      ...t.status,
      headHeight: 700,
      headHash: randomBytes(32),
      totalWork: t.status.totalWork + 100n,
    };
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, []);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(net.penalties.length >= 1);
    for (const p of net.penalties) {
      assert.equal(p.peer, t.key);
      assert.equal(p.action, 'mid-tolerance');
      assert.match(p.reason, /blocks for a range of/);
    }
    // The complete batches below its real head were fine and imported.
    assert.equal(outcome.imported, 512);
    assert.equal(net.local.chain.tip.height, 512);
  });

  test('the same lie with helpers around: they cannot serve it either, the sync still ends', async () => {
    const t = await makePeer(MAIN, 2);
    const h = await makePeer(MAIN, 2);
    t.status = { ...t.status, headHeight: 700, headHash: randomBytes(32) };
    const net = new Net(await localWith(), [t, h]);
    const outcome = await net.sync(t, [h]);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(net.penaltiesOf(t).length >= 1);
    assert.deepEqual(net.penaltiesOf(h), []);
    assert.ok(
      h.ranges.every((r) => r.start + r.count - 1 <= 600),
      'the helper is not asked beyond its head',
    );
  });

  test('a status naming a head hash the peer does not serve, and more work than it served, is penalised after the sync', async () => {
    const t = await makePeer(MAIN);
    // (With all the claimed work served, another head is an honest peer's reorg to a sibling.)
    t.status = { ...t.status, headHash: randomBytes(32), totalWork: t.status.totalWork + 1n };
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, []);
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.deepEqual(net.penalties, [
      { peer: t.key, action: 'mid-tolerance', reason: 'status named a head it did not serve' },
    ]);
  });
});

describe('checkpoints', () => {
  // Everyone shares MAIN[0..99]; X and Y are two 200-block forks on height 100.
  let COMMON: SealedBlock[];
  let X: SealedBlock[];
  let Y: SealedBlock[];
  let onX: SealedBlock[];
  let onY: SealedBlock[];
  before(() => {
    COMMON = MAIN.slice(0, 100);
    X = forkAt(100, 200, 5);
    Y = forkAt(100, 200, 6);
    onX = [...COMMON, ...X];
    onY = [...COMMON, ...Y];
  });

  test('a chain ≥ 2/3 of the trusted peers contradict at a checkpoint: reported, and still imported', async () => {
    const t = await makePeer(onX);
    const voters = [await makePeer(onY), await makePeer(onY), await makePeer(onY)];
    const net = new Net(await localWith(), [t, ...voters]).trust(...voters);
    const outcome = await net.sync(t, voters, { checkpointInterval: 200, parallelPeers: 1 });
    // The vote is advisory (issue 11, item 5): the chain validates, so it is followed.
    assert.deepEqual(outcome, { kind: 'synced', imported: 300, tip: 300 });
    assert.equal(net.local.chain.tip.hashHex, X.at(-1)!.hashHex);
    assert.deepEqual(net.disagreements, [{ height: 200, server: t.key, against: 3, counted: 3 }]);
    assert.deepEqual(net.penalties, [], 'a vote is no proof: nobody is penalised for it');
    for (const v of voters) assert.deepEqual(v.hashQueries, [[200]], 'each voter asked for height 200');
  });

  test('the same with the contradicting peers also downloading: the target is followed, unblamed', async () => {
    const t = await makePeer(onX, 2);
    const voters = [await makePeer(onY, 2), await makePeer(onY, 2), await makePeer(onY, 2)];
    const net = new Net(await localWith(), [t, ...voters]).trust(...voters);
    const outcome = await net.sync(t, voters, { checkpointInterval: 200 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 300, tip: 300 });
    assert.equal(net.local.chain.tip.hashHex, X.at(-1)!.hashHex);
    assert.deepEqual(net.penalties, [], 'nobody is penalised for a vote');
  });

  const votes: [string, ('x' | 'y' | 'silent')[], number][] = [
    ['exactly 2 of 3 contradict', ['x', 'y', 'y'], 1],
    ['1 of 3 contradicts', ['x', 'x', 'y'], 0],
    ['2 of the 2 that answer contradict (one voter fails)', ['y', 'y', 'silent'], 1],
    ['only 1 voter answers (too few to judge)', ['y', 'silent', 'silent'], 0],
  ];
  for (const [name, chains, reported] of votes) {
    test(`checkpoint vote, ${name}: ${reported ? 'reported' : 'not reported'}, synced either way`, async () => {
      const t = await makePeer(onX);
      const voters = await Promise.all(chains.map((c) => makePeer(c === 'y' ? onY : onX)));
      chains.forEach((c, i) => {
        if (c === 'silent')
          voters[i]!.hashesAt = () => {
            throw new Error('no answer');
          };
      });
      const net = new Net(await localWith(), [t, ...voters]).trust(...voters);
      const outcome = await net.sync(t, voters, { checkpointInterval: 200, parallelPeers: 1 });
      assert.equal(outcome.kind, 'synced', JSON.stringify(outcome));
      assert.equal(net.local.chain.tip.hashHex, X.at(-1)!.hashHex);
      assert.equal(net.disagreements.length, reported);
      assert.deepEqual(net.penalties, []);
    });
  }

  test('batches without checkpoint heights ask nobody', async () => {
    const t = await makePeer(onX);
    const voters = [await makePeer(onY), await makePeer(onY)];
    const net = new Net(await localWith(), [t, ...voters]).trust(...voters);
    // Checkpoints every 1000: none below 300.
    const outcome = await net.sync(t, voters, { checkpointInterval: 1000, parallelPeers: 1 });
    assert.equal(outcome.kind, 'synced');
    for (const v of voters) assert.deepEqual(v.hashQueries, []);
  });
});

describe('forks and splits', () => {
  test('a deep fork (> splitDepth) calls onSplit, then reorgs to the heavier chain', async () => {
    // 9 blocks of our own: the locator's dense part (10 hashes) still reaches the fork point.
    const ours = forkAt(300, 9, 3);
    const local = await localWith([...MAIN.slice(0, 300), ...ours]);
    assert.equal(local.chain.tip.hashHex, ours.at(-1)!.hashHex);
    const t = await makePeer(MAIN);
    const net = new Net(local, [t]);
    const outcome = await net.sync(t, []);
    assert.deepEqual(net.splits, [{ peer: t.key, forkHeight: 300, ourHeight: 309, theirHeight: 600 }]);
    assert.deepEqual(outcome, { kind: 'synced', imported: 300, tip: 600 });
    assert.equal(local.chain.tip.hashHex, MAIN.at(-1)!.hashHex);
    assertOnMain(local, MAIN);
    for (const b of ours)
      assert.equal(local.chain.tree.get(b.hashHex)?.onMain, false, 'our branch left main');
    assert.deepEqual(sortedNums(starts(t)), [301, 429, 557]);
    // 9 blocks of ours above the fork outweigh the 6-block margin: the headers came first, as
    // many as it takes to come within the margin (3), then the blocks.
    assert.deepEqual(t.headerRanges, [{ start: 301, count: 3 }]);
    assert.deepEqual(net.penalties, []);
  });

  test('a fork exactly splitDepth deep is an ordinary reorg (no split reported)', async () => {
    // Our 6 blocks on 593 against the peer's 7: the peer's chain is heavier.
    const ours = forkAt(593, 6, 3);
    const local = await localWith([...MAIN.slice(0, 593), ...ours]);
    const t = await makePeer(MAIN);
    const net = new Net(local, [t]);
    const outcome = await net.sync(t, []);
    assert.deepEqual(net.splits, []);
    assert.deepEqual(outcome, { kind: 'synced', imported: 7, tip: 600 });
    assert.deepEqual(t.headerRanges, [], 'a fork within the margin needs no pre-sync');
    assert.equal(local.chain.tip.hashHex, MAIN.at(-1)!.hashHex);
  });

  test('splitDepth is configurable', async () => {
    const ours = forkAt(596, 3, 3);
    const local = await localWith([...MAIN.slice(0, 596), ...ours]);
    const t = await makePeer(MAIN);
    const net = new Net(local, [t]);
    await net.sync(t, [], { splitDepth: 2 });
    assert.deepEqual(net.splits, [{ peer: t.key, forkHeight: 596, ourHeight: 599, theirHeight: 600 }]);
  });

  test('a helper on a competing fork neither gets the honest target blamed nor pulls us onto its fork', async () => {
    // The helper followed MAIN up to 400, then mined its own branch (higher than the target).
    const theirs = forkAt(400, 210, 8);
    const t = await makePeer(MAIN, 15);
    const h = await makePeer([...MAIN.slice(0, 400), ...theirs], 0);
    const net = new Net(await localWith(), [t, h]);
    const outcome = await net.sync(t, [h]);
    assert.ok(h.ranges.length > 0, 'the helper served batches');
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.equal(net.local.chain.tip.hashHex, MAIN.at(-1)!.hashHex);
    assertOnMain(net.local, MAIN);
    assert.deepEqual(net.penaltiesOf(t), [], 'the honest target is not penalised');
  });
});

describe('headers-first pre-sync of deep forks', () => {
  /** Their chain: `n` blocks from genesis by another miner, claiming 2^40 times its work. */
  const cheapFromGenesis = async (n: number) => {
    const p = await makePeer(forgeChain(forger.chain, forger.chain.tree.genesis, n, { miner: testKey(44) }));
    p.status = { ...p.status, totalWork: p.status.totalWork << 40n };
    return p;
  };

  test('a lighter fork from genesis claiming more work: no block of it is fetched or stored', async () => {
    const local = await localWith(MAIN);
    const liar = await cheapFromGenesis(500);
    const net = new Net(local, [liar]);
    const blocksBefore = local.chain.tree.size;
    const outcome = await net.sync(liar, []);
    assert.equal(outcome.kind, 'aborted');
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'lie');
    assert.equal(outcome.kind === 'aborted' && outcome.blame, liar.key);
    assert.match(
      outcome.kind === 'aborted' ? outcome.reason : '',
      /^presync: its headers up to 500 carry work/,
    );
    assert.deepEqual(liar.ranges, [], 'not one block was asked for');
    assert.deepEqual(liar.headerRanges, [{ start: 1, count: 500 }], 'its headers were read up to its claim');
    assert.equal(local.chain.tree.size, blocksBefore, 'nothing stored');
    assert.equal(local.chain.tip.hashHex, MAIN.at(-1)!.hashHex);
    assert.deepEqual(
      net.penaltiesOf(liar).map((x) => x.action),
      ['mid-tolerance'],
    );
  });

  test('a pre-sync that reaches the header cap: its claim disproved (a back-off), not just skipped', async () => {
    // Attack review #11: at the 200,000-header cap a claimant held the only sync slot ~47% of
    // the time at no cost (too-long returned no disproof; the peer was only skipped 60 s).
    const local = await localWith(MAIN);
    const claimant = await cheapFromGenesis(500);
    const net = new Net(local, [claimant]);
    const outcome = await net.sync(claimant, [], { maxPresyncHeaders: 200 });
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, 'lie', 'the peer book backs its claim off, doubling');
    assert.equal(outcome.blame, claimant.key);
    assert.match(outcome.reason, /^presync: 2\d\d headers without reaching the work needed/);
    assert.deepEqual(claimant.ranges, [], 'not one block was asked for');
    // The first time costs no score (the sync manager penalises a repeat disproof).
    assert.deepEqual(net.penaltiesOf(claimant), []);
  });

  test('headers that prove the work, then blocks of another chain: refused before import', async () => {
    // The headers of a heavier chain (700 from genesis), the blocks of a lighter one.
    const heavy = await makePeer(
      forgeChain(forger.chain, forger.chain.tree.genesis, 700, { miner: testKey(45) }),
    );
    const light = forgeChain(forger.chain, forger.chain.tree.genesis, 700, { miner: testKey(46) });
    heavy.serve = (_blocks, start, count) => light.slice(start - 1, start - 1 + count);
    const local = await localWith(MAIN);
    const net = new Net(local, [heavy]);
    const outcome = await net.sync(heavy, []);
    assert.equal(outcome.kind, 'aborted');
    assert.equal(outcome.imported, 0);
    assert.ok(heavy.headerRanges.length > 0);
    for (const b of light)
      assert.equal(local.chain.tree.get(b.hashHex), undefined, 'a swapped block was stored');
    assert.ok(
      net.penaltiesOf(heavy).some((x) => /is not the one its headers showed/.test(x.reason)),
      JSON.stringify(net.penalties),
    );
  });

  test('an invalid header: low tolerance, nothing fetched', async () => {
    const honest = await makePeer(
      forgeChain(forger.chain, forger.chain.tree.genesis, 700, { miner: testKey(47) }),
    );
    honest.headers = (hs) =>
      hs.map((h) =>
        h.header.height === 30 ? { ...h, header: { ...h.header, target: h.header.target >> 1n } } : h,
      );
    const net = new Net(await localWith(MAIN), [honest]);
    const outcome = await net.sync(honest, []);
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'lie');
    assert.deepEqual(honest.ranges, []);
    assert.deepEqual(
      net.penaltiesOf(honest).map((x) => x.action),
      ['low-tolerance'],
      JSON.stringify(net.penalties),
    );
  });

  test('a pre-sync whose answers trickle in: too-slow, a high-tolerance penalty, its claim unserved', async () => {
    const t = await makePeer(
      forgeChain(forger.chain, forger.chain.tree.genesis, 700, { miner: testKey(49) }),
    );
    const clock = { now: 0 };
    // 512 headers (93 KB) in 12 s: past the 10 s grace plus 0.7 s they justify at 128 KiB/s.
    t.headers = (hs) => {
      clock.now += 12_000;
      return hs;
    };
    const local = await localWith(MAIN);
    const net = new Net(local, [t]);
    const outcome = await net.sync(t, [], {
      clock: () => clock.now,
      progress: { graceMs: 10_000, minBytesPerSec: 128 * 1024 },
    });
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, 'unserved');
    assert.equal(outcome.blame, t.key);
    assert.match(outcome.reason, /^presync: headers: 93184 bytes in 12000 ms/);
    assert.equal(t.headerRanges.length, 1, 'no header asked for after the late answer');
    assert.deepEqual(t.ranges, []);
    assert.deepEqual(
      net.penaltiesOf(t).map((x) => x.action),
      ['high-tolerance'],
    );
  });

  test('a heavier fork from genesis: pre-synced, then fetched and reorged to', async () => {
    const heavier = forgeChain(forger.chain, forger.chain.tree.genesis, 700, { miner: testKey(48) });
    const t = await makePeer(heavier);
    const local = await localWith(MAIN);
    const net = new Net(local, [t]);
    const outcome = await net.sync(t, []);
    assert.deepEqual(outcome, { kind: 'synced', imported: 700, tip: 700 });
    assert.equal(local.chain.tip.hashHex, heavier.at(-1)!.hashHex);
    // Headers up to the floor (600 − 6 blocks of work), then every block.
    assert.deepEqual(t.headerRanges, [
      { start: 1, count: 512 },
      { start: 513, count: 82 },
    ]);
    assert.deepEqual(net.penalties, []);
  });
});

describe('the checkpoint vote cannot be steered', () => {
  let X: SealedBlock[];
  let Y: SealedBlock[];
  let onX: SealedBlock[];
  let onY: SealedBlock[];
  before(() => {
    X = forkAt(100, 200, 5);
    Y = forkAt(100, 200, 6);
    onX = [...MAIN.slice(0, 100), ...X];
    onY = [...MAIN.slice(0, 100), ...Y];
  });

  test('three colluding voters without a good score neither stop an honest server nor get it penalised', async () => {
    const server = await makePeer(onX);
    const colluders = [await makePeer(onY), await makePeer(onY), await makePeer(onY)];
    const net = new Net(await localWith(), [server, ...colluders]);
    net.trusted = new Set(); // isTrustedVoter is there, and says no to all three
    const outcome = await net.sync(server, colluders, { checkpointInterval: 200, parallelPeers: 1 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 300, tip: 300 });
    assert.equal(net.local.chain.tip.hashHex, X.at(-1)!.hashHex);
    assert.deepEqual(net.penalties, []);
    for (const c of colluders) assert.deepEqual(c.hashQueries, [], 'an untrusted peer is not even asked');
  });

  test('the colluders downloading too: the honest server is still followed and not penalised', async () => {
    const server = await makePeer(onX, 2);
    const colluders = [await makePeer(onY, 2), await makePeer(onY, 2), await makePeer(onY, 2)];
    const net = new Net(await localWith(), [server, ...colluders]);
    net.trusted = new Set();
    const outcome = await net.sync(server, colluders, { checkpointInterval: 200 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 300, tip: 300 });
    assert.equal(net.local.chain.tip.hashHex, X.at(-1)!.hashHex);
    assert.deepEqual(net.penaltiesOf(server), []);
  });

  test('only trusted peers are counted: two trusted agree, three untrusted colluders are ignored', async () => {
    const server = await makePeer(onX);
    const colluders = [await makePeer(onY), await makePeer(onY), await makePeer(onY)];
    const honest = [await makePeer(onX), await makePeer(onX)];
    const net = new Net(await localWith(), [server, ...colluders, ...honest]).trust(...honest);
    const outcome = await net.sync(server, [...colluders, ...honest], {
      checkpointInterval: 200,
      parallelPeers: 1,
    });
    assert.deepEqual(outcome, { kind: 'synced', imported: 300, tip: 300 });
    assert.deepEqual(net.penalties, []);
    for (const h of honest) assert.deepEqual(h.hashQueries, [[200]]);
    for (const c of colluders) assert.deepEqual(c.hashQueries, []);
  });

  test('three colluders that earned good scores vote against an honest server: the heavier chain still wins', async () => {
    // The victim followed the colluders' chain Y (fork at 100, 300 blocks): they served it, so
    // they are trusted. The honest server has MAIN, 600 blocks, heavier: a 200-block reorg.
    const server = await makePeer(MAIN);
    const colluders = [await makePeer(onY), await makePeer(onY), await makePeer(onY)];
    // They claim to be as tall as the server (to vote at every checkpoint), with less work.
    for (const c of colluders) c.status = { ...c.status, headHeight: 600 };
    const local = await localWith(onY);
    const net = new Net(local, [server, ...colluders]).trust(...colluders);
    const outcome = await net.sync(server, colluders, { checkpointInterval: 200 });
    assert.deepEqual(outcome, { kind: 'synced', imported: 500, tip: 600 });
    assert.equal(local.chain.tip.hashHex, MAIN.at(-1)!.hashHex);
    assertOnMain(local, MAIN);
    assert.deepEqual(net.penaltiesOf(server), [], 'the honest server is not penalised');
    assert.ok(server.headerRanges.length > 0, 'the deep reorg was pre-synced from its headers');
    assert.ok(
      net.disagreements.some((d) => d.height === 200 && d.server === server.key && d.against === 3),
      `the colluders' vote at 200 was counted, and reported only: ${JSON.stringify(net.disagreements)}`,
    );
    assert.ok(
      colluders.every((c) => c.hashQueries.some((q) => q.includes(200))),
      'every colluder was asked',
    );
  });

  test('without an isTrustedVoter function nobody votes (validation alone decides)', async () => {
    const server = await makePeer(onX);
    const colluders = [await makePeer(onY), await makePeer(onY)];
    const net = new Net(await localWith(), [server, ...colluders]);
    const outcome = await net.sync(server, colluders, { checkpointInterval: 200, parallelPeers: 1 });
    assert.equal(outcome.kind, 'synced');
    for (const c of colluders) assert.deepEqual(c.hashQueries, []);
  });

  test('peers whose batches imported are rewarded (how a score becomes good)', async () => {
    const t = await makePeer(MAIN);
    const net = new Net(await localWith(), [t]);
    await net.sync(t, []);
    assert.deepEqual(net.rewards, Array(5).fill(t.key), 'one reward per imported batch');
  });
});

describe('a bounded window of batches: a claimed height is never trusted', () => {
  const lie = (p: FakePeer, headHeight: number) => {
    p.status = {
      ...p.status,
      headHeight,
      headHash: randomBytes(32),
      totalWork: p.status.totalWork << 40n,
    };
  };

  test('a status claiming 2^32-1 blocks: at most the window of batch objects; the liar is blamed and penalised', async () => {
    const t = await makePeer(MAIN);
    lie(t, 2 ** 32 - 1);
    const net = new Net(await localWith(MAIN.slice(0, 300)), [t]);
    let created = 0;
    let maxLive = 0;
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();
    const outcome = await net.sync(t, [], {
      onBatchCreated: () => {
        created++;
        // Imported batches are released: what exists at once is created minus imported.
        maxLive = Math.max(maxLive, created - net.submits);
      },
    });
    const ms = performance.now() - started;
    const heapMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    assert.ok(
      maxLive >= 1 && maxLive <= BATCH_BUFFER_SIZE,
      `${maxLive} batches at once for a claim of 2^32-1`,
    );
    assert.ok(created <= BATCH_BUFFER_SIZE + net.submits, `${created} batches in all`);
    assert.ok(ms < 5_000, `${ms} ms`);
    assert.ok(heapMb < 100, `heap grew by ${heapMb} MB`);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.blame, t.key);
    assert.equal(outcome.disproved, 'lie');
    assert.match(outcome.reason, /status was disproved: range \d+\+128: \d+ blocks for a range of 128/);
    // Its real blocks were fine and imported: 301..556, two whole batches.
    assert.equal(outcome.imported, 256);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'mid-tolerance']],
    );
    assert.ok(t.ranges.length <= BATCH_BUFFER_SIZE, `${t.ranges.length} range requests`);
  });

  test('a status claiming 5*10^7 blocks with nothing behind it: disproved by the first batch', async () => {
    const t = await makePeer(MAIN);
    lie(t, 5 * 10 ** 7);
    const net = new Net(await localWith(MAIN), [t]);
    let created = 0;
    const outcome = await net.sync(t, [], { onBatchCreated: () => created++ });
    assert.ok(created >= 1 && created <= BATCH_BUFFER_SIZE, `${created} batches`);
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'lie');
    assert.equal(outcome.kind === 'aborted' && outcome.blame, t.key);
    assert.equal(outcome.imported, 0);
    assert.equal(net.penalties.length, 1);
    assert.match(net.penalties[0]!.reason, /^range 601\+128: 0 blocks for a range of 128$|: 0 blocks/);
    // The liar gets no batch after the one that disproved it (only those already in flight).
    assert.ok(t.ranges.length <= 2, JSON.stringify(t.ranges));
  });

  test('a status lie with a helper around: the helper serves what it has, the target is still disproved', async () => {
    const t = await makePeer(MAIN, 2);
    const h = await makePeer(MAIN, 2);
    lie(t, 2 ** 32 - 1);
    const net = new Net(await localWith(), [t, h]);
    const outcome = await net.sync(t, [h]);
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'lie');
    assert.ok(h.ranges.every((r) => r.start + r.count - 1 <= 600));
    assert.deepEqual(net.penaltiesOf(h), []);
  });

  test('a target that does not answer is blamed as unserved after bounded attempts', async () => {
    const t = await makePeer(MAIN);
    lie(t, 2 ** 32 - 1);
    t.serve = () => {
      throw new Error('timeout');
    };
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, []);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, 'unserved');
    assert.equal(outcome.blame, t.key);
    assert.match(outcome.reason, /failed 4 times/);
    assert.ok(t.ranges.length <= 2 * 4, `${t.ranges.length} requests`);
    assert.deepEqual(net.penalties, [], 'timeouts are penalised where they occur (reqresp), not here');
  });

  test('downloads never run more than bufferBatches ahead of the import', async () => {
    const peers = [await makePeer(MAIN), await makePeer(MAIN), await makePeer(MAIN)];
    const net = new Net(await localWith(), peers);
    net.submitDelayMs = 10;
    let maxAhead = -1;
    let created = 0;
    const outcome = await net.sync(peers[0]!, peers.slice(1), {
      batchSize: 32,
      bufferBatches: 3,
      checkpointInterval: 1000,
      onBatchCreated: (b) => {
        created++;
        maxAhead = Math.max(maxAhead, b.index - net.submits);
      },
    });
    assert.deepEqual(outcome, { kind: 'synced', imported: 600, tip: 600 });
    assert.equal(created, 19, 'each batch created once');
    assert.ok(maxAhead >= 0 && maxAhead < 3, `a batch was created ${maxAhead} batches ahead of the import`);
    assert.equal(peers.flatMap(starts).length, 19, 'each batch fetched once');
  });

  const aheadOfImport = async (opts: RangeSyncOptions) => {
    const t = await makePeer(MAIN);
    const net = new Net(await localWith(), [t]);
    net.submitDelayMs = 10;
    let maxAhead = 0;
    const deps = net.deps();
    const requestRange = deps.requestRange;
    deps.requestRange = (id, start, count) => {
      maxAhead = Math.max(maxAhead, (start - 1) / 32 - net.submits);
      return requestRange(id, start, count);
    };
    const outcome = await rangeSync(syncPeer(t), () => [], deps, { batchSize: 32, ...opts });
    assert.equal(outcome.kind, 'synced');
    return maxAhead;
  };
  test('downloaded bytes are bounded too: with a full buffer only the next batch is fetched', async () => {
    const unbounded = await aheadOfImport({});
    assert.ok(unbounded >= 4, `without a byte bound the download runs ${unbounded} batches ahead`);
    const bounded = await aheadOfImport({ maxBufferedBytes: 1 });
    assert.ok(bounded <= 2, `with a full buffer the download ran ${bounded} batches ahead`);
  });

  test('the import yields to the event loop between batches (timers run while it syncs)', async () => {
    const peers = [await makePeer(MAIN), await makePeer(MAIN), await makePeer(MAIN)];
    const net = new Net(await localWith(), peers);
    const deps = net.deps();
    const submit = deps.submit;
    let ticks = 0;
    const ticksAtSubmit: number[] = [];
    const timer = setInterval(() => ticks++, 0);
    deps.submit = async (blocks, from) => {
      ticksAtSubmit.push(ticks);
      // Wait for every batch to be downloaded first, so that nothing but the import runs.
      if (ticksAtSubmit.length === 1) await sleep(200);
      return submit(blocks, from);
    };
    try {
      const outcome = await rangeSync(syncPeer(peers[0]!), () => peers.slice(1).map(syncPeer), deps, {
        batchSize: 32,
        bufferBatches: 19,
        checkpointInterval: 1000,
      });
      assert.equal(outcome.kind, 'synced');
    } finally {
      clearInterval(timer);
    }
    const gaps = ticksAtSubmit.slice(2).map((t, i) => t - ticksAtSubmit[i + 1]!);
    assert.equal(gaps.length, 17);
    assert.ok(
      gaps.every((g) => g >= 1),
      `timer ticks between consecutive imports: ${gaps.join(', ')}`,
    );
  });
});

describe('a batch that does not link is fetched again from the target, within the same rules', () => {
  /** Two batches of MAIN: batch 0 (1..128) from the target, batch 1 (129..256) from the helper. */
  const SHORT = () => MAIN.slice(0, 256);
  let shortChain: SealedBlock[] | undefined;
  const short = () => {
    shortChain ??= SHORT();
    return shortChain;
  };
  /** Heights 129..256 of a fork that leaves MAIN at 127 (so block 129 does not follow MAIN's 128). */
  let helperFork: SealedBlock[] | undefined;
  const otherBatch = () => {
    helperFork ??= forkAt(127, 129, 7).slice(1);
    return helperFork;
  };
  /** Heights 101..256 of the chain the target reorged to after serving its first batch. */
  let reorged: SealedBlock[] | undefined;
  const reorgedFrom = (start: number, count: number) => {
    reorged ??= forkAt(100, 156, 6);
    return reorged.slice(start - 101, start - 101 + count);
  };
  const PROGRESS = { graceMs: 10_000, minBytesPerSec: 128 * 1024 };
  const ONE_EACH = { requestsPerPeer: 1, bufferBatches: 2 };

  /** A target and a helper it controls: the target names the helper's fork at 256, the helper serves it. */
  async function collusion() {
    const t = await makePeer(short());
    const h = await makePeer(short());
    t.hashesAt = (heights) =>
      heights.flatMap((x) => {
        if (x === 256) return [{ height: x, hash: otherBatch().at(-1)!.hash }];
        const node = t.t.chain.tree.mainAt(x);
        return node ? [{ height: x, hash: node.hash }] : [];
      });
    h.serve = (blocks, start, count) => (start === 129 ? otherBatch().slice(0, count) : blocks);
    return { t, h, net: new Net(await localWith(), [t, h]) };
  }

  test('a target trickling its refetch one block per answer is cut off at the floor: penalised, unserved', async () => {
    const { t, h, net } = await collusion();
    const clock = { now: 0 };
    // One block per answer, 9.9 s each (inside the request deadline): 128 answers would be ~21 min.
    t.serve = (blocks, start) => {
      if (start < 129) return blocks;
      clock.now += 9_900;
      return blocks.slice(0, 1);
    };
    const outcome = await net.sync(t, [h], { ...ONE_EACH, progress: PROGRESS, clock: () => clock.now });
    assert.ok(
      h.ranges.some((r) => r.start === 129),
      'the helper served the batch that did not link',
    );
    const refetches = t.ranges.filter((r) => r.start >= 129).length;
    assert.ok(refetches <= 3, `${refetches} refetch requests, ${clock.now / 1000} s`);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.blame, t.key);
    assert.equal(outcome.disproved, 'unserved');
    assert.match(outcome.reason, /target was too slow: range 129\+128: too slow/);
    assert.equal(outcome.imported, 128);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'high-tolerance']],
      'the target is blamed, not the helper (the refetch failed too)',
    );
  });

  test('the target serves the batch differently and it links: the target named another block, it is penalised', async () => {
    // Its helper served exactly the chain the target named at 256 (a hash fixes its ancestry), so
    // from here a colluding helper and an honest one framed by a lying target look the same: the
    // target, whose named hash and own range disagree, is the one that answers for it.
    const { t, h, net } = await collusion();
    const outcome = await net.sync(t, [h], ONE_EACH);
    assert.ok(
      t.ranges.some((r) => r.start === 129),
      'the batch was fetched again from the target',
    );
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, 'lie');
    assert.equal(outcome.blame, t.key);
    assert.equal(outcome.imported, 128);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'mid-tolerance']],
    );
    assert.match(net.penalties[0]!.reason, /^range 129\+128: named another block at 256 than it serves$/);
  });

  test('a target that names the block it serves when asked again: its chain changed, excused once', async () => {
    const { t, h, net } = await collusion();
    // Its first answer named the helper's fork at 256; asked again, the MAIN block it now serves.
    let asked = 0;
    t.hashesAt = (heights) =>
      heights.flatMap((x) => {
        const node = t.t.chain.tree.mainAt(x)!;
        return [{ height: x, hash: x === 256 && asked++ === 0 ? otherBatch().at(-1)!.hash : node.hash }];
      });
    const outcome = await net.sync(t, [h], ONE_EACH);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, undefined, 'not a lie');
    assert.equal(outcome.blame, t.key, 'skipped a while, so a repeat cannot hold the node');
    assert.match(outcome.reason, /chain changed/);
    assert.deepEqual(net.penalties, [], 'neither the target (excused once) nor the helper');
  });

  test('a helper whose batch was not anchored (the target named no hash) is not penalised', async () => {
    const { t, h, net } = await collusion();
    t.hashesAt = () => [];
    const outcome = await net.sync(t, [h], ONE_EACH);
    assert.deepEqual(outcome, { kind: 'synced', imported: 256, tip: 256 });
    assert.deepEqual(net.penalties, [], 'following another fork is no offence');
  });

  test('an honest target whose chain reorged between batches is excused once: no penalty, not a lie', async () => {
    const t = await makePeer(short());
    // It served batch 0 of MAIN, then its chain changed below 129.
    t.serve = (blocks, start, count) => (start >= 129 ? reorgedFrom(start, count) : blocks);
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], ONE_EACH);
    assert.equal(outcome.kind, 'aborted');
    assert.ok(outcome.kind === 'aborted');
    assert.equal(outcome.disproved, undefined, 'not a lie');
    assert.equal(outcome.blame, t.key, 'skipped a while, so a repeat cannot hold the node');
    assert.match(outcome.reason, /chain changed/);
    assert.equal(outcome.imported, 128);
    assert.deepEqual(net.penalties, []);
  });

  test('the same target after an excused reorg in this sync: a second change is a lie', async () => {
    const t = await makePeer(short());
    // Its first answer is short and its continuation from another chain (the excuse used), then batch
    // 0 comes whole, and batch 1 from a chain that does not continue it.
    t.serve = (blocks, start, count, nth) =>
      nth === 0
        ? blocks.slice(0, 50)
        : nth === 1
          ? forkAt(49, 79, 7).slice(1)
          : start >= 129
            ? reorgedFrom(start, count)
            : blocks;
    const net = new Net(await localWith(), [t]);
    const outcome = await net.sync(t, [], ONE_EACH);
    assert.equal(outcome.kind === 'aborted' && outcome.disproved, 'lie');
    assert.equal(outcome.imported, 128);
    assert.deepEqual(
      net.penalties.map((p) => [p.peer, p.action]),
      [[t.key, 'mid-tolerance']],
    );
  });
});
