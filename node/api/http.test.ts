/**
 * The node's HTTP API refuses what a web page or a stranger on the machine could send (issue 13,
 * item 4): a real CairnNode in this process, its API on loopback with a real cookie file, and
 * raw HTTP requests (node:http, so the Host header is ours to set). A refused POST leaves the
 * mempool as it was; a well-formed one with the token signs an entry.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ClusterNode, type SpawnSpec } from '../../e2e/cluster/node-process.ts';
import { statsReport } from '../../jobs/node-stats.ts';
import { NodeStatsReport } from '../../jobs/payloads.ts';
import { type NodeStatus, nodeControl } from '../control.ts';
import { createLogger } from '../log.ts';
import { CairnNode } from '../node.ts';
import { testNetwork } from '../testing/forge.ts';
import { type ApiCookie, createApiCookie, readApiCookie } from './cookie.ts';
import { hostName } from './guard.ts';
import { startHttpApi } from './http.ts';

let dataDir: string;
let node: CairnNode;
let cookie: ApiCookie;
let api: Awaited<ReturnType<typeof startHttpApi>>;
let port: number;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-api-'));
  node = await CairnNode.start({
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mine: false,
    mdns: false,
    role: 'submind',
    capabilities: [],
    network: testNetwork(),
    reconcileIntervalMs: 0,
    logger: createLogger('silent'),
  });
  cookie = await createApiCookie(dataDir);
  api = await startHttpApi(
    { control: nodeControl(node), registry: node.metrics.registry, log: node.log },
    '127.0.0.1',
    0,
    { token: cookie.token, allowHosts: ['cairn-box'] },
  );
  port = Number(new URL(api.url).port);
});

after(async () => {
  api?.server.close();
  api?.server.closeAllConnections();
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: { error?: string; code?: string; id?: string; status?: string; height?: number };
  headers: Record<string, string | string[] | undefined>;
}

function call(method: string, p: string, headers: Record<string, string>, body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path: p, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const local = () => ({ host: `127.0.0.1:${port}` });
const entry = JSON.stringify({ content: 'hello from a test' });
/** The refusal counter of one code, from the node's /metrics registry. */
const refused = async (code: string) =>
  Number(
    new RegExp(`cairn_api_refused_total\\{code="${code}"\\} (\\d+)`).exec(
      await node.metrics.registry.metrics(),
    )?.[1] ?? 0,
  );

test('the cookie is a 64-hex token in <data-dir>/.cookie, readable by its owner only', async () => {
  assert.equal(cookie.file, path.join(dataDir, '.cookie'));
  assert.match(cookie.token, /^[0-9a-f]{64}$/);
  assert.equal(await readApiCookie(cookie.file), cookie.token);
  assert.equal((await stat(cookie.file)).mode & 0o777, 0o600);
  // A new start writes a new token.
  const other = await mkdtemp(path.join(os.tmpdir(), 'cairn-api2-'));
  const again = await createApiCookie(other);
  assert.notEqual(again.token, cookie.token);
  await rm(other, { recursive: true, force: true });
});

test('a POST without the token gets 401 and signs nothing', async () => {
  const before = node.chain.mempool.ids().length;
  const r = await call('POST', '/entries', { ...local(), 'content-type': 'application/json' }, entry);
  assert.equal(r.status, 401);
  assert.equal(r.body.code, 'API_UNAUTHORIZED');
  assert.match(r.body.error!, /\.cookie/);
  assert.match(String(r.headers['www-authenticate']), /^Bearer/);
  const wrong = await call(
    'POST',
    '/entries',
    { ...local(), 'content-type': 'application/json', authorization: `Bearer ${'0'.repeat(64)}` },
    entry,
  );
  assert.equal(wrong.status, 401);
  assert.equal(node.chain.mempool.ids().length, before);
  assert.ok((await refused('API_UNAUTHORIZED')) >= 2);
});

test('a text/plain POST (what a web page can send without preflight) gets 415, token or not', async () => {
  const before = node.chain.mempool.ids().length;
  const auth = { authorization: `Bearer ${cookie.token}` };
  const r = await call('POST', '/entries', { ...local(), ...auth, 'content-type': 'text/plain' }, entry);
  assert.equal(r.status, 415);
  assert.equal(r.body.code, 'API_UNSUPPORTED_MEDIA_TYPE');
  assert.match(r.body.error!, /application\/json.*text\/plain/);
  // The attack of the issue: text/plain, a foreign Origin, no token.
  const page = await call(
    'POST',
    '/entries',
    { ...local(), origin: 'https://evil.example', 'content-type': 'text/plain' },
    entry,
  );
  assert.equal(page.status, 401);
  assert.equal(node.chain.mempool.ids().length, before);
  assert.equal(await refused('API_UNSUPPORTED_MEDIA_TYPE'), 1);
});

