/**
 * A stand-in for node/main.ts that speaks the harness contract (CLI flags, ready line, /status,
 * /metrics, /admin/block-peers, SIGTERM) over a toy TCP protocol, so the harness's own
 * mechanics — ready parsing, logs, restarts on the same ports, timeouts, cleanup — are tested in
 * seconds and independently of the real node. Peers exchange `{peerId, height}` lines; a `--mine`
 * node grows its height every 300 ms and persists it in its data dir.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';

const argv = process.argv.slice(2);
const values = (flag: string) => argv.flatMap((a, i) => (a === flag && argv[i + 1] ? [argv[i + 1]!] : []));
const dataDir = values('--data-dir')[0];
if (!dataDir) throw new Error('--data-dir is required');
mkdirSync(dataDir, { recursive: true });
const idFile = path.join(dataDir, 'peer-id');
if (!existsSync(idFile)) writeFileSync(idFile, `stub${randomBytes(8).toString('hex')}`);
const peerId = readFileSync(idFile, 'utf8');
const heightFile = path.join(dataDir, 'height');
let height = existsSync(heightFile) ? Number(readFileSync(heightFile, 'utf8')) : 0;
const peers = new Map<string, net.Socket>();
const blocked = new Set<string>();
const log = (o: object) => process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), ...o })}\n`);

function wire(sock: net.Socket): void {
  let buf = '';
  let remote = '';
  const hello = () => sock.write(`${JSON.stringify({ peerId, height })}\n`);
  hello();
  const timer = setInterval(hello, 150);
  sock.on('data', (d) => {
    buf += d.toString('utf8');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const m = JSON.parse(buf.slice(0, i)) as { peerId: string; height: number };
      buf = buf.slice(i + 1);
      if (blocked.has(m.peerId)) {
        sock.destroy();
        return;
      }
      remote = m.peerId;
      peers.set(remote, sock);
      if (m.height > height) height = m.height;
    }
  });
  sock.on('close', () => {
    clearInterval(timer);
    if (peers.get(remote) === sock) peers.delete(remote);
  });
  sock.on('error', () => {});
}

const addrs: string[] = [];
const servers: net.Server[] = [];
for (const spec of values('--listen')) {
  const m = /^\/ip4\/([\d.]+)\/tcp\/(\d+)$/.exec(spec);
  if (!m) continue;
  const srv = net.createServer(wire);
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(Number(m[2]), m[1], () => resolve());
  });
  servers.push(srv);
  addrs.push(`/ip4/${m[1]}/tcp/${(srv.address() as net.AddressInfo).port}/p2p/${peerId}`);
}
for (const b of values('--bootstrap')) {
  const m = /^\/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(b);
  if (m) wire(net.connect(Number(m[2]), m[1]));
}
if (argv.includes('--mdns')) {
  // Toy multicast discovery (exercises the namespace's multicast route, like @libp2p/mdns).
  const group = '224.0.0.251';
  const port = 5399;
  const dialed = new Set<string>();
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  sock.on('message', (msg) => {
    const m = JSON.parse(msg.toString('utf8')) as { peerId: string; addr: string };
    if (m.peerId === peerId || dialed.has(m.peerId) || peers.has(m.peerId)) return;
    dialed.add(m.peerId);
    const a = /^\/ip4\/([\d.]+)\/tcp\/(\d+)/.exec(m.addr);
    if (a) wire(net.connect(Number(a[2]), a[1]));
  });
  await new Promise<void>((resolve) => sock.bind(port, resolve));
  sock.addMembership(group);
  const announce = () => sock.send(JSON.stringify({ peerId, addr: addrs[0] }), port, group);
  announce();
  setInterval(announce, 300).unref();
}
if (argv.includes('--mine'))
  setInterval(() => {
    height++;
    writeFileSync(heightFile, String(height));
  }, 300);

const server = http.createServer(async (req, res) => {
  let body = '';
  for await (const c of req) body += c;
  const send = (o: unknown) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(o));
  };
  if (req.url === '/status')
    return send({
      peerId,
      role: values('--role')[0] ?? 'submind',
      height,
      headHash: `h${height}`,
      totalWork: String(height * 10),
      peers: [...peers.keys()].map((p) => ({ peerId: p, score: 0, rttMs: 1 })),
      mempoolSize: 0,
      orphanCount: 0,
      syncState: 'synced',
      banned: [],
    });
  if (req.url === '/metrics') {
    res.end(`# HELP cairn_height height\ncairn_height ${height}\ncairn_peers{kind="all"} ${peers.size}\n`);
    return;
  }
  if (req.url === '/admin/block-peers' || req.url === '/admin/unblock-peers') {
    for (const p of (JSON.parse(body) as { peers: string[] }).peers) {
      if (req.url === '/admin/block-peers') {
        blocked.add(p);
        peers.get(p)?.destroy();
      } else blocked.delete(p);
    }
    return send({ ok: true });
  }
  res.statusCode = 404;
  res.end('not found');
});
await new Promise<void>((resolve) =>
  server.listen(Number(values('--http-port')[0] ?? 0), '127.0.0.1', resolve),
);
const httpUrl = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
log({ msg: 'ready', peerId, addrs, httpUrl });

const stop = () => {
  log({ msg: 'stopping' });
  server.close();
  for (const s of servers) s.close();
  for (const s of peers.values()) s.destroy();
  setTimeout(() => process.exit(0), 20);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
