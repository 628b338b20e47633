/**
 * Issue 3, "Must show": two nodes that share only WebRTC-direct connect and sync.
 *
 * Node a listens only on /ip4/127.0.0.1/udp/0/webrtc-direct and mines; node b listens only on
 * WebRTC-direct too and bootstraps from a's webrtc-direct multiaddr (with /certhash and /p2p).
 * Neither has a TCP address, and the connection each reports for the other is a webrtc-direct
 * one (`remoteAddrs` per peer in GET /status). b syncs to a's height and keeps following it.
 * Then a restarts from its data dir: its webrtc-direct multiaddr, certhash included, is
 * identical (the certificate persists), and the two reconnect over WebRTC and sync again.
 *
 * A second test checks those SIGTERM shutdowns were graceful: node-datachannel 0.33 aborts
 * when its UDP mux is torn down under incoming STUN, so WebRTC nodes skip that teardown and
 * let the process exit close the sockets (node/node.ts, CairnNode.stop).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, type ClusterNode, type Snapshot, WEBRTC_LISTEN } from './harness.ts';

interface StatusWithConnections {
  addrs: string[];
  peers: { peerId: string; remoteAddrs?: string[] }[];
}

const isWebrtcDirect = (a: string) => a.split('/').includes('webrtc-direct');
const hasTcp = (a: string) => a.split('/').includes('tcp');

/** The remote addresses `node` reports for its connections to `other` (empty if not connected). */
async function connectionAddrs(node: ClusterNode, other: ClusterNode): Promise<string[]> {
  const s = await node.getJson<StatusWithConnections>('/status');
  return s.peers.find((p) => p.peerId === other.peerId)?.remoteAddrs ?? [];
}

/** Both list each other as a peer, over at least one connection, and every connection is WebRTC-direct. */
async function assertWebrtcOnly(a: ClusterNode, b: ClusterNode): Promise<void> {
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    const s = await x.getJson<StatusWithConnections>('/status');
    assert.ok(s.addrs.length > 0, `${x.name} listens nowhere`);
    assert.deepEqual(s.addrs.filter(hasTcp), [], `${x.name} has a TCP listen address`);
    assert.ok(s.addrs.every(isWebrtcDirect), `${x.name} listens on something else: ${s.addrs.join(' ')}`);
    const remote = await connectionAddrs(x, y);
    assert.ok(remote.length > 0, `${x.name} reports no connection to ${y.name}`);
    for (const r of remote) {
      assert.ok(isWebrtcDirect(r), `${x.name}'s connection to ${y.name} is not WebRTC-direct: ${r}`);
      assert.match(r, /^\/ip4\/127\.0\.0\.1\/udp\/\d+\//, `${x.name}'s connection to ${y.name}: ${r}`);
    }
  }
}

const peersOf = (s: Snapshot, n: ClusterNode) => s.statuses[n.name]?.peers.map((p) => p.peerId) ?? [];

/** Every SIGTERM shutdown of the first test (a's restart, then both at the end), for the second. */
const shutdowns: { name: string; code: number | null; signal: string | null; forced: boolean }[] = [];

