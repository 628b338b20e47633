/**
 * The read cache and the response cache drop only what an event touches: a stats event leaves
 * a cached block query alone, a newBlock event evicts it. Real Redis pub/sub, a real gateway.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TOPICS, type Topic, toEvent } from '../jobs/events.ts';
import { schema } from '../schema/index.ts';
import { TOPIC_TYPES } from './read-cache.ts';
import { blockHash, gql, startTestGateway, type TestGateway } from './testing.ts';

let gw: TestGateway;
before(async () => {
  // A TTL far beyond the test: only events make cached reads go.
  gw = await startTestGateway({ seed: { blocks: 5 }, cacheTtlMs: 120_000 });
});
after(() => gw.close());

const BLOCKS = '{ blockConnection(first: 3) { edges { node { hash height } } } }';
const STATS = '{ networkStats { difficulty } }';
const topBlock = async () =>
  (await gql(gw.url, BLOCKS)).body.data.blockConnection.edges[0].node.hash as string;
const difficulty = async () => (await gql(gw.url, STATS)).body.data.networkStats.difficulty as number;

/** Publishes `payload` on `topic` until `seen` holds (SUBSCRIBE is asynchronous, events can be missed). */
async function publishUntilSeen(topic: Topic, payload: unknown, seen: () => Promise<boolean>) {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    gw.server.pubsub.publish(topic, payload as never);
    await new Promise((r) => setTimeout(r, 100));
    if (await seen()) return;
  }
  throw new Error(`the ${topic} event never took effect`);
}

test('a stats event evicts stats reads, not an unrelated block query; a newBlock event does', async () => {
  assert.equal(await topBlock(), blockHash(4));
  const before = await difficulty();
  // New rows behind the caches' back: cached answers stay the old ones until an event.
  const head = await gw.db.block.findUniqueOrThrow({ where: { hash: blockHash(4) } });
  const next = await gw.db.block.create({
    data: { ...head, hash: blockHash(5), height: 5, prevHash: head.hash, totalWork: '999999' },
  });
  const stats = await gw.db.networkStats.create({
    data: {
      ...(await gw.db.networkStats.findFirstOrThrow({ select: { totalNodes: true } })),
      at: new Date(),
      chainLengthMin: 5,
      chainLengthMax: 5,
      chainLengthAvg: 5,
      avgPeers: 1,
      target: '1',
      difficulty: before + 1000,
      hashRate: 1,
      mempoolTotal: 0,
      mempoolMin: 0,
      mempoolMax: 0,
    },
  });
  assert.equal(await topBlock(), blockHash(4), 'cached');
  assert.equal(await difficulty(), before, 'cached');

  await publishUntilSeen(
    TOPICS.networkStats,
    toEvent(stats),
    async () => (await difficulty()) === before + 1000,
  );
  assert.equal(await topBlock(), blockHash(4), 'the stats event left the block query cached');

  await publishUntilSeen(TOPICS.newBlock, toEvent(next), async () => (await topBlock()) === blockHash(5));
});

test('every type an event evicts is a type of the schema', () => {
  for (const [topic, types] of Object.entries(TOPIC_TYPES))
    for (const t of types) assert.ok(schema.getType(t), `${topic}: ${t}`);
});

test('a null answer is evicted by the event that can make it non-null', async () => {
  const NODE = '{ node(id: "12D3KooWlate") { id height } }';
  assert.equal((await gql(gw.url, NODE)).body.data.node, null);
  const row = await gw.db.node.create({
    data: { ...(await gw.db.node.findFirstOrThrow()), id: '12D3KooWlate', height: 77 },
  });
  assert.equal((await gql(gw.url, NODE)).body.data.node, null, 'cached');
  await publishUntilSeen(
    TOPICS.nodeStatus,
    toEvent(row),
    async () => (await gql(gw.url, NODE)).body.data.node?.height === 77,
  );
});

test('a newBlock event evicts topics and entries answers, whatever types they select', async () => {
  const TOPICS_Q = '{ topics(key: "t18") { value count } }';
  const PAGE = '{ entries(filter: { metadata: [{ key: "t18" }] }) { pageInfo { startCursor } } }';
  const topics = async () => (await gql(gw.url, TOPICS_Q)).body.data.topics as unknown[];
  const start = async () => (await gql(gw.url, PAGE)).body.data.entries.pageInfo.startCursor as string | null;
  assert.deepEqual(await topics(), []);
  assert.equal(await start(), null);
  const head = await gw.db.block.findFirstOrThrow({ orderBy: { height: 'desc' } });
  const block = await gw.db.block.create({
    data: {
      ...head,
      hash: blockHash(60),
      height: head.height + 1,
      prevHash: head.hash,
      totalWork: '9999999',
    },
  });
  const payload = JSON.stringify({ kind: 'knowledge', content: 'neu', metadata: [['t18', 'x']] });
  await gw.db.entry.create({
    data: {
      id: 'e18'.padEnd(64, '0'),
      blockHash: block.hash,
      position: 0,
      kind: 'knowledge',
      author: 'ab'.repeat(32),
      timestamp: new Date(),
      payload,
      signature: 'cd'.repeat(64),
      searchText: 'neu',
      metadata: { create: [{ key: 't18', value: 'x' }] },
    },
  });
  assert.deepEqual(await topics(), [], 'cached');
  assert.equal(await start(), null, 'cached');
  await publishUntilSeen(TOPICS.newBlock, toEvent(block), async () => (await topics()).length === 1);
  assert.notEqual(await start(), null);
});
