/**
 * The gateway's production defaults (issue 13, item 5), against a real server on loopback with
 * real Redis: no introspection, suggestions or GraphiQL; CORS for listed origins only, never a
 * reflected Origin; WebSockets from foreign origins refused at the upgrade; reads need a token
 * when configured so, node addresses and peers never anonymous; per-token rate limits; /metrics
 * behind a token.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { parseRate } from './env-options.ts';
import { createOriginPolicy } from './origins.ts';
import { collect, gql, startTestGateway, type TestGateway, wsClient } from './testing.ts';
import { sha256Hex } from './tokens.ts';

const CONSOLE = 'http://console.example:5173';
const EVIL = 'http://evil.example';
const VIEWER = 'viewer-secret';
const OTHER = 'other-viewer-secret';
const tokens = [
  { name: 'dash', role: 'viewer' as const, sha256: sha256Hex(VIEWER) },
  { name: 'other', role: 'viewer' as const, sha256: sha256Hex(OTHER) },
];
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** Opens a graphql-ws socket with this Origin (and Host): 'open' or the HTTP status of the refusal. */
function wsOutcome(url: string, origin: string | undefined, host?: string): Promise<'open' | number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', {
      ...(origin ? { origin } : {}),
      ...(host ? { headers: { host } } : {}),
    });
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', (err) => reject(err));
  });
}

/** An HTTP request with the Host and Origin a browser would send (fetch may not set Host). */
function withHost(
  url: string,
  host: string,
  o: { method?: string; origin?: string; body?: string; path?: string } = {},
): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: o.path ?? u.pathname,
        method: o.method ?? 'POST',
        headers: {
          host,
          ...(o.origin ? { origin: o.origin } : {}),
          ...(o.body
            ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(o.body) }
            : {}),
        },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.once('error', reject);
    req.end(o.body);
  });
}

