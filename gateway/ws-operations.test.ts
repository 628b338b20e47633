/**
 * graphql-ws carries queries and mutations as well as subscriptions (a `subscribe` message with
 * any operation). They failed with "[useResponseCache] This plugin is not configured correctly"
 * and the socket closed: the response cache keys results by what yoga's HTTP path records, which
 * a WebSocket operation never passes through. Real server on loopback, real Redis.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { collect, startTestGateway, type TestGateway, wsClient } from './testing.ts';
import { sha256Hex } from './tokens.ts';

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({
    seed: { blocks: 3 },
    tokens: [{ name: 'op', role: 'operator', sha256: sha256Hex('op-token') }],
  });
});
after(() => gw.close());

test('a query over graphql-ws is answered, twice on one socket (cache on for HTTP)', async () => {
  const client = wsClient(gw.wsUrl);
  try {
    for (let i = 0; i < 2; i++) {
      const q = collect<{ _meta: { height: number } }>(client, '{ _meta { height } }');
      assert.equal(await q.done, undefined, 'completed, not errored');
      assert.deepEqual(q.results, [{ data: { _meta: { height: 2 } } }]);
    }
    // HTTP still answers the same (the response cache there is untouched).
    const r = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ _meta { height } }' }),
    });
    assert.deepEqual(await r.json(), { data: { _meta: { height: 2 } } });
  } finally {
    await client.dispose();
  }
});

test('a mutation over graphql-ws runs its resolver (typed error for an unknown node)', async () => {
  const client = wsClient(gw.wsUrl, { authorization: 'Bearer op-token' });
  try {
    const m = collect(client, 'mutation { syncChain(nodeId: "12D3KooWnobody") { state } }');
    assert.equal(await m.done, undefined, 'completed, not errored');
    assert.equal(m.results[0]?.errors?.[0]?.extensions?.code, 'UNKNOWN_NODE');
    // The socket stayed open: another operation on it works.
    const q = collect(client, '{ _meta { height } }');
    assert.equal(await q.done, undefined);
    assert.deepEqual(q.results, [{ data: { _meta: { height: 2 } } }]);
  } finally {
    await client.dispose();
  }
});
