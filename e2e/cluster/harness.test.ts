/**
 * Smoke test of the cluster harness with the real node program: two nodes on loopback (one
 * mining, on the fast test network), converge at height ≥ 2 and see each other; a graceful
 * restart brings the follower back with the same peer id, data and ports; logs are kept.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Cluster } from './harness.ts';

test('cluster smoke: two nodes converge, a restarted node keeps its identity, logs are kept', {
  timeout: 240_000,
}, async (t) => {
  const cluster = new Cluster();
  t.after(async () => {
    await cluster.stopAll();
  });
  t.diagnostic(`run dir ${cluster.runDir} (removed if the test passes, unless CAIRN_KEEP_RUN_DIR is set)`);
  const [miner, follower] = await cluster.start(2, (i) => ({ mine: i === 0 }));
  assert.ok(miner && follower);
  assert.notEqual(miner.peerId, follower.peerId);
  for (const n of [miner, follower]) {
    assert.ok(n.addrs.length > 0, `${n.name} announced no addresses`);
    for (const a of n.addrs) assert.match(a, new RegExp(`^/ip4/127\\.0\\.0\\.1/.*/p2p/${n.peerId}$`));
    assert.match(n.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  }

  await cluster.waitForConnected({ timeoutMs: 30_000 });
  const converged = await cluster.waitForConverged({ minHeight: 2, timeoutMs: 90_000 });
  const height = converged.statuses[follower.name]!.height;
  t.diagnostic(`converged at height ${height} after ${converged.elapsedMs} ms`);
  const [fromMiner, fromFollower] = await Promise.all([miner.chain(0, 2), follower.chain(0, 2)]);
  assert.equal(fromMiner.blocks.length, 3);
  assert.deepEqual(fromFollower.blocks, fromMiner.blocks);
  assert.ok((await miner.metrics()).length > 0, 'metrics endpoint answers');

  const { peerId, addrs } = follower;
  await cluster.restart(follower.name);
  assert.equal(follower.lastStop?.code, 0, 'graceful shutdown exits with code 0');
  assert.equal(follower.lastStop?.forced, false, 'shutdown finished before the SIGKILL timeout');
  assert.equal(follower.peerId, peerId, 'same peer id after restart');
  assert.deepEqual(follower.addrs, addrs, 'same addresses after restart');
  const back = await follower.status();
  assert.ok(back.height >= height, `resumed from its store (height ${back.height} < ${height})`);

  await cluster.waitForConnected({ timeoutMs: 30_000 });
  await cluster.waitForConverged({ minHeight: height + 1, timeoutMs: 60_000 });

  const stopped = await cluster.stopAll();
  for (const [name, r] of Object.entries(stopped))
    assert.deepEqual([name, r.code, r.forced], [name, 0, false]);
  for (const n of [miner, follower]) {
    assert.ok(existsSync(n.logPath), `${n.logPath} exists`);
    const log = readFileSync(n.logPath, 'utf8');
    assert.equal(log.match(/"msg":"ready"/g)?.length, n === follower ? 2 : 1);
  }
  await cluster.removeRunDir();
});
