/**
 * Rate limits (issue 13 item 5, H): one bucket per token, keyed by the token's hash so tokens
 * never share one whatever their names; per anonymous host, on by default in production; 429 with
 * Retry-After and a message that says which limit. Real servers on loopback and real Redis.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gatewayEnvOptions } from './env-options.ts';
import { RATE_DEFAULTS, RateLimiter } from './rate-limit.ts';
import { startTestGateway, type TestGateway } from './testing.ts';
import { sha256Hex } from './tokens.ts';

const QUERY = JSON.stringify({ query: '{ _meta { height } }' });
const post = (url: string, token?: string) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: QUERY,
  });

/** Sends up to `max` requests; the first 429 (its body read) and how many were served before it. */
async function until429(url: string, max: number, token?: string) {
  const t0 = performance.now();
  for (let served = 0; served < max; served++) {
    const r = await post(url, token);
    if (r.status === 429) {
      const body = (await r.json()) as { errors: { message: string; extensions: { code: string } }[] };
      const seconds = (performance.now() - t0) / 1000;
      return { served, seconds, retryAfter: Number(r.headers.get('retry-after')), error: body.errors[0]! };
    }
    assert.equal(r.status, 200);
    await r.arrayBuffer();
  }
  return undefined;
}

describe('the rate limiter', () => {
  test('a token bucket is keyed by id; a token may carry a rate of its own', () => {
    const clock = { now: 0 };
    const rl = new RateLimiter({ token: { perSecond: 1, burst: 2 }, now: () => clock.now });
    const a = { kind: 'token', id: 'a' } as const;
    assert.equal(rl.take(a), undefined);
    assert.equal(rl.take(a), undefined);
    const refusal = rl.take(a);
    assert.equal(refusal?.retryAfter, 1);
    assert.match(refusal!.message, /Too many requests for this token \(1\/s, bursts of 2\): retry in 1 s/);
    assert.equal(rl.take({ kind: 'token', id: 'b' }), undefined, 'another token has its own bucket');
    const big = { kind: 'token', id: 'c', rate: { perSecond: 1, burst: 1000 } } as const;
    for (let i = 0; i < 1000; i++) assert.equal(rl.take(big), undefined);
    assert.ok(rl.take(big));
    clock.now = 1000;
    assert.equal(rl.take(a), undefined, 'refilled after a second');
  });

  test('anonymous buckets are per host: an IPv6 /64 is one, IPv4-mapped is IPv4; unknown is unlimited', () => {
    const rl = new RateLimiter({ anonymous: { perSecond: 1, burst: 1 }, now: () => 0 });
    assert.equal(rl.take({ kind: 'anonymous', address: '2001:db8:1:2::1' }), undefined);
    assert.match(
      rl.take({ kind: 'anonymous', address: '2001:db8:1:2:ffff::9' })?.message ?? '',
      /from this address without a token/,
    );
    assert.equal(rl.take({ kind: 'anonymous', address: '2001:db8:1:3::1' }), undefined);
    assert.equal(rl.take({ kind: 'anonymous', address: '192.0.2.7' }), undefined);
    assert.ok(rl.take({ kind: 'anonymous', address: '::ffff:192.0.2.7' }));
    for (let i = 0; i < 5; i++) assert.equal(rl.take({ kind: 'anonymous', address: undefined }), undefined);
  });

  test('strangers cycling hosts evict each other, never a token bucket', () => {
    const rl = new RateLimiter({
      token: { perSecond: 1, burst: 1 },
      anonymous: { perSecond: 1, burst: 1 },
      maxKeys: 10,
      now: () => 0,
    });
    assert.equal(rl.take({ kind: 'token', id: 't' }), undefined);
    for (let i = 0; i < 100; i++) rl.take({ kind: 'anonymous', address: `10.0.0.${i}` });
    assert.ok(rl.take({ kind: 'token', id: 't' }), 'the spent token bucket is still spent');
  });

  test('production has an anonymous default, development none; both a per-token one', () => {
    assert.ok(RATE_DEFAULTS.production.anonymous && RATE_DEFAULTS.production.anonymous.perSecond > 0);
    assert.equal(RATE_DEFAULTS.development.anonymous, null);
    assert.ok(RATE_DEFAULTS.production.token.perSecond > 0 && RATE_DEFAULTS.development.token.perSecond > 0);
  });
});

