/**
 * ATK-13 finding 2 (MEDIUM, fixed): behind compose's console proxy, one stranger held every
 * console user's WebSockets.
 *
 * In docker-compose.yml browsers reach the gateway through the console (`GATEWAY_PROXY`), so the
 * gateway saw every browser as the console's one address, and its cap of 100 open WebSockets per
 * host (gateway/socket-limit.ts), counted at the upgrade before any token, became a lock-out
 * switch: a stranger with no token opened 100 idle sockets through port 5173 and every console
 * user, token or not, got 429 on the upgrade for as long as it kept them. Two fixes, each tested:
 * the console proxy appends the client's address to X-Forwarded-For and the gateway believes it
 * from its CAIRN_TRUSTED_PROXIES only (client-address.ts; compose: the console's fixed address),
 * so each browser has its own places; and with viewer tokens required, a socket whose
 * connection_init carries no valid token is closed (4403) at once.
 *
 * The test runs in its own network namespace (unshare -n; it re-runs itself there) so that the
 * stranger (10.99.0.2) and the console user (10.99.0.3) are different hosts to the console
 * (10.99.0.1), as on a LAN; the gateway and a private redis-server listen on 127.0.0.1 there.
 * Nothing leaves the namespace. Figures, before: the stranger's 100 of 100 sockets acked without
 * a token (2.7 s to open them one by one); the viewer with a valid token then got HTTP 429
 * through the console. Now: the stranger's inits are closed 4403, and 100 sockets it holds open
 * without an init (graphql-ws waits 3 s for one) fill only its own places: the viewer is acked.
 *
 * Run: npm exec -- node --test e2e/demo/console-proxy-sockets.test.ts   (needs root or
 * unprivileged user namespaces, iproute2 and redis-server)
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { netnsSupport } from '../cluster/netns.ts';

const INSIDE = process.env.CAIRN_CONSOLE_NETNS === '1';
const CONSOLE_IP = '10.99.0.1';
const STRANGER_IP = '10.99.0.2';
const USER_IP = '10.99.0.3';

/** A graphql-ws socket from `localAddress` that initialises and idles: 'acked' or the HTTP status. */
function idleSocket(url: string, localAddress: string, open: WebSocket[], payload = {}): Promise<string> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', { localAddress });
    open.push(ws);
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload })));
    ws.on('message', (m) => resolve(JSON.parse(String(m)).type === 'connection_ack' ? 'acked' : String(m)));
    ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
    ws.on('error', (err) => resolve(`error ${err.message}`));
    ws.on('close', (code) => resolve(`closed ${code}`));
  });
}

if (!INSIDE) {
  // As the mDNS test: CAIRN_SKIP_NETNS=1 on machines without network namespaces.
  const skip = process.env.CAIRN_SKIP_NETNS === '1' ? 'CAIRN_SKIP_NETNS=1' : false;
  test('console proxy: a stranger cannot hold every console user’s WebSockets (run in a netns)', {
    skip,
    timeout: 120_000,
  }, async () => {
    const support = netnsSupport();
    assert.ok(support.ok, support.ok ? '' : `this test needs a network namespace: ${support.reason}`);
    const file = fileURLToPath(import.meta.url);
    const setup = [
      'ip link set lo up',
      ...[CONSOLE_IP, STRANGER_IP, USER_IP].map((ip) => `ip addr add ${ip}/32 dev lo`),
      `exec "${process.execPath}" --test "${file}"`,
    ].join(' && ');
    const args = support.unshareArgs;
    // Without the runner's NODE_TEST_CONTEXT: the inner run reports (and exits) on its own.
    const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
    const child = spawn('unshare', [...args, 'sh', '-c', setup], {
      env: { ...env, CAIRN_CONSOLE_NETNS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.stderr!.on('data', (d) => {
      out += d;
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, `inside the namespace:\n${out.slice(-6000)}`);
  });
} else {
  let redis: ChildProcess;
  let closeAll: () => Promise<void> = async () => {};
  const sockets: WebSocket[] = [];
  const token = 'console-netns-viewer-token';
  let consoleWs = '';

  before(async () => {
    const port = 6300 + Math.floor(Math.random() * 1000);
    redis = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
    await new Promise((r) => setTimeout(r, 300));
    const { startTestGateway } = await import('../../gateway/testing.ts');
    const { startConsoleServer } = await import('./serve-console.ts');
    const gw = await startTestGateway({
      seed: { blocks: 2 },
      requireViewer: true,
      // As compose: the address the console reaches the gateway from is the one trusted proxy
      // (here loopback: the gateway listens on 127.0.0.1).
      trustedProxies: ['127.0.0.1'],
      tokens: [{ name: 'viewer', role: 'viewer', sha256: createHash('sha256').update(token).digest('hex') }],
    });
    const dist = mkdtempSync(path.join(tmpdir(), 'cairn-console-netns-'));
    writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>console</title>');
    const cons = await startConsoleServer({
      dir: dist,
      host: CONSOLE_IP,
      port: 0,
      proxyTarget: new URL(gw.url).origin,
    });
    consoleWs = `ws://${CONSOLE_IP}:${cons.port}/graphql`;
    closeAll = async () => {
      for (const s of sockets) s.terminate();
      await cons.close();
      await gw.close();
      rmSync(dist, { recursive: true, force: true });
    };
  });
  after(async () => {
    await closeAll();
    redis?.kill('SIGKILL');
  });

  test('a tokenless stranger’s 100 idle sockets through the console leave a viewer its socket', async (t) => {
    const stranger: string[] = [];
    for (let i = 0; i < 100; i++) stranger.push(await idleSocket(consoleWs, STRANGER_IP, sockets));
    const held = stranger.filter((a) => a === 'acked').length;
    const viaConsole = await idleSocket(consoleWs, USER_IP, sockets, { authorization: `Bearer ${token}` });
    t.diagnostic(`stranger held ${held}/100 sockets without a token; viewer via console: ${viaConsole}`);
    assert.equal(held, 0, 'a tokenless connection_init is closed when viewer tokens are required');
    assert.ok(
      stranger.every((a) => a === 'closed 4403'),
      stranger[0],
    );
    assert.equal(viaConsole, 'acked', 'a console user on another host must get its WebSocket');
  });

  test('100 sockets a stranger holds open without an init fill only its own places', async (t) => {
    // graphql-ws waits 3 s for connection_init: long enough to hold every place of a host.
    const opened: WebSocket[] = [];
    const upgrades = await Promise.all(
      Array.from(
        { length: 101 },
        () =>
          new Promise<string>((resolve) => {
            const ws = new WebSocket(consoleWs, 'graphql-transport-ws', { localAddress: STRANGER_IP });
            opened.push(ws);
            sockets.push(ws);
            ws.on('open', () => resolve('open'));
            ws.on('unexpected-response', (_req, res) => resolve(String(res.statusCode)));
            ws.on('error', (err) => resolve(`error ${err.message}`));
          }),
      ),
    );
    const viaConsole = await idleSocket(consoleWs, USER_IP, sockets, { authorization: `Bearer ${token}` });
    const open = upgrades.filter((u) => u === 'open').length;
    t.diagnostic(`stranger's uninitialised sockets open: ${open}/101; viewer via console: ${viaConsole}`);
    // The stranger's own host is capped (its 101st is refused), the viewer's is not touched.
    assert.equal(open, 100);
    assert.equal(viaConsole, 'acked');
    for (const ws of opened) ws.terminate();
  });
}
