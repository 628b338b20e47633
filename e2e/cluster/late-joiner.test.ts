/**
 * Issue 3, "Must show": a late joiner syncs 2,000 blocks and then follows the head; a node
 * restarted from its data dir resumes without downloading again.
 *
 * A source node starts from a store seeded with 2,000 blocks (an easy-target network whose
 * genesis lies a day back, so the seeded timestamps are in the past) and mines on top of it. A
 * fresh node bootstrapped only to the source must range-sync the whole chain, then stay on the
 * source's head while new blocks are mined. Restarted from its data dir, it must come up at
 * the height it had, and import only the few blocks mined while it was down.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readNetworkConfig } from '../../node/config-file.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { Cluster, type ClusterNode, type NodeStatus, seedableNetwork } from './harness.ts';

const SEEDED = 2_000;

type LogEntry = Record<string, unknown> & { msg?: string };

/**
 * The node's log file split into runs (one per process start, at the harness's spawn lines),
 * each a list of parsed JSON lines.
 */
async function logRuns(node: ClusterNode): Promise<LogEntry[][]> {
  const runs: LogEntry[][] = [];
  for (const line of (await readFile(node.logPath, 'utf8')).split('\n')) {
    let e: LogEntry;
    try {
      e = JSON.parse(line) as LogEntry;
    } catch {
      continue;
    }
    if (e.harness === 'spawn') runs.push([]);
    else runs.at(-1)?.push(e);
  }
  return runs;
}

/** Run `index` of the node's log once its "ready" line has reached the file (writes are async). */
async function runLog(node: ClusterNode, index: number): Promise<LogEntry[]> {
  for (let i = 0; ; i++) {
    const run = (await logRuns(node))[index];
    if (run?.some((e) => e.msg === 'ready')) return run;
    if (i >= 40)
      throw new Error(`${node.name}: run ${index} with a "ready" line not found in ${node.logPath}`);
    await sleep(50);
  }
}

