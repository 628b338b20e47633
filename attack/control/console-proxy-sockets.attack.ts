/**
 * ATK-13 finding 2 (MEDIUM): behind compose's console proxy, one stranger holds every console
 * user's WebSockets.
 *
 * In docker-compose.yml browsers reach the gateway through the console (`GATEWAY_PROXY`: the
 * console's /graphql, WebSocket upgrades included, is proxied to gateway:4000), so the gateway
 * sees every browser as the console container's one address. It caps open WebSockets at 100 per
 * host (gateway/socket-limit.ts), counted at the upgrade, before any token is looked at, and an
 * initialised graphql-ws socket that runs nothing is never closed. A stranger on the LAN with no
 * token (compose sets CAIRN_REQUIRE_VIEWER: it needs none to hold a socket) opens 100 idle
 * sockets through port 5173 and every console user, token or not, gets 429 on the upgrade: no
 * live blocks, stats or node status, for as long as the stranger keeps them open. The console
 * proxy sends no X-Forwarded-For and the gateway trusts none (README: "behind a reverse proxy all
 * anonymous callers are the proxy's one host"), so the cap that protects the gateway from one
 * host is here a lock-out switch for all of them.
 *
 * The test runs in its own network namespace (unshare -n; it re-runs itself there) so that the
 * stranger (10.99.0.2) and the console user (10.99.0.3) are different hosts to the console
 * (10.99.0.1), as on a LAN; the gateway and a private redis-server listen on 127.0.0.1 there.
 * Nothing leaves the namespace. Figures: the stranger's 100 of 100 sockets acked without a
 * token (2.7 s to open them one by one); the viewer with a valid token then gets HTTP 429 through
 * the console, and keeps getting it while the stranger's sockets stay open.
 *
 * Run: npm exec -- node --test attack/control/console-proxy-sockets.attack.ts   (needs root or
 * unprivileged user namespaces, iproute2 and redis-server)
 *
 * Fixes that make it pass: the console proxy passes the client address (X-Forwarded-For) and
 * the gateway takes it from a configured trusted proxy (CAIRN_TRUSTED_PROXIES: the console's
 * address in compose) for its per-host caps; and/or a socket that presents no accepted token
 * within a few seconds when reads need one (requireViewer) is closed and holds no place.
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

const INSIDE = process.env.ATK13_NETNS === '1';
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
  test('console proxy: a stranger cannot hold every console user’s WebSockets (run in a netns)', async () => {
    const file = fileURLToPath(import.meta.url);
    const setup = [
      'ip link set lo up',
      ...[CONSOLE_IP, STRANGER_IP, USER_IP].map((ip) => `ip addr add ${ip}/32 dev lo`),
      `exec "${process.execPath}" --test "${file}"`,
    ].join(' && ');
    const args = process.getuid?.() === 0 ? ['-n'] : ['-rn'];
    // Without the runner's NODE_TEST_CONTEXT: the inner run reports (and exits) on its own.
    const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
    const child = spawn('unshare', [...args, 'sh', '-c', setup], {
      env: { ...env, ATK13_NETNS: '1' },
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
  const token = 'atk13-viewer-token';
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
    const { startConsoleServer } = await import('../../e2e/demo/serve-console.ts');
    const gw = await startTestGateway({
      seed: { blocks: 2 },
      requireViewer: true,
      tokens: [{ name: 'viewer', role: 'viewer', sha256: createHash('sha256').update(token).digest('hex') }],
    });
    const dist = mkdtempSync(path.join(tmpdir(), 'atk13-console-'));
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
    assert.equal(viaConsole, 'acked', 'a console user on another host must get its WebSocket');
  });
}