test('two nodes that share only WebRTC-direct connect and sync; the certhash survives a restart', {
  timeout: 180_000,
}, async (t) => {
  const cluster = new Cluster();
  t.after(async () => {
    await cluster.stopAll();
  });
  t.diagnostic(`run dir ${cluster.runDir} (removed if the test passes, unless CAIRN_KEEP_RUN_DIR is set)`);
  const t0 = Date.now();

  // a has no bootstrap list, so after its restart it is b that has to dial it again.
  const a = await cluster.addNode({ name: 'a', mine: true, listen: [WEBRTC_LISTEN], bootstrap: [] });
  const aRtc = a.addrsOf('webrtc-direct');
  t.diagnostic(`a announces ${a.addrs.join(' ')}`);
  assert.equal(aRtc.length, 1, `a announces one webrtc-direct address: ${a.addrs.join(' ')}`);
  assert.deepEqual(a.addrs, aRtc, 'a announces nothing but WebRTC-direct');
  assert.match(
    aRtc[0]!,
    new RegExp(
      `^/ip4/127\\.0\\.0\\.1/udp/\\d+/webrtc-direct/certhash/[^/]+(/certhash/[^/]+)*/p2p/${a.peerId}$`,
    ),
  );

  const b = await cluster.addNode({ name: 'b', listen: [WEBRTC_LISTEN], bootstrap: aRtc });
  assert.ok(b.addrs.length > 0 && b.addrs.every(isWebrtcDirect), `b announces ${b.addrs.join(' ')}`);
  t.diagnostic(`both started after ${Date.now() - t0} ms`);

  // ---- Connect ----
  const connected = await cluster.waitForConnected({ timeoutMs: 30_000 });
  t.diagnostic(`connected after ${connected.elapsedMs} ms`);
  await assertWebrtcOnly(a, b);
  t.diagnostic(`b sees a at ${(await connectionAddrs(b, a)).join(' ')}`);

  // ---- Sync, and keep following ----
  const synced = await cluster.waitForConverged({ minHeight: 3, timeoutMs: 60_000 });
  const h1 = synced.statuses[b.name]!.height;
  t.diagnostic(`b synced to a's head at height ${h1} after ${synced.elapsedMs} ms`);
  const [fromA, fromB] = await Promise.all([a.chain(0, h1), b.chain(0, h1)]);
  assert.equal(fromB.blocks.length, h1 + 1);
  assert.deepEqual(fromB.blocks, fromA.blocks, 'b holds a’s chain block for block');
  const followed = await cluster.waitForConverged({ minHeight: h1 + 3, timeoutMs: 60_000 });
  const h2 = followed.statuses[b.name]!.height;
  t.diagnostic(`b followed a to height ${h2}`);
  assert.equal(await b.metric('cairn_blocks_mined_total'), 0, 'b mines nothing: its blocks came from a');

  // ---- Restart a: same certhash, b reconnects ----
  await cluster.restart(a.name);
  const { code, signal, forced } = a.lastStop!;
  shutdowns.push({ name: 'a (restart)', code, signal, forced });
  t.diagnostic(`a stopped (code ${code}, signal ${signal}), restarted, announces ${a.addrs.join(' ')}`);
  const certhashes = (addrs: readonly string[]) =>
    addrs.flatMap((x) => x.split('/').filter((_p, i, all) => all[i - 1] === 'certhash'));
  assert.equal(certhashes(aRtc).length, 1);
  assert.deepEqual(certhashes(a.addrs), certhashes(aRtc), 'a’s certificate hash changed on restart');
  assert.deepEqual(
    a.addrsOf('webrtc-direct'),
    aRtc,
    'a’s webrtc-direct address (certhash included) survived',
  );
  assert.deepEqual(a.addrs, aRtc, 'a still announces nothing but WebRTC-direct');
  const back = await a.status();
  assert.ok(back.height >= h2, `a resumed from its store (height ${back.height} < ${h2})`);

  const tRe = Date.now();
  await cluster.waitFor((s) => peersOf(s, a).includes(b.peerId) && peersOf(s, b).includes(a.peerId), {
    timeoutMs: 45_000,
    description: 'a and b connected again after a’s restart',
  });
  t.diagnostic(`reconnected ${Date.now() - tRe} ms after a was ready again`);
  await assertWebrtcOnly(a, b);
  t.diagnostic(
    `after the restart b sees a at ${(await connectionAddrs(b, a)).join(' ')}; a sees b at ${(await connectionAddrs(a, b)).join(' ')}`,
  );
  const again = await cluster.waitForConverged({ minHeight: back.height + 2, timeoutMs: 60_000 });
  t.diagnostic(`b follows the restarted a: both at height ${again.statuses[b.name]!.height}`);

  const stopped = await cluster.stopAll();
  for (const [name, r] of Object.entries(stopped)) {
    shutdowns.push({ name, code: r.code, signal: r.signal, forced: r.forced });
    t.diagnostic(`${name} stopped: code ${r.code}, signal ${r.signal}${r.forced ? ' (SIGKILLed)' : ''}`);
  }
  t.diagnostic(`total ${Date.now() - t0} ms`);
  await cluster.removeRunDir();
});

// Known bug, kept visible without failing the suite: a node with a WebRTC-direct listener often
// aborts on SIGTERM (exit by SIGABRT/SIGSEGV instead of code 0). The juice mux thread of
// node-datachannel throws std::system_error in IceUdpMuxListener::UnhandledStunRequestCallback
// when a peer's STUN request arrives while host.stop() tears the listener down.
test('WebRTC-direct nodes shut down gracefully on SIGTERM (exit code 0)', () => {
  assert.equal(shutdowns.length, 3, 'the first test did not get through its three shutdowns');
  assert.deepEqual(
    shutdowns.filter((s) => s.code !== 0 || s.forced),
    [],
    'shutdowns that were not graceful',
  );
});