test('a foreign Host gets 421 on every route (DNS rebinding), the allowed names pass', async () => {
  const before = node.chain.mempool.ids().length;
  const auth = { authorization: `Bearer ${cookie.token}`, 'content-type': 'application/json' };
  const post = await call('POST', '/entries', { host: `rebind.evil.example:${port}`, ...auth }, entry);
  assert.equal(post.status, 421);
  assert.equal(post.body.code, 'API_HOST_NOT_ALLOWED');
  assert.match(post.body.error!, /--http-allow-host/);
  assert.equal((await call('GET', '/status', { host: `rebind.evil.example:${port}` })).status, 421);
  assert.equal((await call('GET', '/status', { host: '127.0.0.1.evil.example' })).status, 421);
  assert.equal(node.chain.mempool.ids().length, before);
  for (const host of [
    `localhost:${port}`,
    `127.0.0.1:${port}`,
    `[::1]:${port}`,
    'LOCALHOST',
    `cairn-box:${port}`,
  ])
    assert.equal((await call('GET', '/status', { host })).status, 200, host);
  assert.equal(await refused('API_HOST_NOT_ALLOWED'), 3);
});

test('a JSON POST with the token is accepted and signs the entry', async () => {
  const r = await call(
    'POST',
    '/entries',
    {
      ...local(),
      authorization: `Bearer ${cookie.token}`,
      'content-type': 'application/json; charset=utf-8',
    },
    entry,
  );
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.match(r.body.id!, /^[0-9a-f]{64}$/);
  assert.ok(node.chain.mempool.has(r.body.id!));
});

test('/status over HTTP, the control, the harness and the stats report agree on one node', async () => {
  const control = nodeControl(node);
  const res = await fetch(`${api.url}/status`);
  const served = (await res.json()) as NodeStatus;
  // JSON drops the fields that are undefined in memory; everything else must be the same.
  assert.deepEqual(served, JSON.parse(JSON.stringify(control.status())));
  assert.deepEqual(served, JSON.parse(JSON.stringify(node.status())));
  // The cluster harness reads the same endpoint with its own client and type.
  const harnessed = new ClusterNode('n0', {} as SpawnSpec, path.join(dataDir, 'unused.log'));
  harnessed.httpUrl = api.url;
  assert.deepEqual(await harnessed.status(), served);
  // The job worker's stats report is derived from the same status.
  const report = statsReport(node, control.status(), 1, 1);
  assert.deepEqual(
    {
      nodeId: report.nodeId,
      role: report.role,
      capabilities: report.capabilities,
      addrs: report.addrs,
      height: report.height,
      headHash: report.headHash,
      totalWork: report.totalWork,
      target: BigInt(report.target).toString(16),
      peers: report.peers,
      mempoolSize: report.mempoolSize,
      mining: report.mining,
      chainId: report.chainId,
    },
    {
      nodeId: served.peerId,
      role: served.role,
      capabilities: served.capabilities,
      addrs: served.addrs,
      height: served.height,
      headHash: served.headHash,
      totalWork: served.totalWork,
      target: served.difficultyTarget,
      peers: served.peers.map((p) => p.peerId),
      mempoolSize: served.mempoolSize,
      mining: served.mining,
      chainId: served.chainId,
    },
  );
  assert.ok(served.mempoolSize > 0, 'the entry posted above is counted');
  // Messaging reaches the report as figures only, and the collector's schema accepts them.
  assert.ok(served.messaging, 'a running node reports its messaging figures');
  assert.deepEqual(report.messaging, JSON.parse(JSON.stringify(served.messaging)));
  assert.equal(NodeStatsReport.safeParse(report).success, true);
});

test('hostName strips the port and keeps IPv6 brackets', () => {
  assert.equal(hostName('LocalHost:80'), 'localhost');
  assert.equal(hostName('[::1]:4000'), '[::1]');
  assert.equal(hostName('127.0.0.1'), '127.0.0.1');
  assert.equal(hostName('a:b:c'), undefined);
  assert.equal(hostName(''), undefined);
  assert.equal(hostName(undefined), undefined);
});