describe('a production gateway', () => {
  let gw: TestGateway;
  let base: string;
  before(async () => {
    gw = await startTestGateway({
      production: true,
      tokens,
      requireViewer: true,
      corsOrigins: [CONSOLE],
      allowedHosts: ['gw.example'],
      tokenRateLimit: { perSecond: 0.5, burst: 12 },
      seed: { blocks: 3 },
    });
    base = gw.url.replace(/\/graphql$/, '');
  });
  after(() => gw.close());

  test('introspection is refused, and validation errors suggest no field names', async () => {
    const r = await gql(gw.url, '{ __schema { types { name } } }', undefined, bearer(VIEWER));
    assert.equal(r.body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.match(r.body.errors![0]!.message, /introspection/i);
    const typo = await gql(gw.url, '{ _meta { heigh } }', undefined, bearer(VIEWER));
    assert.equal(typo.body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.doesNotMatch(typo.body.errors![0]!.message, /Did you mean/);
    // __typename is not introspection of the schema (graphql-http's audits use it).
    const t = await gql(gw.url, '{ __typename }', undefined, bearer(VIEWER));
    assert.deepEqual(t.body.data, { __typename: 'Query' });
  });

  test('GET /graphql from a browser is no GraphiQL page', async () => {
    const r = await fetch(gw.url, { headers: { accept: 'text/html' } });
    assert.doesNotMatch(await r.text(), /graphiql/i);
  });

  test('anonymous reads are refused when requireViewer is set; a viewer token reads', async () => {
    const anon = await gql(gw.url, '{ _meta { height } }');
    assert.equal(anon.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    const ok = await gql(gw.url, '{ _meta { height } }', undefined, bearer(VIEWER));
    assert.equal(ok.body.data._meta.height, 2);
  });

  test('CORS answers a listed origin and never reflects a foreign one', async () => {
    const post = (origin: string) =>
      fetch(gw.url, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json', ...bearer(VIEWER) },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
    const foreign = await post(EVIL);
    assert.equal(foreign.headers.get('access-control-allow-origin'), null);
    assert.equal(foreign.headers.get('access-control-allow-credentials'), null);
    const listed = await post(CONSOLE);
    assert.equal(listed.headers.get('access-control-allow-origin'), CONSOLE);
    // The preflight a page needs before sending Authorization: granted to the console only.
    const preflight = (origin: string) =>
      fetch(gw.url, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization,content-type',
        },
      });
    assert.equal((await preflight(EVIL)).headers.get('access-control-allow-origin'), null);
    const ok = await preflight(CONSOLE);
    assert.equal(ok.headers.get('access-control-allow-origin'), CONSOLE);
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /authorization/);
  });

  test('a WebSocket from a foreign Origin is refused at the upgrade; listed, same-origin and non-browser ones open', async () => {
    assert.equal(await wsOutcome(gw.wsUrl, EVIL), 403);
    assert.equal(await wsOutcome(gw.wsUrl, 'null'), 403);
    assert.equal(await wsOutcome(gw.wsUrl, CONSOLE), 'open');
    assert.equal(await wsOutcome(gw.wsUrl, new URL(gw.url).origin), 'open');
    assert.equal(await wsOutcome(gw.wsUrl, undefined), 'open');
    const metrics = await (await fetch(`${base}/metrics`, { headers: bearer(VIEWER) })).text();
    assert.match(metrics, /cairn_gateway_refused_total\{reason="websocket-origin"\} 2/);
  });

  test('a DNS-rebinding request (Host and Origin evil.example:PORT) gets 421; listed and IP hosts are served', async () => {
    const port = new URL(gw.url).port;
    const evilHost = `evil.example:${port}`;
    const query = JSON.stringify({ query: '{ _meta { height } }' });
    // What the rebound page sends: a same-origin POST, and a GET (no Origin) to read an answer.
    const post = await withHost(gw.url, evilHost, { origin: `http://${evilHost}`, body: query });
    assert.equal(post.status, 421);
    const refusal = JSON.parse(post.body) as { errors: { message: string; extensions: { code: string } }[] };
    assert.equal(refusal.errors[0]!.extensions.code, 'MISDIRECTED_REQUEST');
    assert.match(refusal.errors[0]!.message, /does not serve the host "evil\.example:\d+"/);
    const get = await withHost(gw.url, evilHost, {
      method: 'GET',
      path: `/graphql?query=${encodeURIComponent('{ _meta { height } }')}`,
    });
    assert.equal(get.status, 421);
    assert.equal((await withHost(gw.url, 'EVIL.example.', { method: 'GET', path: '/health' })).status, 421);
    assert.equal((await withHost(gw.url, 'a@127.0.0.1', { method: 'GET', path: '/health' })).status, 421);
    assert.equal(await wsOutcome(gw.wsUrl, `http://${evilHost}`, evilHost), 421);
    // The gateway's own names: an IP address, localhost, a configured host (same-origin there).
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `gw.example:${port}`]) {
      const ok = await withHost(gw.url, host, { origin: `http://${host}`, path: '/health', method: 'GET' });
      assert.equal(ok.status, 200, host);
    }
    assert.equal(await wsOutcome(gw.wsUrl, `http://gw.example:${port}`, `gw.example:${port}`), 'open');
    // Allowed Host, foreign Origin: still a cross-origin socket.
    assert.equal(await wsOutcome(gw.wsUrl, EVIL, `gw.example:${port}`), 403);
    const metrics = await (await fetch(`${base}/metrics`, { headers: bearer(VIEWER) })).text();
    assert.match(metrics, /cairn_gateway_refused_total\{reason="host"\} 5/);
  });

  test('/metrics needs a token', async () => {
    const anon = await fetch(`${base}/metrics`);
    assert.equal(anon.status, 401);
    assert.equal(
      ((await anon.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code,
      'UNAUTHENTICATED',
    );
    const ok = await fetch(`${base}/metrics`, { headers: bearer(OTHER) });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /process_cpu_user_seconds_total/);
  });

  // Last: it spends the viewer token's burst.
  test('a token over its rate limit gets 429 with Retry-After; another token is not affected', async () => {
    let limited: Response | undefined;
    for (let i = 0; i < 20 && !limited; i++) {
      const r = await fetch(gw.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...bearer(VIEWER) },
        body: JSON.stringify({ query: '{ _meta { height } }' }),
      });
      if (r.status === 429) limited = r;
      else await r.arrayBuffer();
    }
    assert.ok(limited, 'no 429 within 20 requests of a 12-request burst');
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    const body = (await limited.json()) as { errors: { message: string; extensions: { code: string } }[] };
    assert.equal(body.errors[0]!.extensions.code, 'RATE_LIMITED');
    const other = await gql(gw.url, '{ _meta { height } }', undefined, bearer(OTHER));
    assert.equal(other.status, 200);
    assert.equal(other.body.data._meta.height, 2);
  });

  test('subscribes over graphql-ws count against the same per-token limit', async () => {
    const client = wsClient(gw.wsUrl, { authorization: `Bearer ${OTHER}` });
    const subs = Array.from({ length: 16 }, () => collect(client, 'subscription { newBlock { hash } }'));
    try {
      const first = await Promise.race([
        Promise.any(
          subs.map((s) => s.done.then((err) => (err ? err : Promise.reject(new Error('completed'))))),
        ),
        new Promise((_, reject) => setTimeout(() => reject(new Error('no subscribe was refused')), 10_000)),
      ]);
      const errors = first as { message: string; extensions?: { code?: string } }[];
      assert.ok(Array.isArray(errors), `expected GraphQL errors, got ${String(first)}`);
      assert.equal(errors[0]!.extensions?.code, 'RATE_LIMITED');
      assert.match(
        errors[0]!.message,
        /Too many requests for this token \(0\.5\/s, bursts of 12\): retry in \d+ s/,
      );
    } finally {
      for (const s of subs) s.dispose();
      await client.dispose();
    }
  });
});

