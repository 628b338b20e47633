/**
 * Serves the built console (web/dist) with node:http and tells it where the gateway is.
 *
 * Two ways to reach the gateway:
 * - `gatewayUrl`: `/config.json` answers `{ "gateway": gatewayUrl }` (generated per server, never
 *   written into web/dist, so a demo and a test can serve the same build at once);
 * - `proxyTarget` (e.g. http://gateway:4000 in docker-compose): `/graphql` is proxied there,
 *   WebSocket upgrades included, and the console uses its own origin.
 *
 * CLI (`npm run console`): CONSOLE_PORT (default 5173), CONSOLE_HOST (default 127.0.0.1),
 * GATEWAY_URL or GATEWAY_PROXY, CONSOLE_DIR (default web/dist), CONSOLE_CONNECT_SRC (more
 * origins the Content-Security-Policy lets the console reach, for `?gateway=` overrides).
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import path from 'node:path';
import { consoleCsp } from '../../web/csp.ts';
import { REPO_ROOT } from '../cluster/node-process.ts';

export const CONSOLE_DIST = path.join(REPO_ROOT, 'web/dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
  '.woff2': 'font/woff2',
};

export interface ConsoleServerOptions {
  dir?: string;
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** The gateway's HTTP endpoint as the browser should reach it, e.g. http://127.0.0.1:4000/graphql. */
  gatewayUrl?: string;
  /** Proxy /graphql (HTTP and WebSocket) to this origin instead. */
  proxyTarget?: string;
  /** More origins the console may connect to (CSP connect-src), e.g. for `?gateway=` overrides. */
  extraConnect?: readonly string[];
}

export interface ConsoleServer {
  readonly url: string;
  readonly port: number;
  /** Changes what /config.json answers (e.g. the gateway moved). */
  setGatewayUrl(url: string): void;
  close(): Promise<void>;
}

export async function startConsoleServer(opts: ConsoleServerOptions = {}): Promise<ConsoleServer> {
  const dir = path.resolve(opts.dir ?? CONSOLE_DIST);
  if (!existsSync(path.join(dir, 'index.html')))
    throw new Error(`${dir}/index.html is missing: build the console first (npm run build:web)`);
  let gatewayUrl = opts.gatewayUrl;
  const proxy = opts.proxyTarget ? new URL(opts.proxyTarget) : undefined;

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://console');
    // Every answer carries the policy (recomputed: setGatewayUrl may move the gateway).
    res.setHeader(
      'content-security-policy',
      consoleCsp({ gateways: gatewayUrl ? [gatewayUrl] : [], extraConnect: opts.extraConnect }),
    );
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    if (proxy && url.pathname.startsWith('/graphql')) return proxyHttp(proxy, req, res);
    if (url.pathname === '/config.json') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(proxy ? {} : { gateway: gatewayUrl ?? null }));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    let rel: string;
    try {
      rel = decodeURIComponent(url.pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const file = path.join(dir, rel === '/' ? 'index.html' : rel);
    // No path may leave the served directory.
    if (!file.startsWith(dir + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    const ext = path.extname(file);
    res.writeHead(200, {
      'content-type': TYPES[ext] ?? 'application/octet-stream',
      // Vite names assets by content hash: they never change; index.html must be re-read.
      'cache-control': rel.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    if (req.method === 'HEAD') res.end();
    else createReadStream(file).pipe(res);
  });
  if (proxy)
    server.on('upgrade', (req, socket, head) => proxyUpgrade(proxy, req, socket as net.Socket, head));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${addr.port}/`,
    port: addr.port,
    setGatewayUrl: (u) => {
      gatewayUrl = u;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * X-Forwarded-For as the gateway should see it: what came in, plus the address this server saw.
 * The gateway believes it only from proxies in its CAIRN_TRUSTED_PROXIES and reads it from the
 * right, so a client's own entries (left of ours) name no one; without it every console user
 * would be this server's one address to the gateway's per-host caps (attack review 13).
 */
export function forwardedFor(req: http.IncomingMessage): string | undefined {
  const before = req.headers['x-forwarded-for'];
  const seen = req.socket.remoteAddress;
  const hops = [...(Array.isArray(before) ? before : before ? [before] : []), ...(seen ? [seen] : [])];
  return hops.length ? hops.join(', ') : undefined;
}

function proxyHttp(target: URL, req: http.IncomingMessage, res: http.ServerResponse): void {
  const upstream = http.request(
    {
      host: target.hostname,
      port: target.port || 80,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: target.host, 'x-forwarded-for': forwardedFor(req) },
    },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    },
  );
  upstream.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`gateway unreachable: ${err.message}`);
  });
  req.pipe(upstream);
}

function proxyUpgrade(target: URL, req: http.IncomingMessage, socket: net.Socket, head: Buffer): void {
  const up = net.connect(Number(target.port || 80), target.hostname, () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i]!;
      if (k.toLowerCase() === 'x-forwarded-for') continue;
      lines.push(`${k}: ${k.toLowerCase() === 'host' ? target.host : req.rawHeaders[i + 1]}`);
    }
    const xff = forwardedFor(req);
    if (xff) lines.push(`X-Forwarded-For: ${xff}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket).pipe(up);
  });
  const close = () => {
    up.destroy();
    socket.destroy();
  };
  up.on('error', close);
  socket.on('error', close);
  up.on('close', close);
  socket.on('close', close);
}

async function main(): Promise<void> {
  const gatewayUrl = process.env.GATEWAY_URL;
  const proxyTarget = process.env.GATEWAY_PROXY;
  const server = await startConsoleServer({
    dir: process.env.CONSOLE_DIR,
    host: process.env.CONSOLE_HOST ?? '127.0.0.1',
    port: Number(process.env.CONSOLE_PORT ?? 5173),
    gatewayUrl: gatewayUrl ?? (proxyTarget ? undefined : 'http://127.0.0.1:4000/graphql'),
    proxyTarget,
    extraConnect: process.env.CONSOLE_CONNECT_SRC?.split(/[\s,]+/).filter(Boolean),
  });
  console.log(
    JSON.stringify({
      msg: 'ready',
      url: server.url,
      gateway: proxyTarget ? `proxy ${proxyTarget}` : gatewayUrl,
    }),
  );
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      void server.close().then(() => process.exit(0));
    });
}

if (import.meta.filename === process.argv[1] || process.argv[1]?.endsWith('serve-console.ts')) await main();
