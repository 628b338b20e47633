/**
 * Block serving between real libp2p hosts on loopback: answers are streamed from the store a
 * few blocks at a time; a reader that stops reading pins a bounded number of blocks and is cut
 * off and penalised; concurrent streams per peer are capped; the per-peer block and byte
 * budgets refuse with the rate-limited code on the wire.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PeerId, Stream } from '@libp2p/interface';
import type { Hex } from '../chain/bytes.ts';
import type { SealedBlock } from '../chain/types.ts';
import { createLogger } from '../log.ts';
import {
  forgeChain,
  knowledgeEntry,
  TEST_NOW,
  type TestChain,
  testChain,
  testKey,
} from '../testing/forge.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import type { CairnLibp2p } from './host.ts';
import { encodeRangeRequest, type Status } from './messages.ts';
import type { PeerAction } from './peer-scores.ts';
import { BLOCKS_BY_RANGE, forNetwork, HEADERS_BY_RANGE, MAX_BLOCK_RESPONSE_BYTES } from './protocols.ts';
import { ReqResp, ReqRespError } from './reqresp.ts';
import { ServeBudget } from './serve-budget.ts';
import { type BlockSource, SERVE_READ_AHEAD, serveChainProtocols } from './serve-chain.ts';

interface Side {
  host: CairnLibp2p;
  id: PeerId;
  rr: ReqResp;
  penalties: { peer: string; action: PeerAction; reason: string }[];
  observed: { protocol: string; outcome: string }[];
}
const dirs: string[] = [];
const sides: Side[] = [];

async function startSide(seed: number): Promise<Side> {
  const { host, identity } = await startLoopbackHost(seed, 'serve', dirs);
  const side: Side = {
    host,
    id: identity.peerId,
    rr: undefined as unknown as ReqResp,
    penalties: [],
    observed: [],
  };
  side.rr = new ReqResp(
    host,
    '/cairn/serve-test',
    {
      penalise: (peer, action, reason) => side.penalties.push({ peer: peer.toString(), action, reason }),
      observe: (protocol, direction, outcome) => {
        if (direction === 'inbound') side.observed.push({ protocol, outcome });
      },
    },
    createLogger('silent'),
  );
  sides.push(side);
  return side;
}

const BLOCKS = 128;
let blocks: SealedBlock[];
/** Blocks read from the store, in total. */
let reads = 0;
let server: Side;
let budgetClock = { now: 0 };
let tight: ServeBudget;
let useTight = false;
let served: { chain: TestChain['chain']; store: BlockSource };

before(async () => {
  const t = testChain({}, { recentBlockCache: 1 });
  t.clock.now = TEST_NOW;
  // ~60 KB per block: 128 of them (7.7 MB) are far more than the stream buffers hold.
  const big = 'x'.repeat(30_000);
  let parent = t.chain.tip;
  blocks = [];
  for (let i = 0; i < BLOCKS; i++) {
    const entries = [0, 1].map((j) => knowledgeEntry(testKey(10 + j), TEST_NOW - 60_000, `${i}/${j} ${big}`));
    const [b] = forgeChain(t.chain, parent, 1, { entries });
    assert.equal((await t.submit(b!)).status, 'connected');
    blocks.push(b!);
    parent = t.chain.tip;
  }
  const store = {
    readEncodedBlocks: (hashes: readonly Hex[]) => {
      reads += hashes.length;
      return new Map(hashes.map((h) => [h, t.stored.get(h)!.encoded] as const));
    },
  };
  served = { chain: t.chain, store };
  server = await startSide(1);
  const normal = new ServeBudget();
  tight = new ServeBudget({
    blocks: { limit: 200, periodMs: 10_000 },
    bytes: { limit: 1_000_000, periodMs: 10_000 },
    now: () => budgetClock.now,
  });
  const budget = {
    takeBlocks: (p: string, n: number) => (useTight ? tight : normal).takeBlocks(p, n),
    takeBytes: (p: string, n: number) => (useTight ? tight : normal).takeBytes(p, n),
  } as ServeBudget;
  await serveChainProtocols(
    server.rr,
    t.chain,
    store,
    { receiveStatus: (_p: PeerId, s: Status) => s },
    { budget },
  );
});

