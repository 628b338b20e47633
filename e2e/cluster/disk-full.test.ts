/**
 * Disk full: a mining node whose data dir lives on a small tmpfs that this test mounts fills it
 * with entries posted to its HTTP API until a store commit fails. It must then stop mining and
 * relaying at once, say why in its log, /status and /metrics, and exit with code 74 (EX_IOERR);
 * once the tmpfs is grown ("space is freed"), it reopens at the head it last committed and syncs
 * on from its peer. Needs root and mount(2); skipped with a clear message where either is denied.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, parseMetric } from './harness.ts';

const SMALL = '6m';
const LARGE = '256m';

function mount(dir: string, size: string, remount = false): string | undefined {
  const args = remount
    ? ['-o', `remount,size=${size}`, dir]
    : ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir];
  const r = spawnSync('mount', args, { encoding: 'utf8' });
  return r.status === 0 ? undefined : (r.stderr || r.error?.message || `mount exited ${r.status}`).trim();
}

function canMount(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: cannot mount a size-limited tmpfs';
  return undefined;
}

test('disk full: the node stops mining and relaying, says why, exits 74, and reopens at its last committed head', {
  timeout: 240_000,
  skip: canMount(),
}, async (t) => {
  const cluster = new Cluster({ network: { blockTimeMs: 1000 } });
  const disk = path.join(cluster.runDir, 'small-disk');
  mkdirSync(disk, { recursive: true });
  const refused = mount(disk, SMALL);
  if (refused) {
    t.skip(`mounting a tmpfs is not permitted here: ${refused}`);
    return;
  }
  let passed = false;
  try {
    await cluster.start(1, () => ({ name: 'peer', mine: true }));
    const victim = await cluster.addNode({
      name: 'victim',
      mine: true,
      dataDir: path.join(disk, 'victim'),
      bootstrapFrom: ['peer'],
    });
    await cluster.waitForConverged({ minHeight: 2, timeoutMs: 60_000 });

    // Fill the disk: ~30 KB entries, as fast as the node takes them, bounded in count and time.
    // The node stays up 5 s after the failure to show why, then exits: so filling stops the moment
    // the failure is logged (a post in flight is not waited for) and /status is read at once.
    let failedLine: string | undefined;
    const failure = victim
      .waitForLog(/store commit failed/, { timeoutMs: 120_000 })
      .then((l) => (failedLine = l));
    let failedStatus: Awaited<ReturnType<typeof victim.status>> | undefined;
    const readFailedStatus = async () => {
      const st = await victim.status().catch(() => undefined);
      if (st?.storage.ok === false) failedStatus = st;
    };
    const deadline = Date.now() + 120_000;
    for (let i = 0; i < 5_000 && Date.now() < deadline && !failedStatus && !failedLine; i++) {
      await Promise.race([
        victim.postJson('/entries', { content: `${i}:${'f'.repeat(30_000)}` }).catch(() => {}),
        failure,
      ]);
      if (i % 5 === 0 && !failedLine) await readFailedStatus();
    }
    const line = JSON.parse(await failure) as { err: string; committedHeight: number };
    assert.match(line.err, /full|SQLITE_FULL|disk/i, 'the log names the reason');
    for (const until = Date.now() + 4_000; !failedStatus && Date.now() < until; ) {
      await readFailedStatus();
      if (!failedStatus) await sleep(50);
    }
    assert.ok(failedStatus, '/status reports the failed store before the node exits');
    const storage = failedStatus.storage;
    assert.ok(!storage.ok);
    assert.match(storage.reason, /full|SQLITE_FULL|disk/i);
    assert.equal(storage.committedHeight, line.committedHeight);
    assert.equal(failedStatus.mining, false, 'mining stops at once');
    const metrics = await victim.metrics().catch(() => '');
    if (metrics) assert.equal(parseMetric(metrics, 'cairn_storage_failed'), 1);

    const exit = await victim.waitExit(30_000);
    assert.equal(exit?.code, 74, `exits with EX_IOERR (got ${JSON.stringify(exit)})`);
    const log = victim.recentLog(400).join('\n');
    assert.match(log, /exiting with code 74/);

    // Space is back: the node reopens at exactly the head it last committed, then syncs on.
    assert.equal(mount(disk, LARGE, true), undefined);
    const ready = victim.waitForLog((e) => e.msg === 'ready', { timeoutMs: 60_000 });
    await cluster.restart('victim', { mine: false });
    const readyLine = JSON.parse(await ready) as { height: number };
    assert.equal(readyLine.height, storage.committedHeight, 'reopened at the last committed head');
    const peerHeight = (await cluster.node('peer').status()).height;
    await cluster.waitFor(async () => (await victim.status()).height >= peerHeight, {
      timeoutMs: 60_000,
      description: `victim syncs on to the peer's height ${peerHeight}`,
    });
    assert.equal((await victim.status()).storage.ok, true);
    passed = true;
  } finally {
    await cluster.stopAll().catch(() => {});
    spawnSync('umount', ['-l', disk]);
    // A failed run keeps its logs for reading.
    if (passed) await cluster.removeRunDir().catch(() => {});
    else t.diagnostic(`logs kept in ${cluster.runDir}`);
  }
});
