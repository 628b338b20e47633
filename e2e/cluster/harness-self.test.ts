/**
 * The harness's own mechanics, against stub-node.ts (a few seconds, no real node needed):
 * address pinning, metrics parsing, the network config file, ready parsing, logs appended across
 * restarts, restarts on the same ports, waitFor's timeout report, loopback and mDNS guards, and
 * that no child outlives a test process killed with SIGKILL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { workForTarget } from '../../node/chain/pow.ts';
import { pinListenAddrs, transportPart } from './addrs.ts';
import { Cluster, parseMetric, testNetworkConfig } from './harness.ts';
import { netnsSupport, runMdnsClusterInNetns } from './netns.ts';
import { networkConfigJson } from './network-config.ts';
import { nodeBinary, REPO_ROOT } from './node-process.ts';

const STUB = path.join(import.meta.dirname, 'stub-node.ts');

test('pinListenAddrs keeps transports apart and replaces only port 0', () => {
  const announced = [
    '/ip4/127.0.0.1/tcp/40001/p2p/12D3KooWabc',
    '/ip4/127.0.0.1/udp/40002/webrtc-direct/certhash/uEiabc/p2p/12D3KooWabc',
    '/ip4/127.0.0.1/tcp/40003/p2p/12D3KooWabc',
  ];
  assert.equal(transportPart(announced[1]!), '/ip4/127.0.0.1/udp/40002/webrtc-direct');
  assert.deepEqual(
    pinListenAddrs(
      [
        '/ip4/127.0.0.1/udp/0/webrtc-direct',
        '/ip4/127.0.0.1/tcp/0',
        '/ip4/127.0.0.1/tcp/0',
        '/ip4/127.0.0.1/tcp/5',
      ],
      announced,
    ),
    [
      '/ip4/127.0.0.1/udp/40002/webrtc-direct',
      '/ip4/127.0.0.1/tcp/40001',
      '/ip4/127.0.0.1/tcp/40003',
      '/ip4/127.0.0.1/tcp/5',
    ],
  );
  assert.deepEqual(pinListenAddrs(['/ip4/127.0.0.1/tcp/0'], []), ['/ip4/127.0.0.1/tcp/0']);
});

test('parseMetric reads Prometheus samples with and without labels', () => {
  const text = '# HELP x y\ncairn_height 12\ncairn_peers{kind="in"} 2\ncairn_peers{kind="out",x="1"} 3\n';
  assert.equal(parseMetric(text, 'cairn_height'), 12);
  assert.equal(parseMetric(text, 'cairn_peers', { kind: 'out' }), 3);
  assert.equal(parseMetric(text, 'cairn_peers'), 2);
  assert.equal(parseMetric(text, 'cairn_nope'), undefined);
});

test('the test network config targets about one block per second and serialises bigints as strings', () => {
  const c = testNetworkConfig();
  assert.equal(c.blockTimeMs, 1000);
  assert.equal(c.retargetInterval, 10);
  const work = workForTarget(c.initialTarget!);
  assert.ok(work > 900_000n && work < 1_100_000n, `work ${work}`);
  const json = JSON.parse(networkConfigJson(c)) as Record<string, unknown>;
  assert.equal(typeof json.initialTarget, 'string');
  assert.equal(BigInt(json.initialTarget as string), c.initialTarget);
  assert.ok(Math.abs(Date.now() - c.genesisTimestamp!) < 5000);
});

test('cluster lifecycle against the stub node', { timeout: 60_000 }, async (t) => {
  const cluster = new Cluster({ entry: STUB });
  t.after(() => cluster.stopAll());
  const [a, b, c] = await cluster.start(3, (i) => ({ mine: i === 0 }));
  assert.ok(a && b && c);
  assert.equal(new Set([a.peerId, b.peerId, c.peerId]).size, 3);
  assert.ok(a.addrs[0]?.endsWith(`/p2p/${a.peerId}`));
  assert.deepEqual(c.spec.bootstrap, [...a.addrs, ...b.addrs], 'bootstrap defaults to the running nodes');
  await cluster.waitForConnected({ timeoutMs: 10_000 });
  await cluster.waitForConverged({ minHeight: 2, timeoutMs: 10_000 });
  assert.equal(await a.metric('cairn_peers', { kind: 'all' }), 2);

  const addrBefore = b.addrs[0];
  const httpBefore = b.httpUrl;
  await cluster.restart(b.name);
  assert.deepEqual(b.lastStop && [b.lastStop.code, b.lastStop.forced], [0, false]);
  assert.equal(b.addrs[0], addrBefore, 'same listen port after restart');
  assert.equal(b.httpUrl, httpBefore, 'same HTTP port after restart');
  assert.equal(b.starts, 2);
  await cluster.waitForConnected({ timeoutMs: 10_000 });
  const log = readFileSync(b.logPath, 'utf8');
  assert.equal(log.match(/"msg":"ready"/g)?.length, 2, 'log appended across restarts');

  await b.blockPeers([a.peerId]);
  await cluster.waitFor((s) => !s.statuses[b.name]?.peers.some((p) => p.peerId === a.peerId), {
    timeoutMs: 5000,
    description: 'b drops a',
  });

  await cluster.kill(c.name);
  assert.equal(c.exit?.signal, 'SIGKILL');
  const err = await cluster
    .waitFor(() => false, { timeoutMs: 600, intervalMs: 100, description: 'something impossible' })
    .then(
      () => undefined,
      (e: Error) => e,
    );
  assert.ok(err);
  assert.match(err.message, /timed out after 600 ms waiting for: something impossible/);
  assert.match(err.message, new RegExp(`${a.name} \\[running pid ${a.pid}\\]`));
  assert.match(err.message, /node2 \[exited \(code null, signal SIGKILL\)\]/);
  assert.match(err.message, /peers \[[^\]]*node\d\(score 0/, 'peers shown by name');
  assert.ok(err.message.includes(`logs: ${cluster.runDir}`));

  const stopped = await cluster.stopAll();
  assert.equal(stopped[a.name]?.code, 0);
  assert.equal(stopped[b.name]?.code, 0);
  await cluster.removeRunDir();
});

test('guards: loopback only, mDNS only in a test namespace', async () => {
  const cluster = new Cluster({ entry: STUB, network: false });
  await assert.rejects(cluster.addNode({ listen: ['/ip4/0.0.0.0/tcp/0'] }), /only loopback/);
  await assert.rejects(cluster.addNode({ bootstrap: ['/ip4/10.0.0.1/tcp/1/p2p/x'] }), /only loopback/);
  await assert.rejects(cluster.addNode({ mdns: true }), /mDNS is only allowed/);
  await assert.rejects(
    new Cluster({ entry: STUB, allowMdns: true }).addNode({ mdns: true }),
    /refusing mDNS/,
  );
  await cluster.stopAll();
});

test('no node outlives a test process that is killed with SIGKILL', { timeout: 30_000 }, async () => {
  const script = `
    import { Cluster } from ${JSON.stringify(path.join(import.meta.dirname, 'harness.ts'))};
    const c = new Cluster({ entry: ${JSON.stringify(STUB)}, network: false });
    const nodes = await c.start(2);
    console.log(nodes.map((n) => n.pid).join(','));
    setInterval(() => {}, 1000);`;
  const child = spawn(nodeBinary(), ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const deadline = Date.now() + 20_000;
  while (!out.includes('\n') && Date.now() < deadline) await sleep(50);
  const pids = out.trim().split(',').map(Number);
  assert.equal(pids.length, 2, `child printed ${out}`);
  for (const pid of pids) assert.ok(alive(pid));
  child.kill('SIGKILL');
  const until = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < until) await sleep(50);
  assert.deepEqual(pids.filter(alive), [], 'nodes still running after their parent died');
});

/** True if the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

test('netns driver: stub nodes discover each other by multicast inside a fresh namespace', {
  timeout: 60_000,
  skip: process.env.CAIRN_SKIP_NETNS === '1' ? 'CAIRN_SKIP_NETNS=1' : false,
}, async () => {
  const support = netnsSupport();
  assert.ok(support.ok, support.ok ? '' : support.reason);
  const r = await runMdnsClusterInNetns({ nodes: 3, entry: STUB, timeoutMs: 15_000 });
  assert.ok(r.ok, r.error);
  assert.deepEqual(r.interfaces, ['lo']);
  assert.notEqual(r.netns, readlinkSync('/proc/self/ns/net'));
  for (const n of r.nodes) assert.equal(n.peers.length, 2, `${n.name}: ${n.peerNames.join(', ')}`);
  for (const s of Object.values(r.stop ?? {})) assert.equal(s.code, 0);
  await rm(r.runDir, { recursive: true, force: true });
});

test('waitFor fails at once when a node exits without being asked to', { timeout: 30_000 }, async (t) => {
  const cluster = new Cluster({ entry: STUB, network: false });
  t.after(() => cluster.stopAll());
  const [a] = await cluster.start(2);
  process.kill(a!.pid!, 'SIGTERM');
  const t0 = Date.now();
  await assert.rejects(
    cluster.waitFor(() => false, { timeoutMs: 20_000, description: 'never' }),
    /never: node0 exited unexpectedly[\s\S]*node0 \[exited \(code 0, signal null\) UNEXPECTEDLY/,
  );
  assert.ok(Date.now() - t0 < 5000);
  await cluster.removeRunDir();
});