describe('two config-file tokens without names', () => {
  let dir: string;
  let gw: TestGateway;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'cairn-rate-'));
    const file = path.join(dir, 'gateway.json');
    await writeFile(
      file,
      JSON.stringify({
        tokens: [
          { role: 'viewer', sha256: sha256Hex('first-secret') },
          { role: 'viewer', sha256: sha256Hex('second-secret') },
        ],
      }),
    );
    const settings = gatewayEnvOptions({ CAIRN_GATEWAY_CONFIG: file });
    assert.deepEqual(
      settings.tokens.map((t) => t.name),
      ['file-1', 'file-2'],
    );
    gw = await startTestGateway({
      ...settings,
      tokenRateLimit: { perSecond: 0.1, burst: 5 },
      seed: { blocks: 2 },
    });
  });
  after(async () => {
    await gw.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('have a bucket each: the first over its limit gets 429, the second is still served', async () => {
    const first = await until429(gw.url, 20, 'first-secret');
    assert.ok(first, 'no 429 within 20 requests of a 5-request burst');
    assert.equal(first.served, 5);
    assert.equal(first.error.extensions.code, 'RATE_LIMITED');
    assert.match(first.error.message, /for this token \(0\.1\/s, bursts of 5\): retry in 10 s/);
    assert.equal(first.retryAfter, 10);
    const second = await post(gw.url, 'second-secret');
    assert.equal(second.status, 200);
    assert.deepEqual(await second.json(), { data: { _meta: { height: 1 } } });
    // Anonymous callers are not limited in development and not charged to either token.
    for (let i = 0; i < 60; i++) assert.equal((await post(gw.url)).status, 200);
  });
});

describe('a production gateway with its default rates', () => {
  let gw: TestGateway;
  const token = 'prod-viewer';
  before(async () => {
    gw = await startTestGateway({
      production: true,
      tokens: [{ name: 'dash', role: 'viewer', sha256: sha256Hex(token) }],
      seed: { blocks: 2 },
    });
  });
  after(() => gw.close());

  test('limits anonymous callers per host with 429, counted; a token holder is served meanwhile', async () => {
    const anon = await until429(gw.url, 200);
    const { perSecond, burst } = RATE_DEFAULTS.production.anonymous!;
    assert.ok(anon, `no 429 within 200 anonymous requests (default burst ${burst})`);
    // Refill during the loop lets more through: perSecond for every second it took (a loaded
    // host takes over one).
    const refill = Math.ceil(anon.seconds * perSecond) + 1;
    assert.ok(
      anon.served >= burst && anon.served <= burst + refill,
      `served ${anon.served} in ${anon.seconds} s`,
    );
    assert.equal(anon.error.extensions.code, 'RATE_LIMITED');
    assert.match(
      anon.error.message,
      new RegExp(
        `from this address without a token \\(${perSecond}/s, bursts of ${burst}; .*\\): retry in 1 s`,
      ),
    );
    assert.equal(anon.retryAfter, 1);
    // An invalid token is a stranger too: it is charged to the host's bucket, not let through.
    assert.equal((await post(gw.url, 'not-a-token')).status, 429);
    const ok = await post(gw.url, token);
    assert.equal(ok.status, 200);
    const metrics = await (
      await fetch(gw.url.replace(/\/graphql$/, '/metrics'), { headers: { authorization: `Bearer ${token}` } })
    ).text();
    assert.match(metrics, /cairn_gateway_refused_total\{reason="rate-limited-anonymous"\} [2-9]/);
  });

  test('CAIRN_ANON_RATE and CAIRN_TOKEN_RATE override the defaults, off turns one off', () => {
    assert.equal(gatewayEnvOptions({ CAIRN_ANON_RATE: 'off' }).anonymousRateLimit, null);
    assert.deepEqual(gatewayEnvOptions({ CAIRN_TOKEN_RATE: '5/7' }).tokenRateLimit, {
      perSecond: 5,
      burst: 7,
    });
    assert.equal(gatewayEnvOptions({}).anonymousRateLimit, undefined, 'unset: the mode default applies');
    assert.deepEqual(gatewayEnvOptions({ CAIRN_SUBSCRIPTIONS_PER_CALLER: '500' }).subscriptionLimits, {
      perCaller: 500,
    });
    assert.deepEqual(
      gatewayEnvOptions({ CAIRN_SUBSCRIPTIONS_ANONYMOUS: '50', CAIRN_SUBSCRIPTIONS_TOTAL: '400' })
        .subscriptionLimits,
      { anonymous: 50, total: 400 },
    );
    assert.equal(gatewayEnvOptions({}).subscriptionLimits, undefined);
    assert.throws(() => gatewayEnvOptions({ CAIRN_OPERATIONS_PER_SOCKET: '0' }), /positive whole number/);
  });
});
