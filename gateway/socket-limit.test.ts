/**
 * Finding 7 of attack review #13: idle graphql-ws connections had no cap (19,900 held, +300 MB):
 * the subscription caps count operations, and an initialised socket running none held no slot.
 * Open WebSockets are capped per client host (all of loopback is one) and in all; the upgrade
 * past a cap gets 429, counted by reason, and a closed socket frees its place. Real gateway on
 * loopback, real Redis, real WebSockets bound to 127.0.0.N.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { gatewayEnvOptions } from './env-options.ts';
import { WebSocketLimiter } from './socket-limit.ts';
import { startTestGateway, type TestGateway, waitFor } from './testing.ts';

describe('WebSocketLimiter', () => {
  test('per host (loopback is one), in all; a release frees one place, once', () => {
    const l = new WebSocketLimiter({ perHost: 2, total: 3 });
    const a = l.open('127.0.0.2');
    assert.equal(typeof a, 'function');
    assert.equal(typeof l.open('127.0.0.3'), 'function');
    const third = l.open('::1');
    assert.equal(typeof third === 'function' ? 'open' : third.reason, 'per-host');
    assert.equal(typeof l.open('192.0.2.1'), 'function');
    const fourth = l.open('192.0.2.2');
    assert.equal(typeof fourth === 'function' ? 'open' : fourth.reason, 'total');
    (a as () => void)();
    (a as () => void)();
    assert.equal(l.count(), 2);
    assert.equal(l.count('127.0.0.9'), 1);
  });

  test('CAIRN_WEBSOCKETS_PER_HOST and CAIRN_WEBSOCKETS_TOTAL set them', () => {
    assert.deepEqual(
      gatewayEnvOptions({ CAIRN_WEBSOCKETS_PER_HOST: '7', CAIRN_WEBSOCKETS_TOTAL: '70' }).webSocketLimits,
      { perHost: 7, total: 70 },
    );
    assert.equal(gatewayEnvOptions({}).webSocketLimits, undefined);
  });
});

/**
 * A graphql-ws socket from `localAddress` that initialises and then idles: 'acked', the HTTP
 * status of a refused upgrade, or `closed <code>`. `payload` is connection_init's.
 */
function idleSocket(
  url: string,
  localAddress: string,
  open: WebSocket[],
  o: { payload?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', { localAddress, headers: o.headers });
    open.push(ws);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: o.payload ?? {} })));
    ws.on('message', (m) => resolve(JSON.parse(String(m)).type === 'connection_ack' ? 'acked' : String(m)));
    ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
    ws.on('error', (err) => resolve(`error ${err.message}`));
    ws.on('close', (code) => resolve(`closed ${code}`));
  });
}

describe('the gateway', () => {
  let gw: TestGateway;
  const sockets: WebSocket[] = [];
  before(async () => {
    gw = await startTestGateway({ seed: { blocks: 2 }, webSocketLimits: { perHost: 5 } });
  });
  after(async () => {
    for (const s of sockets) s.terminate();
    await gw.close();
  });

  test('idle sockets from 127.0.0.2..13: five open, the rest refused with 429 and counted', async () => {
    const answers: string[] = [];
    for (let a = 2; a <= 13; a++) answers.push(await idleSocket(gw.wsUrl, `127.0.0.${a}`, sockets));
    assert.deepEqual(answers.slice(0, 5), Array(5).fill('acked'));
    assert.deepEqual(answers.slice(5), Array(7).fill('429'));
    const text = await (await fetch(gw.url.replace('/graphql', '/metrics'))).text();
    assert.match(text, /cairn_gateway_refused_total\{reason="websocket-per-host"\} 7/);
    // Closing one frees its place.
    sockets[0]!.close();
    await waitFor(() => gw.server.sockets.count('127.0.0.1') === 4, 5000, 'a place freed');
    assert.equal(await idleSocket(gw.wsUrl, '127.0.0.20', sockets), 'acked');
  });
});