after(async () => {
  await Promise.all(sides.map((s) => s.host.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const protocol = '/cairn/serve-test/blocks-by-range/1';
/**
 * A request that is never read: the length-prefixed range request, then a paused stream (its
 * muxer grants no more receive window, so what the server writes stays in the server's send
 * window and buffers, as with a reader that does not drain its socket).
 */
async function slowReader(from: Side, startHeight = 1, count = BLOCKS): Promise<Stream> {
  const stream = await from.host.dialProtocol(server.id, protocol);
  stream.pause();
  const req = encodeRangeRequest({ startHeight, count });
  stream.send(Uint8Array.from([req.length, ...req]));
  return stream;
}

test('a full range arrives complete and in order, read from the store a few blocks at a time', async () => {
  const client = await startSide(2);
  await client.host.dial(server.host.getMultiaddrs());
  reads = 0;
  const got = await client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1, count: BLOCKS });
  assert.deepEqual(
    got.map((b) => b.hashHex),
    blocks.map((b) => b.hashHex),
  );
  assert.ok(reads >= BLOCKS - 1, `${reads} blocks read`);
});

test("a chunk longer than the network's block bound is refused from its length prefix and penalised", async () => {
  const client = await startSide(9);
  await client.host.dial(server.host.getMultiaddrs());
  // The served blocks are ~60 KB: valid under the codec's 4 MiB ceiling, not on a 50 KB network.
  const small = forNetwork(BLOCKS_BY_RANGE, 50_000);
  assert.equal(small.maxChunkBytes, 50_000);
  await assert.rejects(
    client.rr.request(server.id, small, { startHeight: 1, count: 4 }),
    (err: unknown) => err instanceof ReqRespError && err.code === 'invalid-response',
  );
  assert.ok(
    client.penalties.some((p) => p.peer === server.id.toString() && p.action === 'low-tolerance'),
    JSON.stringify(client.penalties),
  );
  // The same range on the network the blocks were made for arrives whole.
  const got = await client.rr.request(server.id, forNetwork(BLOCKS_BY_RANGE, 1024 * 1024), {
    startHeight: 1,
    count: 4,
  });
  assert.equal(got.length, 4);
});

test('headers by range: the main chain headers with their hashes, from memory, stopping at the tip', async () => {
  const client = await startSide(6);
  await client.host.dial(server.host.getMultiaddrs());
  reads = 0;
  const got = await client.rr.request(server.id, HEADERS_BY_RANGE, { startHeight: 100, count: 512 });
  assert.deepEqual(
    got.map((h) => [h.header.height, h.hashHex]),
    blocks.slice(99).map((b) => [b.header.height, b.hashHex]),
  );
  assert.equal(reads, 0, 'no store read for headers');
  // Above the protocol's 512 the request is malformed and refused.
  await assert.rejects(client.rr.request(server.id, HEADERS_BY_RANGE, { startHeight: 1, count: 513 }));
});

test('a reader that stops reading pins a bounded number of blocks, then is cut off and penalised', async () => {
  const client = await startSide(3);
  await client.host.dial(server.host.getMultiaddrs());
  reads = 0;
  const stream = await slowReader(client);
  await sleep(1500);
  // The stream and muxer buffers hold a few blocks; the rest is never read from the store.
  const pinned = reads;
  assert.ok(pinned <= 40, `${pinned} of ${BLOCKS} blocks read for a reader that reads nothing`);
  assert.ok(pinned >= SERVE_READ_AHEAD, `${pinned} blocks read: serving did not start`);
  const deadline = Date.now() + 8_000;
  while (!server.penalties.some((p) => p.peer === client.id.toString()) && Date.now() < deadline)
    await sleep(100);
  assert.deepEqual(
    server.penalties.filter((p) => p.peer === client.id.toString()).map((p) => [p.action, p.reason]),
    [['mid-tolerance', 'blocks-by-range: slow reader (no chunk taken in 5000 ms)']],
  );
  assert.ok(server.observed.some((o) => o.outcome === 'write-timeout'));
  assert.equal(reads, pinned, 'nothing more was read after the cut-off');
  stream.abort(new Error('done'));
});

test('16 concurrent streams from one peer: 4 are served, 12 refused with rate-limited and penalised', async () => {
  const client = await startSide(4);
  await client.host.dial(server.host.getMultiaddrs());
  const before = server.observed.length;
  reads = 0;
  const streams = await Promise.all(Array.from({ length: 16 }, () => slowReader(client)));
  await sleep(1000);
  const refused = server.observed.slice(before).filter((o) => o.outcome === 'too-many-streams');
  assert.equal(refused.length, 12);
  const penalties = server.penalties.filter((p) => p.peer === client.id.toString());
  assert.equal(penalties.length, 12);
  assert.ok(penalties.every((p) => p.action === 'high-tolerance' && /concurrent/.test(p.reason)));
  assert.ok(reads <= 4 * 40, `${reads} blocks read for 16 streams that read nothing`);
  for (const s of streams) s.abort(new Error('done'));
  // Once they are gone the peer is served again.
  await sleep(200);
  const got = await client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 4 });
  assert.equal(got.length, 4);
});

