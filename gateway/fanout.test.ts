import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type BlockEvent, TOPICS, toEvent } from '../jobs/events.ts';
import { createCairnPubSub } from '../jobs/pubsub.ts';
import {
  blockHash,
  collect,
  publishUntil,
  startTestGateway,
  type TestGateway,
  testNamespace,
  waitFor,
  wsClient,
} from './testing.ts';

// Two gateway servers (two ports) over the same Redis namespace and the same index DB file.
let a: TestGateway;
let b: TestGateway;

before(async () => {
  const ns = testNamespace();
  b = await startTestGateway({ namespace: ns, seed: { blocks: 5 } });
  a = await startTestGateway({ namespace: ns, location: b.location });
});
after(async () => {
  await a.close();
  await b.close();
});

const event = async (height: number): Promise<BlockEvent & { receivedAt: string }> =>
  toEvent(await b.db.block.findUniqueOrThrow({ where: { hash: blockHash(height) } }));

type NewBlock = {
  newBlock: { hash: string; height: number; receivedAt: string; entries: { content: string }[] };
};

test('a newBlock subscriber on instance A receives events published through instance B and by a third party', async () => {
  assert.notEqual(a.url, b.url);
  const client = wsClient(a.wsUrl);
  const sub = collect<NewBlock>(
    client,
    'subscription { newBlock { hash height receivedAt entries { content } } }',
  );
  try {
    // Publish through B's bus until A's subscription is live (Redis SUBSCRIBE is asynchronous).
    const viaB = await event(3);
    await publishUntil(
      () => b.server.pubsub.publish(TOPICS.newBlock, viaB),
      () => sub.results.length > 0,
      'the event published through B',
    );
    const first = sub.results[0]!.data!.newBlock;
    assert.equal(first.hash, blockHash(3));
    assert.equal(first.receivedAt, viaB.receivedAt);
    // Events carry no entries: Block.entries loads them from the DB.
    assert.deepEqual(
      first.entries.map((e) => e.content),
      ['fact 3.0', 'fact 3.1'],
    );

    // A third party publishing as the collector does: its own createCairnPubSub, same namespace.
    const collector = createCairnPubSub(undefined, a.namespace);
    try {
      const seen = sub.results.length;
      collector.pubsub.publish(TOPICS.newBlock, await event(4));
      await waitFor(
        () => sub.results.slice(seen).some((r) => r.data?.newBlock.height === 4),
        5000,
        'the collector event',
      );
    } finally {
      await collector.close();
    }
  } finally {
    sub.dispose();
    await client.dispose();
  }
});

test('an instance in another namespace does not receive the events', async () => {
  const other = await startTestGateway({ seed: false });
  const client = wsClient(other.wsUrl);
  const sub = collect<NewBlock>(client, 'subscription { newBlock { height } }');
  try {
    await new Promise((r) => setTimeout(r, 300));
    b.server.pubsub.publish(TOPICS.newBlock, await event(2));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(sub.results.length, 0);
  } finally {
    sub.dispose();
    await client.dispose();
    await other.close();
  }
});
