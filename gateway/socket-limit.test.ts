/**
 * Finding 7 of attack review #13: idle graphql-ws connections had no cap (19,900 held, +300 MB):
 * the subscription caps count operations, and an initialised socket running none held no slot.
 * Open WebSockets are capped per client host (all of loopback is one) and in all; the upgrade
 * past a cap gets 429, counted by reason, and a closed socket frees its place. Real gateway on
 * loopback, real Redis, real WebSockets bound to 127.0.0.N.
 */
import assert from 'node:assert/strict';
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

/** A graphql-ws socket from `localAddress` that initialises and then idles: 'acked' or the HTTP status. */
function idleSocket(url: string, localAddress: string, open: WebSocket[]): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', { localAddress });
    open.push(ws);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    ws.on('message', (m) => resolve(JSON.parse(String(m)).type === 'connection_ack' ? 'acked' : String(m)));
    ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
    ws.on('error', (err) => resolve(`error ${err.message}`));
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
