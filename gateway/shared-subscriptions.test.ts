import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GraphQLError, parse } from 'graphql';
import { Registry } from 'prom-client';
import { TOPICS, toEvent } from '../jobs/events.ts';
import { MAX_QUEUED, sharedSubscriptionMetrics, useSharedSubscriptions } from './shared-subscriptions.ts';
import {
  blockHash,
  collect,
  publishUntil,
  startTestGateway,
  type TestGateway,
  waitFor,
  wsClient,
} from './testing.ts';
import { sha256Hex } from './tokens.ts';

const VIEWER = 'viewer-secret-shared';
const ADMIN = 'admin-secret-shared';
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
type NewBlock = { newBlock: { height: number; entries: { content: string }[] } };
const QUERY = 'subscription { newBlock { height entries { content } } }';

describe('subscribers of the same document and role share one execution', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({
      seed: { blocks: 6 },
      tokens: [
        { name: 'v', role: 'viewer', sha256: sha256Hex(VIEWER) },
        { name: 'a', role: 'admin', sha256: sha256Hex(ADMIN) },
      ],
    });
  });
  after(() => gw.close());

  const metric = async (name: string, label = '') => {
    const text = await (
      await fetch(gw.url.replace('/graphql', '/metrics'), { headers: bearer(ADMIN) })
    ).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${label} `));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  };
  const event = async (height: number) =>
    toEvent(await gw.db.block.findUniqueOrThrow({ where: { hash: blockHash(height) } }));

  test('three viewers share a stream, an admin gets its own; each sees every event; leaving ends only its own', async () => {
    const newBefore = await metric('cairn_gateway_subscriptions_joined_total', '{how="new"}');
    const sharedBefore = await metric('cairn_gateway_subscriptions_joined_total', '{how="shared"}');
    const clients = [bearer(VIEWER), bearer(VIEWER), bearer(VIEWER), bearer(ADMIN)].map((p) =>
      wsClient(gw.wsUrl, p),
    );
    const subs = clients.map((c) => collect<NewBlock>(c, QUERY));
    try {
      const e3 = await event(3);
      await publishUntil(
        () => gw.server.pubsub.publish(TOPICS.newBlock, e3),
        () => subs.every((s) => s.results.length > 0),
        'every subscriber live',
      );
      // One upstream for the viewers' key and one for the admin's.
      assert.equal((await metric('cairn_gateway_subscriptions_joined_total', '{how="new"}')) - newBefore, 2);
      assert.equal(
        (await metric('cairn_gateway_subscriptions_joined_total', '{how="shared"}')) - sharedBefore,
        2,
      );
      assert.equal(await metric('cairn_gateway_shared_streams'), 2);
      for (const s of subs)
        assert.deepEqual(s.results[0]!.data!.newBlock, {
          height: 3,
          entries: [{ content: 'fact 3.0' }, { content: 'fact 3.1' }],
        });

      // The first viewer (whose subscribe started the shared stream) leaves: the others go on.
      subs[0]!.dispose();
      const seen = subs.map((s) => s.results.length);
      gw.server.pubsub.publish(TOPICS.newBlock, await event(4));
      await waitFor(
        () =>
          subs
            .slice(1)
            .every((s, i) => s.results.slice(seen[i + 1]!).some((r) => r.data?.newBlock.height === 4)),
        5_000,
        'block 4 at the remaining subscribers',
      );
      assert.equal(subs[0]!.results.length, seen[0], 'the one that left gets nothing more');
      // The last viewers leave: their upstream ends; the admin's stays.
      subs[1]!.dispose();
      subs[2]!.dispose();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(await metric('cairn_gateway_shared_streams'), 1);
      // A viewer arriving now starts a new stream (none to join).
      const late = collect<NewBlock>(clients[1]!, QUERY);
      try {
        const e5 = await event(5);
        await publishUntil(
          () => gw.server.pubsub.publish(TOPICS.newBlock, e5),
          () => late.results.some((r) => r.data?.newBlock.height === 5),
          'the late viewer',
        );
        assert.equal(
          (await metric('cairn_gateway_subscriptions_joined_total', '{how="new"}')) - newBefore,
          3,
        );
      } finally {
        late.dispose();
      }
    } finally {
      for (const s of subs) s.dispose();
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  test('different variables or documents are not shared', async () => {
    const before = await metric('cairn_gateway_subscriptions_joined_total', '{how="new"}');
    const c = wsClient(gw.wsUrl, bearer(VIEWER));
    const a = collect<NewBlock>(c, 'subscription { newBlock { height } }');
    const b = collect<NewBlock>(c, 'subscription { newBlock { height hash } }');
    try {
      const e2 = await event(2);
      await publishUntil(
        () => gw.server.pubsub.publish(TOPICS.newBlock, e2),
        () => a.results.length > 0 && b.results.length > 0,
        'both live',
      );
      assert.equal((await metric('cairn_gateway_subscriptions_joined_total', '{how="new"}')) - before, 2);
      assert.equal(Object.keys(a.results[0]!.data!.newBlock).length, 1);
      assert.equal(Object.keys(b.results[0]!.data!.newBlock).length, 2);
    } finally {
      a.dispose();
      b.dispose();
      await c.dispose();
    }
  });
});

describe('the shared stream itself (envelop plugin over a real async source)', () => {
  // Drives the plugin's subscribe wrapper the way envelop does: onSubscribe, then the set function.
  const subscribeThrough = (plugin: ReturnType<typeof useSharedSubscriptions>, source: () => unknown) => {
    let fn: ((a: unknown) => unknown) | undefined;
    const args = { contextValue: {}, document: parse(QUERY), operationName: undefined, variableValues: {} };
    (plugin.onSubscribe as (p: unknown) => void)({
      args,
      subscribeFn: async () => source(),
      setSubscribeFn: (f: (a: unknown) => unknown) => {
        fn = f;
      },
    });
    return fn!(args) as Promise<AsyncIterableIterator<unknown>>;
  };

  function channel() {
    const waiting: ((v: IteratorResult<unknown>) => void)[] = [];
    const buffered: unknown[] = [];
    let returned = false;
    const it: AsyncIterableIterator<unknown> = {
      next: () =>
        buffered.length
          ? Promise.resolve({ value: buffered.shift(), done: false })
          : new Promise((r) => waiting.push(r)),
      return: async () => {
        returned = true;
        for (const w of waiting.splice(0)) w({ value: undefined, done: true });
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]: () => it,
    };
    return {
      it,
      push: (v: unknown) => {
        const w = waiting.shift();
        if (w) w({ value: v, done: false });
        else buffered.push(v);
      },
      returned: () => returned,
    };
  }

  test(`a subscriber ${MAX_QUEUED} results behind is ended with SLOW_SUBSCRIBER; the others are not held up`, async () => {
    const metrics = sharedSubscriptionMetrics(new Registry());
    const plugin = useSharedSubscriptions(() => 'viewer', metrics);
    const ch = channel();
    const fast = await subscribeThrough(plugin, () => ch.it);
    const slow = await subscribeThrough(plugin, () => assert.fail('the second subscriber must join'));
    const got: unknown[] = [];
    const reading = (async () => {
      for await (const v of fast) got.push(v);
    })();
    for (let i = 0; i <= MAX_QUEUED; i++) {
      ch.push({ data: i });
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(got.length, MAX_QUEUED + 1, 'the reading subscriber got every result');
    assert.equal((await metrics.slow.get()).values[0]?.value, 1);
    // The slow one reads its queue, then its error, then the end.
    const slowGot: unknown[] = [];
    for await (const v of slow) slowGot.push(v);
    assert.equal(slowGot.length, MAX_QUEUED + 1);
    const last = slowGot.at(-1) as { errors: GraphQLError[] };
    assert.equal(last.errors[0]!.extensions.code, 'SLOW_SUBSCRIBER');
    assert.equal(ch.returned(), false, 'the upstream goes on for the reader');
    await fast.return!();
    await reading;
    assert.equal(ch.returned(), true, 'the last subscriber leaving ends the upstream');
    assert.equal((await metrics.streams.get()).values[0]?.value, 0);
  });

  test('an error result is the subscriber’s own and starts no stream', async () => {
    const metrics = sharedSubscriptionMetrics(new Registry());
    const plugin = useSharedSubscriptions(() => 'viewer', metrics);
    const refused = { errors: [new GraphQLError('no')] };
    assert.equal(await subscribeThrough(plugin, () => refused), refused);
    const ch = channel();
    const it = await subscribeThrough(plugin, () => ch.it);
    assert.equal((await metrics.streams.get()).values[0]?.value, 1);
    await it.return!();
  });
});
