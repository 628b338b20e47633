/**
 * Subscriptions are capped per caller and per WebSocket. Paced under the rate limit, one viewer
 * socket used to hold 3,000 `newBlock` subscriptions (an attack review's finding): every event
 * was serialised 3,000 times for it and an honest subscriber waited 15.8 s per block. Real
 * gateway on loopback, real Redis, graphql-ws and SSE.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SubscriptionLimiter } from './subscription-limit.ts';
import { collect, startTestGateway, type TestGateway, waitFor, wsClient } from './testing.ts';
import { sha256Hex } from './tokens.ts';

describe('SubscriptionLimiter', () => {
  test('a caller holds at most perCaller; a release frees exactly one slot, once', () => {
    const l = new SubscriptionLimiter({ perCaller: 2 });
    const me = { kind: 'token', id: 'abc' } as const;
    const a = l.acquire(me);
    const b = l.acquire(me);
    assert.equal(typeof a, 'function');
    assert.equal(typeof b, 'function');
    const c = l.acquire(me);
    assert.equal(typeof c === 'function' ? 'granted' : c.reason, 'per-caller');
    assert.equal(typeof l.acquire({ kind: 'token', id: 'other' }), 'function', 'another token is apart');
    (a as () => void)();
    (a as () => void)();
    assert.equal(l.heldBy(me), 1, 'a second release of the same slot frees nothing');
    assert.equal(typeof l.acquire(me), 'function');
  });

  test('anonymous callers are keyed by host (an IPv6 /64 is one host); unknown addresses are not capped', () => {
    const l = new SubscriptionLimiter({ perCaller: 1 });
    assert.equal(typeof l.acquire({ kind: 'anonymous', address: '2001:db8:1:2::1' }), 'function');
    const again = l.acquire({ kind: 'anonymous', address: '2001:db8:1:2::ffff' });
    assert.equal(typeof again === 'function' ? 'granted' : again.reason, 'per-caller');
    for (let i = 0; i < 5; i++)
      assert.equal(typeof l.acquire({ kind: 'anonymous', address: undefined }), 'function');
    assert.equal(l.callers, 1);
  });

  test('all of loopback is one anonymous host (127.0.0.0/8, ::1, IPv4-mapped)', () => {
    const l = new SubscriptionLimiter({ perCaller: 2 });
    assert.equal(typeof l.acquire({ kind: 'anonymous', address: '127.0.0.2' }), 'function');
    assert.equal(typeof l.acquire({ kind: 'anonymous', address: '::1' }), 'function');
    for (const address of ['127.0.0.3', '::ffff:127.0.0.4', '127.9.9.9']) {
      const r = l.acquire({ kind: 'anonymous', address });
      assert.equal(typeof r === 'function' ? 'granted' : r.reason, 'per-caller', address);
    }
  });

  test('the gateway holds at most `anonymous` subscriptions without a token and `total` in all', () => {
    const l = new SubscriptionLimiter({ perCaller: 1, anonymous: 3, total: 5 });
    const slots: (() => void)[] = [];
    const take = (c: Parameters<typeof l.acquire>[0]) => {
      const r = l.acquire(c);
      if (typeof r === 'function') slots.push(r);
      return typeof r === 'function' ? 'granted' : r.reason;
    };
    // Three hosts, one each: the anonymous ceiling, whatever the per-caller cap allows.
    for (let i = 1; i <= 3; i++)
      assert.equal(take({ kind: 'anonymous', address: `192.0.2.${i}` }), 'granted');
    assert.equal(take({ kind: 'anonymous', address: '192.0.2.4' }), 'anonymous-total');
    assert.equal(
      take({ kind: 'anonymous', address: undefined }),
      'anonymous-total',
      'unknown addresses count too',
    );
    // Tokens still get in, up to the total.
    assert.equal(take({ kind: 'token', id: 'a' }), 'granted');
    assert.equal(take({ kind: 'token', id: 'b' }), 'granted');
    assert.equal(take({ kind: 'token', id: 'c' }), 'total');
    assert.deepEqual(l.open, { total: 5, anonymous: 3 });
    slots[0]!();
    slots[0]!();
    assert.deepEqual(l.open, { total: 4, anonymous: 2 }, 'a release frees one slot of each, once');
    assert.equal(take({ kind: 'anonymous', address: '192.0.2.4' }), 'granted');
  });

  test('a socket may run perSocket operations at once', () => {
    const l = new SubscriptionLimiter({ perSocket: 3 });
    assert.equal(l.checkSocket(3), undefined);
    assert.equal(l.checkSocket(4)?.reason, 'per-socket');
  });
});

describe('the gateway', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({
      seed: { blocks: 2 },
      tokens: [{ name: 'viewer', role: 'viewer', sha256: sha256Hex('viewer-token') }],
      subscriptionLimits: { perSocket: 5, perCaller: 8 },
    });
  });
  after(() => gw.close());

  const refusedCount = async (reason: string) => {
    const text = await (await fetch(gw.url.replace('/graphql', '/metrics'))).text();
    const line = text
      .split('\n')
      .find((l) => l.startsWith(`cairn_gateway_refused_total{reason="${reason}"}`));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  test('one socket: the 6th concurrent operation is refused, the socket stays usable', async () => {
    const client = wsClient(gw.wsUrl, { authorization: 'Bearer viewer-token' });
    try {
      const subs = Array.from({ length: 5 }, () => collect(client, 'subscription { newBlock { hash } }'));
      const sixth = collect(client, 'subscription { newBlock { hash } }');
      const err = (await sixth.done) as
        | { message?: string }
        | readonly { message: string; extensions?: { code?: string } }[];
      const first = Array.isArray(err) ? err[0] : err;
      assert.match(String((first as { message?: string })?.message), /at most 5 at once/);
      assert.equal(await refusedCount('subscriptions-per-socket'), 1);
      // Ending one frees its place on the socket.
      subs[0]!.dispose();
      await waitFor(() => true, 0, '');
      let retried: ReturnType<typeof collect> | undefined;
      const deadline = Date.now() + 5000;
      for (;;) {
        retried = collect(client, '{ _meta { height } }');
        const done = await retried.done;
        if (done === undefined) break;
        if (Date.now() > deadline) assert.fail(`no slot came free: ${JSON.stringify(done)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual(retried.results, [{ data: { _meta: { height: 1 } } }]);
      for (const s of subs) s.dispose();
    } finally {
      await client.dispose();
    }
  });

  test('one token: at most 8 subscriptions over its sockets and SSE; closing a socket frees them', async () => {
    const auth = { authorization: 'Bearer viewer-token' };
    const sockets = [wsClient(gw.wsUrl, auth), wsClient(gw.wsUrl, auth)];
    const sse: AbortController[] = [];
    try {
      for (const s of sockets) for (let i = 0; i < 4; i++) collect(s, 'subscription { newBlock { hash } }');
      const held = () => gw.server.gateway.subscriptions.heldBy({ kind: 'token', id: tokenId() });
      await waitFor(() => held() === 8, 5000, 'eight subscriptions held');
      // A ninth on the second socket (under its per-socket cap) is refused for the caller.
      const ninth = collect(sockets[1]!, 'subscription { newBlock { hash } }');
      assert.equal(await ninth.done, undefined, 'answered with an error result and completed');
      assert.equal(ninth.results[0]?.errors?.[0]?.extensions?.code, 'SUBSCRIPTION_LIMIT');
      assert.match(String(ninth.results[0]?.errors?.[0]?.message), /at most 8 per caller/);
      // So is one over SSE: the same caller's slots, whatever the transport.
      const before = await refusedCount('subscriptions-per-caller');
      const ac = new AbortController();
      sse.push(ac);
      await fetch(gw.url, {
        method: 'POST',
        signal: ac.signal,
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          authorization: 'Bearer viewer-token',
        },
        body: JSON.stringify({ query: 'subscription { newBlock { hash } }' }),
      });
      await waitFor(() => true, 0, '');
      const deadline = Date.now() + 5000;
      while ((await refusedCount('subscriptions-per-caller')) <= before) {
        if (Date.now() > deadline) assert.fail('the SSE subscription was not refused');
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(held(), 8, 'still eight held');
      // An anonymous caller is another caller: not affected.
      const anon = wsClient(gw.wsUrl);
      const q = collect(anon, 'subscription { newBlock { hash } }');
      const settled = await Promise.race([q.done, new Promise((r) => setTimeout(() => r('open'), 500))]);
      assert.equal(settled, 'open', 'an anonymous subscription stays open');
      await anon.dispose();
      // Closing one socket frees its four: a new subscription over SSE is then accepted.
      await sockets[0]!.dispose();
      await waitFor(() => held() === 4, 5000, 'the closed socket released its four');
    } finally {
      for (const ac of sse) ac.abort();
      for (const s of sockets) await s.dispose();
    }
  });

  const tokenId = () => sha256Hex('viewer-token');
});
