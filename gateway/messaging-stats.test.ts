/**
 * `messagingStats` (schema/messaging.ts) over a real gateway server, real Redis and a real index:
 * the figures the collector indexed, for viewers only, as a query and as a subscription that
 * follows nodeStatus events and leaves out nodes whose reports carry no messaging figures.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { TOPICS } from '../jobs/events.ts';
import { createRedis } from '../jobs/redis.ts';
import { collect, gql, publishUntil, startTestGateway, type TestGateway, wsClient } from './testing.ts';
import { sha256Hex } from './tokens.ts';

let gw: TestGateway;
let redis: Redis;
let ids: string[];
const viewer = { authorization: 'Bearer viewer-token' };
const FIELDS =
  'nodeId sent delivered pending latencyP50Ms latencyP99Ms latencySamples mailbox { items bytes capacityBytes used }';

before(async () => {
  gw = await startTestGateway({
    seed: { blocks: 2, nodes: 3, stats: 1 },
    tokens: [{ name: 'dash', role: 'viewer', sha256: sha256Hex('viewer-token') }],
    tokenRateLimit: null,
  });
  redis = createRedis();
  ids = (await gw.db.node.findMany({ orderBy: { id: 'asc' }, select: { id: true } })).map((n) => n.id);
  // Node 0 is a mailbox with receipts, node 1 sends but has no receipt yet, node 2 reports none.
  await gw.db.node.update({
    where: { id: ids[0]! },
    data: {
      msgSent: 120,
      msgDelivered: 118,
      msgPending: 2,
      msgLatencyP50Ms: 4.5,
      msgLatencyP99Ms: 38,
      msgLatencySamples: 118,
      msgMailboxItems: 9,
      msgMailboxBytes: 64 * 1024 * 1024,
      msgMailboxCapacityBytes: 256 * 1024 * 1024,
    },
  });
  await gw.db.node.update({ where: { id: ids[1]! }, data: { msgSent: 3, msgDelivered: 0, msgPending: 3 } });
});
after(async () => {
  redis.disconnect();
  await gw.close();
});

const EXPECTED = () => [
  {
    nodeId: ids[0],
    sent: 120,
    delivered: 118,
    pending: 2,
    latencyP50Ms: 4.5,
    latencyP99Ms: 38,
    latencySamples: 118,
    mailbox: { items: 9, bytes: 64 * 1024 * 1024, capacityBytes: 256 * 1024 * 1024, used: 0.25 },
  },
  {
    nodeId: ids[1],
    sent: 3,
    delivered: 0,
    pending: 3,
    latencyP50Ms: null,
    latencyP99Ms: null,
    latencySamples: 0,
    mailbox: null,
  },
];

test('messagingStats lists the nodes whose reports carried figures, by id; Node.messaging is the same', async () => {
  const r = await gql(`${gw.url}`, `{ messagingStats { ${FIELDS} } }`, undefined, viewer);
  assert.equal(r.body.errors, undefined, JSON.stringify(r.body.errors));
  assert.deepEqual(r.body.data!.messagingStats, EXPECTED());
  const n = await gql(
    gw.url,
    'query($a: ID!, $b: ID!) { a: node(id: $a) { messaging { sent pending } } b: node(id: $b) { messaging { sent } } }',
    { a: ids[1], b: ids[2] },
    viewer,
  );
  assert.equal(n.body.errors, undefined, JSON.stringify(n.body.errors));
  assert.deepEqual(n.body.data, { a: { messaging: { sent: 3, pending: 3 } }, b: { messaging: null } });
});

test('anonymous callers get no messaging figures, as a query or a Node field', async () => {
  for (const doc of [
    '{ messagingStats { nodeId sent } }',
    `{ nodes(first: 3) { edges { node { messaging { sent } } } } }`,
  ]) {
    const r = await gql(gw.url, doc);
    assert.ok(r.body.errors?.length, doc);
    assert.equal(r.body.errors![0]!.extensions?.code, 'FORBIDDEN', JSON.stringify(r.body.errors));
  }
});

test('the messagingStats subscription yields a node with figures after its nodeStatus event, and skips one without', async () => {
  const c = wsClient(gw.wsUrl, viewer);
  const s = collect<{ messagingStats: { nodeId: string; sent: number } }>(
    c,
    'subscription { messagingStats { nodeId sent } }',
  );
  const channel = `${gw.namespace}.${TOPICS.nodeStatus}`;
  try {
    await publishUntil(
      () =>
        void redis
          .pipeline()
          .publish(channel, JSON.stringify({ id: ids[2] }))
          .publish(channel, JSON.stringify({ id: ids[0], msgSent: 999_999 }))
          .exec(),
      () => s.results.length > 0,
      'a messagingStats event',
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(s.results.length > 0);
    for (const r of s.results) {
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      // Node 2 reports no figures; the forged field never shows: the indexed row does.
      assert.deepEqual(r.data!.messagingStats, { nodeId: ids[0], sent: 120 });
    }
  } finally {
    s.dispose();
    await c.dispose();
  }
});

test('an anonymous messagingStats subscription is refused at subscribe', async () => {
  const c = wsClient(gw.wsUrl);
  const s = collect(c, 'subscription { messagingStats { nodeId } }');
  try {
    const end = await Promise.race([s.done, new Promise((r) => setTimeout(() => r('timeout'), 5_000))]);
    assert.notEqual(end, 'timeout');
    const errs = Array.isArray(end) ? end : (s.results[0]?.errors ?? []);
    assert.match(JSON.stringify(errs), /Not authorized: Subscription\.messagingStats/);
  } finally {
    s.dispose();
    await c.dispose();
  }
});
