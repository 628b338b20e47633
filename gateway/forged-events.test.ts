/**
 * Redis pub/sub has no author: a bare PUBLISH on `<ns>.cairn.*` reaches every gateway. Events are
 * hints, so a subscriber gets the row the index holds for the event's key, and nothing for a key
 * the index does not hold; the event's other fields are never shown.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { TOPICS } from '../jobs/events.ts';
import { createRedis } from '../jobs/redis.ts';
import { blockHash, collect, publishUntil, startTestGateway, type TestGateway, wsClient } from './testing.ts';

let gw: TestGateway;
let redis: Redis;
before(async () => {
  gw = await startTestGateway({ seed: { blocks: 3, nodes: 2, stats: 2 } });
  redis = createRedis();
});
after(async () => {
  redis.disconnect();
  await gw.close();
});

/**
 * Publishes a forged event then a genuine key (decked with forged fields) in that order, on one
 * connection (Redis keeps the order), until the subscription yields: a forged event that got
 * through would be the first result.
 */
async function firstResult<T>(query: string, topic: string, forged: object, genuine: object): Promise<T[]> {
  const c = wsClient(gw.wsUrl);
  const s = collect<T>(c, query);
  const channel = `${gw.namespace}.${topic}`;
  try {
    await publishUntil(
      () =>
        void redis
          .pipeline()
          .publish(channel, JSON.stringify(forged))
          .publish(channel, JSON.stringify(genuine))
          .exec(),
      () => s.results.length > 0,
      `the genuine ${topic} event`,
    );
    // Let anything queued behind arrive before looking.
    await new Promise((r) => setTimeout(r, 200));
    for (const r of s.results) assert.equal(r.errors, undefined, JSON.stringify(r.errors));
    return s.results.map((r) => r.data!);
  } finally {
    s.dispose();
    await c.dispose();
  }
}

test('a newBlock for a block the index lacks is dropped; a known one shows the indexed row', async () => {
  const fake = { hash: 'ee'.repeat(32), height: 999_999, canonical: true, totalWork: `1${'0'.repeat(70)}` };
  const real = { ...fake, hash: blockHash(2) };
  const got = await firstResult<{ newBlock: { hash: string; height: number; totalWork: string } }>(
    'subscription { newBlock { hash height totalWork } }',
    TOPICS.newBlock,
    fake,
    real,
  );
  const row = await gw.db.block.findUniqueOrThrow({ where: { hash: blockHash(2) } });
  assert.ok(got.length > 0);
  for (const g of got) assert.deepEqual(g.newBlock, { hash: row.hash, height: 2, totalWork: row.totalWork });
});

test('malformed keys are dropped without a query error reaching subscribers', async () => {
  const got = await firstResult<{ newBlock: { hash: string } }>(
    'subscription { newBlock { hash } }',
    TOPICS.newBlock,
    { hash: { contains: '' } },
    { hash: blockHash(1) },
  );
  assert.deepEqual(
    got.map((g) => g.newBlock.hash),
    got.map(() => blockHash(1)),
  );
});

test('a nodeStatus for an unknown node is dropped; a known one shows the indexed row', async () => {
  const [known] = await gw.db.node.findMany({ take: 1, orderBy: { id: 'asc' } });
  const got = await firstResult<{ nodeStatus: { id: string; height: number } }>(
    'subscription { nodeStatus { id height } }',
    TOPICS.nodeStatus,
    { id: '12D3KooWforged', height: 999_999 },
    { id: known!.id, height: 999_999 },
  );
  for (const g of got) assert.deepEqual(g.nodeStatus, { id: known!.id, height: known!.height });
});

test('a networkStats event names a stats row by id; an unknown id is dropped', async () => {
  const latest = await gw.db.networkStats.findFirstOrThrow({ orderBy: { id: 'desc' } });
  const got = await firstResult<{ networkStats: { totalNodes: number } }>(
    'subscription { networkStats { totalNodes } }',
    TOPICS.networkStats,
    { id: latest.id + 1000, totalNodes: 999_999 },
    { id: latest.id, totalNodes: 999_999 },
  );
  for (const g of got) assert.equal(g.networkStats.totalNodes, latest.totalNodes);
});