/** Sum of every series of a Prometheus counter (all label sets). */
async function metricSum(node: ClusterNode, name: string): Promise<number> {
  let sum = 0;
  for (const line of (await node.metrics()).split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

test('a late joiner syncs 2,000 blocks and follows the head; restarted from its data dir it does not download again', {
  timeout: 180_000,
}, async (t) => {
  // An easy target so 2,000 blocks can be written in seconds. The source's miner starts at that
  // target too; retargeting (×4 per 10 blocks) brings it to about a block a second within ~100 blocks.
  const cluster = new Cluster({ network: seedableNetwork() });
  t.diagnostic(`run dir ${cluster.runDir} (removed if the test passes, unless CAIRN_KEEP_RUN_DIR is set)`);
  try {
    const network = await readNetworkConfig(cluster.networkConfigPath!);
    const sourceDir = path.join(cluster.runDir, 'source');
    const t0 = performance.now();
    const seeded = await seedChain([sourceDir], network, { blocks: SEEDED, entriesPerBlock: 1 });
    assert.equal(seeded.height, SEEDED);
    t.diagnostic(`seeded ${SEEDED} blocks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const [source] = await cluster.start(1, {
      name: 'source',
      dataDir: sourceDir,
      mine: true,
      bootstrap: [],
    });
    assert.ok(source);
    const sourceStart = await source.status();
    assert.ok(
      sourceStart.height >= SEEDED,
      `source starts from its seeded store (height ${sourceStart.height})`,
    );

    // ---- A fresh node joins late and range-syncs the whole chain. ----
    const joiner = await cluster.addNode({ name: 'joiner', bootstrapFrom: ['source'] });
    const tJoin = performance.now();
    const synced = await cluster.waitFor((s) => (s.statuses.joiner?.height ?? 0) >= SEEDED, {
      timeoutMs: 60_000,
      intervalMs: 100,
      description: `joiner reaches height ${SEEDED}`,
    });
    const syncSeconds = (performance.now() - tJoin) / 1000;
    t.diagnostic(`joiner at height ${synced.statuses.joiner!.height} after ${syncSeconds.toFixed(1)} s`);
    const firstRun = await runLog(joiner, 0);
    const firstSync = firstRun.find((e) => e.msg === 'sync started');
    assert.ok(firstSync, 'the joiner logged "sync started"');
    assert.equal(firstSync.ourHeight, 0, 'the joiner started from genesis');
    assert.ok(
      Number(firstSync.theirHeight) >= SEEDED,
      `it synced towards the source's head (theirHeight ${firstSync.theirHeight})`,
    );
    assert.equal(firstSync.peer, source.peerId, 'from the source');
    // Gossip can deliver a few of the newest blocks (and their ancestors by hash) before range
    // sync reaches them; everything else must have come by range sync.
    // The counter grows when a sync run ends, which can be a moment after the height got there.
    for (let i = 0; ; i++) {
      const run = await runLog(joiner, 0);
      if (run.some((e) => e.msg === 'sync finished' || e.msg === 'sync aborted')) break;
      assert.ok(i < 300, 'the first sync run did not end within 30 s');
      await sleep(100);
    }
    const rangeSynced = (await joiner.metric('cairn_sync_blocks_total')) ?? 0;
    assert.ok(
      rangeSynced >= SEEDED - 100,
      `range sync imported ${rangeSynced} blocks (expected ≈ ${SEEDED})`,
    );

    // ---- It then follows the head as new blocks are mined (checked twice, a few blocks apart). ----
    let head: NodeStatus | undefined;
    for (let round = 0; round < 2; round++) {
      const from = (await source.status()).height;
      const followed = await cluster.waitForConverged({
        minHeight: from + 3,
        timeoutMs: 45_000,
        description: `joiner and source on one head, ≥ 3 blocks past ${from}`,
      });
      head = followed.statuses.source!;
      t.diagnostic(`following: both at height ${head.height} (${head.headHash.slice(0, 16)})`);
    }
    const [fromSource, fromJoiner] = await Promise.all([
      source.chain(head!.height - 30, head!.height),
      joiner.chain(head!.height - 30, head!.height),
    ]);
    assert.equal(fromJoiner.blocks.length, 31);
    assert.deepEqual(fromJoiner.blocks, fromSource.blocks, 'the joiner holds the same recent blocks');
    const afterSync = await runLog(joiner, 0);
    const gossiped = afterSync.filter(
      (e) => e.msg === 'block received' && Number(e.height) > Number(firstSync.theirHeight),
    );
    assert.ok(gossiped.length > 0, 'the joiner received blocks newer than its sync target by gossip');
    const laterSyncs = afterSync.filter((e) => e.msg === 'sync started').slice(1);
    for (const s of laterSyncs)
      assert.ok(Number(s.ourHeight) >= SEEDED, `a later sync started over from height ${s.ourHeight}`);

    // ---- Restart from the data dir: no second download. ----
    const before: NodeStatus = await joiner.status();
    await cluster.restart('joiner');
    assert.equal(joiner.lastStop?.code, 0, 'graceful shutdown');
    assert.equal((await logRuns(joiner)).length, 2, 'two runs of the joiner in its log');
    const ready = (await runLog(joiner, 1)).filter((e) => e.msg === 'ready');
    assert.equal(ready.length, 1, 'one "ready" line from the restarted process');
    const readyHeight = Number(ready[0]!.height);
    t.diagnostic(`restarted: ready at height ${readyHeight} (was ${before.height} before the stop)`);
    assert.ok(readyHeight >= SEEDED, `ready line reports height ${readyHeight} ≥ ${SEEDED}`);
    assert.ok(readyHeight >= before.height, `resumed at ${readyHeight}, not below ${before.height}`);

    const resumeFrom = (await source.status()).height;
    const caughtUp = await cluster.waitForConverged({
      minHeight: resumeFrom + 3,
      timeoutMs: 60_000,
      description: `restarted joiner back on the source's head, ≥ 3 blocks past ${resumeFrom}`,
    });
    const now = caughtUp.statuses.joiner!.height;
    const newBlocks = now - readyHeight;
    const syncedAgain = (await joiner.metric('cairn_sync_blocks_total')) ?? 0;
    const processed = await metricSum(joiner, 'cairn_blocks_processed_total');
    t.diagnostic(
      `after restart: ${newBlocks} new blocks; range sync imported ${syncedAgain}, blocks processed ${processed}`,
    );
    assert.ok(newBlocks >= 3, `it imported the new blocks (${newBlocks})`);
    // Only the blocks mined since the restart (plus a few side blocks at most) may be processed.
    assert.ok(
      syncedAgain <= newBlocks,
      `range sync after restart imported ${syncedAgain} > ${newBlocks} new blocks`,
    );
    assert.ok(syncedAgain < SEEDED / 10, `range sync after restart imported ${syncedAgain} blocks`);
    assert.ok(processed <= newBlocks + 10, `processed ${processed} blocks for ${newBlocks} new ones`);
    const syncs = (await runLog(joiner, 1)).filter((e) => e.msg === 'sync started');
    for (const s of syncs)
      assert.ok(Number(s.ourHeight) >= readyHeight, `a sync after restart started from ${s.ourHeight}`);

    const stopped = await cluster.stopAll();
    for (const [name, r] of Object.entries(stopped))
      assert.deepEqual([name, r.code, r.forced], [name, 0, false], `${name} shut down gracefully`);
    await cluster.removeRunDir();
  } finally {
    await cluster.stopAll();
  }
});
