/** The console server: static files, config.json, no path escapes, and the /graphql proxy (HTTP and WebSocket). */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { startConsoleServer } from './serve-console.ts';

let dir: string;
let upstream: http.Server;
let upstreamUrl: string;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cairn-console-'));
  await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>console</title>');
  await writeFile(path.join(tmpdir(), 'cairn-console-secret.txt'), 'secret');
  // A stand-in gateway: echoes POST bodies and WebSocket messages.
  upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          path: req.url,
          method: req.method,
          body,
          auth: req.headers.authorization ?? null,
          forwardedFor: req.headers['x-forwarded-for'] ?? null,
        }),
      );
    });
  });
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (ws, req) =>
    ws.on('message', (m) => ws.send(`${req.url} ${ws.protocol} ${m} ${req.headers['x-forwarded-for']}`)),
  );
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

after(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  await rm(dir, { recursive: true, force: true });
  await rm(path.join(tmpdir(), 'cairn-console-secret.txt'), { force: true });
});

test('serves index.html and a config.json naming the gateway', async () => {
  const s = await startConsoleServer({ dir, port: 0, gatewayUrl: 'http://127.0.0.1:4999/graphql' });
  try {
    const index = await fetch(s.url);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    assert.deepEqual(await (await fetch(`${s.url}config.json`)).json(), {
      gateway: 'http://127.0.0.1:4999/graphql',
    });
    s.setGatewayUrl('http://127.0.0.1:5000/graphql');
    assert.deepEqual(await (await fetch(`${s.url}config.json`)).json(), {
      gateway: 'http://127.0.0.1:5000/graphql',
    });
    assert.equal((await fetch(`${s.url}missing.js`)).status, 404);
    // No escape from the served directory, encoded or not.
    assert.equal((await fetch(`${s.url}..%2Fcairn-console-secret.txt`)).status, 404);
    assert.equal((await fetch(`${s.url}%2e%2e/cairn-console-secret.txt`)).status, 404);
  } finally {
    await s.close();
  }
});

test('proxies /graphql to the gateway, WebSocket upgrades included', async () => {
  const s = await startConsoleServer({ dir, port: 0, proxyTarget: upstreamUrl });
  try {
    assert.deepEqual(await (await fetch(`${s.url}config.json`)).json(), {});
    const res = await fetch(`${s.url}graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer t' },
      body: '{"query":"{ _meta { height } }"}',
    });
    // The client's address goes along (X-Forwarded-For), for the gateway's per-host caps.
    assert.deepEqual(await res.json(), {
      path: '/graphql',
      method: 'POST',
      body: '{"query":"{ _meta { height } }"}',
      auth: 'Bearer t',
      forwardedFor: '127.0.0.1',
    });
    // A client's own header is kept to the left of the address this server saw.
    const forged = await fetch(`${s.url}graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '6.6.6.6' },
      body: '{}',
    });
    assert.equal(((await forged.json()) as { forwardedFor: string }).forwardedFor, '6.6.6.6, 127.0.0.1');
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}graphql`, 'graphql-transport-ws', {
      headers: { 'X-Forwarded-For': '6.6.6.6' },
    });
    const reply = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('ping'));
      ws.once('message', (m) => resolve(String(m)));
      ws.once('error', reject);
    });
    assert.equal(reply, '/graphql graphql-transport-ws ping 6.6.6.6, 127.0.0.1');
    ws.close();
  } finally {
    await s.close();
  }
});

test('refuses to start without a build', async () => {
  await assert.rejects(
    startConsoleServer({ dir: path.join(dir, 'nope'), port: 0 }),
    /build the console first/,
  );
});

test('every answer carries the console CSP: bundle scripts only, connections to itself and its gateway', async () => {
  const s = await startConsoleServer({ dir, port: 0, gatewayUrl: 'http://127.0.0.1:4999/graphql' });
  try {
    for (const p of ['', 'config.json', 'missing.js']) {
      const csp = (await fetch(`${s.url}${p}`)).headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'(;|$)/, p);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, p);
      assert.match(csp, /connect-src 'self' http:\/\/127\.0\.0\.1:4999 ws:\/\/127\.0\.0\.1:4999(;|$)/, p);
      assert.match(csp, /frame-ancestors 'none'/, p);
      assert.match(csp, /object-src 'none'/, p);
    }
    // The gateway moved: the policy follows.
    s.setGatewayUrl('https://gw.example/graphql');
    const moved = (await fetch(s.url)).headers.get('content-security-policy') ?? '';
    assert.match(moved, /connect-src 'self' https:\/\/gw\.example wss:\/\/gw\.example(;|$)/);
  } finally {
    await s.close();
  }
});