describe('behind a trusted proxy (CAIRN_TRUSTED_PROXIES)', () => {
  // Loopback is one host to the caps, so 127.0.0.1 stands for the console proxy and the
  // X-Forwarded-For it appends for the LAN hosts behind it.
  let gw: TestGateway;
  const sockets: WebSocket[] = [];
  before(async () => {
    gw = await startTestGateway({
      seed: { blocks: 2 },
      webSocketLimits: { perHost: 2 },
      trustedProxies: ['127.0.0.1'],
    });
  });
  after(async () => {
    for (const s of sockets) s.terminate();
    await gw.close();
  });

  test('each forwarded client has its own places; an untrusted peer’s header counts for nothing', async () => {
    const via = (client: string, from = '127.0.0.1') =>
      idleSocket(gw.wsUrl, from, sockets, { headers: { 'X-Forwarded-For': client } });
    // The stranger behind the proxy fills its own places, not everyone's.
    assert.deepEqual(
      [await via('10.99.0.2'), await via('10.99.0.2'), await via('10.99.0.2')],
      ['acked', 'acked', '429'],
    );
    // A client's own forged hop left of the proxy's is not believed.
    assert.equal(await via('10.99.0.3, 10.99.0.2'), '429');
    assert.equal(await via('6.6.6.6, 10.99.0.3'), 'acked');
    assert.equal(gw.server.sockets.count('10.99.0.3'), 1);
    // 127.0.0.2 is no trusted proxy: its header is ignored and it is loopback, with no place left…
    assert.equal(await via('10.99.0.4', '127.0.0.2'), 'acked');
    assert.equal(await via('10.99.0.4', '127.0.0.3'), 'acked');
    assert.equal(await via('10.99.0.4', '127.0.0.4'), '429');
    assert.equal(gw.server.sockets.count('10.99.0.4'), 0);
  });

  test('CAIRN_TRUSTED_PROXIES takes IP ranges, and nothing else', () => {
    assert.deepEqual(
      gatewayEnvOptions({ CAIRN_TRUSTED_PROXIES: '172.29.213.10, 10.0.0.0/8' }).trustedProxies,
      ['172.29.213.10', '10.0.0.0/8'],
    );
    assert.throws(() => gatewayEnvOptions({ CAIRN_TRUSTED_PROXIES: 'console' }), /CAIRN_TRUSTED_PROXIES/);
    assert.equal(gatewayEnvOptions({}).trustedProxies, undefined);
  });
});

describe('with viewer tokens required', () => {
  let gw: TestGateway;
  const sockets: WebSocket[] = [];
  const token = 'socket-viewer-token';
  before(async () => {
    gw = await startTestGateway({
      seed: { blocks: 2 },
      requireViewer: true,
      tokens: [{ name: 'viewer', role: 'viewer', sha256: createHash('sha256').update(token).digest('hex') }],
      webSocketLimits: { perHost: 3 },
    });
  });
  after(async () => {
    for (const s of sockets) s.terminate();
    await gw.close();
  });

  test('a socket whose connection_init has no valid token is closed (4403) and frees its place', async () => {
    const tokenless: string[] = [];
    for (let i = 0; i < 6; i++)
      tokenless.push(
        await idleSocket(
          gw.wsUrl,
          '127.0.0.2',
          sockets,
          i % 2 ? { payload: { authorization: 'Bearer wrong' } } : {},
        ),
      );
    assert.deepEqual(tokenless, Array(6).fill('closed 4403'));
    await waitFor(() => gw.server.sockets.count('127.0.0.1') === 0, 5000, 'their places freed');
    const text = await (
      await fetch(gw.url.replace('/graphql', '/metrics'), { headers: { authorization: `Bearer ${token}` } })
    ).text();
    assert.match(text, /cairn_gateway_refused_total\{reason="websocket-no-token"\} 6/);
    assert.equal(
      await idleSocket(gw.wsUrl, '127.0.0.3', sockets, { payload: { authorization: `Bearer ${token}` } }),
      'acked',
    );
  });
});