test('over the byte budget an answer stops; over the block budget a request is refused whole', async () => {
  const client = await startSide(5);
  await client.host.dial(server.host.getMultiaddrs());
  useTight = true;
  try {
    // 200 blocks and 1 MB per 10 s, blocks of ~60 KB.
    assert.equal(
      (await client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 8 })).length,
      8,
    );
    // 8 + 128 blocks fit the block budget, but the bytes run out after ~8 more: the answer ends
    // with the rate-limited code.
    reads = 0;
    await assert.rejects(
      client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 128 }),
      (err: unknown) =>
        err instanceof ReqRespError && err.code === 'rate-limited' && /byte budget/.test(err.message),
    );
    assert.ok(reads <= 8 + 2 * SERVE_READ_AHEAD, `${reads} blocks read past the byte budget`);
    // 136 + 128 > 200: refused before anything is read.
    reads = 0;
    await assert.rejects(
      client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 128 }),
      (err: unknown) =>
        err instanceof ReqRespError && err.code === 'rate-limited' && /block budget/.test(err.message),
    );
    assert.equal(reads, 0, 'a refused request reads nothing');
    const mine = server.penalties.filter((p) => p.peer === client.id.toString());
    assert.deepEqual(
      mine.map((p) => p.action),
      ['high-tolerance', 'high-tolerance'],
    );
    assert.equal(server.observed.filter((o) => o.outcome === 'rate-limited').length, 2);
    // A new interval, a new budget.
    budgetClock.now += 10_000;
    assert.equal(
      (await client.rr.request(server.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 8 })).length,
      8,
    );
  } finally {
    useTight = false;
    budgetClock = { now: 0 };
  }
});

test('an answer ends, short, before it would exceed the response byte bound; the rest follows on asking', async () => {
  // A server whose answers carry at most 1 MB: ~16 of the ~60 KB blocks.
  const bounded = await startSide(7);
  await serveChainProtocols(
    bounded.rr,
    served.chain,
    served.store,
    { receiveStatus: (_p: PeerId, s: Status) => s },
    { maxResponseBytes: 1_000_000 },
  );
  // The requester uses the same spec as against any server.
  const client = await startSide(8);
  const rr = client.rr;
  await client.host.dial(bounded.host.getMultiaddrs());
  const first = await rr.request(bounded.id, BLOCKS_BY_RANGE, { startHeight: 1, count: BLOCKS });
  const bytes = first.reduce((n, b) => n + b.encoded.length, 0);
  assert.ok(first.length > 1 && first.length < BLOCKS, `${first.length} blocks`);
  assert.ok(bytes <= 1_000_000, `${bytes} bytes in one answer`);
  assert.ok(bytes + blocks[first.length]!.encoded.length > 1_000_000, 'it ended at the bound, not before');
  assert.deepEqual(
    first.map((b) => b.hashHex),
    blocks.slice(0, first.length).map((b) => b.hashHex),
  );
  const rest = await rr.request(bounded.id, BLOCKS_BY_RANGE, {
    startHeight: first.length + 1,
    count: BLOCKS - first.length,
  });
  assert.equal(
    rest[0]!.hashHex,
    blocks[first.length]!.hashHex,
    'the next answer continues from the next height',
  );
  assert.deepEqual(client.penalties, [], 'a short answer is no offence');
});

test('a requester refuses an answer over its response byte bound, from the chunk that would exceed it', async () => {
  const client = await startSide(10);
  await client.host.dial(server.host.getMultiaddrs());
  // The server sends 128 × ~60 KB (7.7 MB, within its 8 MiB); this requester takes 500 KB.
  assert.equal(BLOCKS_BY_RANGE.maxResponseBytes, MAX_BLOCK_RESPONSE_BYTES);
  const strict = { ...BLOCKS_BY_RANGE, maxResponseBytes: 500_000 };
  await assert.rejects(
    client.rr.request(server.id, strict, { startHeight: 1, count: BLOCKS }),
    (err: unknown) =>
      err instanceof ReqRespError &&
      err.code === 'invalid-response' &&
      /answer over 500000 bytes/.test(err.message),
  );
  assert.deepEqual(
    client.penalties.filter((p) => p.peer === server.id.toString()).map((p) => p.action),
    ['low-tolerance'],
  );
  // forNetwork keeps room for one block of the network's largest size.
  assert.equal(forNetwork({ ...BLOCKS_BY_RANGE, maxResponseBytes: 1000 }, 50_000).maxResponseBytes, 50_000);
});
