/**
 * Finding 3 of attack review #13: the per-caller subscription cap and the anonymous rate limit
 * keyed an anonymous caller by its IPv4 address, and on the gateway's own host every address of
 * 127.0.0.0/8 reaches a listener on 127.0.0.1: one local stranger was 16 million "hosts" (four
 * addresses held 32 subscriptions under a cap of 8; 20 addresses got 20 answers from a burst of
 * 5). All of loopback is one host now (ip-ranges.ts capKey). Real gateway on loopback, real
 * Redis, graphql-ws and HTTP over real sockets bound to 127.0.0.N.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'graphql-ws';
import { WebSocket } from 'ws';
import { collect, startTestGateway, type TestGateway } from './testing.ts';

/** A graphql-ws client whose socket leaves from `localAddress`. */
function clientFrom(url: string, localAddress: string) {
  class BoundSocket extends WebSocket {
    constructor(u: string, protocols?: string | string[]) {
      super(u, protocols, { localAddress });
    }
  }
  return createClient({ url, webSocketImpl: BoundSocket, retryAttempts: 0, lazy: true });
}

/** One anonymous POST from `localAddress`: its HTTP status. */
function postFrom(url: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ query: '{ _meta { height } }' });
    const req = http.request(
      url,
      {
        method: 'POST',
        localAddress,
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const LOCAL = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

describe('one local stranger, many loopback addresses: subscriptions', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({
      seed: { blocks: 2 },
      subscriptionLimits: { perSocket: 20, perCaller: 8 },
      anonymousRateLimit: null,
    });
  });
  after(() => gw.close());

  test('subscriptions from 127.0.0.2..5 together stay within one caller cap (8)', async () => {
    const clients = LOCAL.map((a) => clientFrom(gw.wsUrl, a));
    try {
      const subs = clients.flatMap((c) =>
        Array.from({ length: 8 }, () => collect(c, 'subscription { newBlock { hash } }')),
      );
      // Every subscribe accepted (stays open) or refused (completes with SUBSCRIPTION_LIMIT).
      const refusedBy = async () =>
        (
          await Promise.all(
            subs.map((s) =>
              Promise.race([s.done.then(() => 1), new Promise<number>((r) => setTimeout(() => r(0), 1500))]),
            ),
          )
        ).reduce((a, b) => a + b, 0);
      const refused = await refusedBy();
      const held = gw.server.gateway.subscriptions.heldBy({ kind: 'anonymous', address: '127.0.0.1' });
      assert.equal(held, 8, 'one host, one cap');
      assert.equal(refused, 24);
      assert.ok(
        subs.some((s) => s.results[0]?.errors?.[0]?.extensions?.code === 'SUBSCRIPTION_LIMIT'),
        'refused with the typed code',
      );
    } finally {
      for (const c of clients) await c.dispose();
    }
  });
});

describe('one local stranger, many loopback addresses: the anonymous rate limit', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({ seed: { blocks: 2 }, anonymousRateLimit: { perSecond: 1, burst: 5 } });
  });
  after(() => gw.close());

  test("the anonymous burst (5) is one host's, whatever 127.0.0.N it sends from", async () => {
    const statuses: number[] = [];
    for (let n = 10; n < 30; n++) statuses.push(await postFrom(gw.url, `127.0.0.${n}`));
    const ok = statuses.filter((s) => s === 200).length;
    assert.ok(ok >= 5 && ok <= 6, `${ok} of 20 anonymous requests answered 200 within one burst of 5`);
    assert.ok(statuses.filter((s) => s === 429).length >= 14, 'the rest refused as rate-limited');
  });
});