describe('node addresses and peers, whatever the mode', () => {
  let gw: TestGateway;
  before(async () => {
    // Development defaults and anonymous reads on: still no map of the network for strangers.
    gw = await startTestGateway({ tokens, seed: { blocks: 2 } });
  });
  after(() => gw.close());

  test('are FORBIDDEN without a token, the rest of a node is not', async () => {
    for (const field of ['addrs', 'peers', 'connections']) {
      const sel = field === 'connections' ? 'connections { kind count }' : field;
      const r = await gql(gw.url, `{ nodes(first: 5) { edges { node { id ${sel} } } } }`);
      assert.equal(r.body.errors?.[0]?.extensions?.code, 'FORBIDDEN', field);
      assert.match(r.body.errors![0]!.message, new RegExp(`Node.${field}`));
    }
    const plain = await gql(gw.url, '{ nodes(first: 5) { edges { node { id peerCount height } } } }');
    assert.equal(plain.body.errors, undefined);
    assert.equal(plain.body.data.nodes.edges.length, 3);
    const viewer = await gql(
      gw.url,
      '{ nodes(first: 5) { edges { node { id addrs peers connections { kind count } } } } }',
      undefined,
      bearer(VIEWER),
    );
    assert.equal(viewer.body.errors, undefined);
    assert.deepEqual(viewer.body.data.nodes.edges[0].node.addrs, ['/ip4/127.0.0.1/tcp/4100']);
    // Kinds with no connection are left out.
    assert.deepEqual(viewer.body.data.nodes.edges[0].node.connections, [
      { kind: 'tcp', count: 1 },
      { kind: 'relayed', count: 1 },
    ]);
  });

  test('development keeps introspection and suggestions on', async () => {
    const r = await gql(gw.url, '{ __schema { queryType { name } } }');
    assert.equal(r.body.data.__schema.queryType.name, 'Query');
    const typo = await gql(gw.url, '{ _meta { heigh } }');
    assert.match(typo.body.errors![0]!.message, /Did you mean/);
  });
});

test('rates from the environment: PER_SECOND[/BURST], 0 or off for none', () => {
  assert.deepEqual(parseRate('X', '50'), { perSecond: 50, burst: 100 });
  assert.deepEqual(parseRate('X', '5/7'), { perSecond: 5, burst: 7 });
  assert.equal(parseRate('X', 'off'), null);
  assert.equal(parseRate('X', undefined), undefined);
  assert.throws(() => parseRate('X', 'fast'), /X must be PER_SECOND/);
});

test('allowed hosts: names, .domains and origins; anything else but IP addresses is foreign', () => {
  const p = createOriginPolicy([], ['localhost', '.example.org', 'https://cairn.example.net:8443']);
  for (const h of [
    'localhost:4000',
    'example.org',
    'gw.example.org:443',
    'cairn.example.net',
    '10.0.0.7:4000',
    '[fe80::1]',
  ])
    assert.equal(p.hostAllowed(h), true, h);
  for (const h of [
    'evil.example',
    'example.org.evil.example',
    'localhost.evil.example',
    'notexample.org',
    'x/y',
    '',
  ])
    assert.equal(p.hostAllowed(h), false, h);
  // Same origin needs the Host to be the gateway's own, not just equal to the Origin.
  assert.equal(p.allows('http://gw.example.org:4000', 'gw.example.org:4000'), true);
  assert.equal(p.allows('http://evil.example:4000', 'evil.example:4000'), false);
  assert.throws(() => createOriginPolicy([], ['ftp://x']), /not a host name/);
});
