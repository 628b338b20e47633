/**
 * Issue 3, "Must show": a partition — two halves mine apart, then heal; everyone ends on the
 * most-work chain, the losing blocks are reported stale and their entries return to the mempool.
 *
 * Four real nodes on loopback (fast test network, ~0.5 s blocks): half A = a0 (miner), a1; half
 * B = b0 (miner), b1. After a common prefix, each node blocks the peers of the other half. Entries
 * posted on b1 are mined into B's chain. Once B has diverged by more than 6 blocks, b0 stops
 * mining (a restart without --mine), so B's chain is frozen while A keeps mining; the halves are
 * healed once A has more work (and two more blocks). Then:
 *
 *  - all four nodes converge on a head that extends A's pre-heal head (the most-work chain);
 *  - b0 and b1 log every one of B's former blocks as `orphaned block` / `reorged-out`, and a
 *    `reorg` as deep as B's divergence;
 *  - right after that reorg, the entries of B's blocks are back in b0's and b1's mempools;
 *  - the deep fork is reported as a network split (`cairn_network_splits_detected_total`);
 *  - after mempool reconciliation A's miner re-includes the entries: the final main chain holds
 *    each of them exactly once (they are the only entries ever posted) and no mempool keeps them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, type ClusterNode, type NodeStatus } from './harness.ts';

type LogEntry = Record<string, unknown> & { msg?: string };

interface ChainBlock {
  height: number;
  hash: string;
  entries: number;
}

const chainOf = async (n: ClusterNode, from: number, to: number): Promise<ChainBlock[]> =>
  (await n.getJson<{ blocks: ChainBlock[] }>(`/chain?from=${from}&to=${to}`)).blocks;

/** B must diverge by more than 6 blocks: deeper forks are reported as network splits. */
const DIVERGENCE = 7;
const ENTRIES = 3;

test('partition: two halves mine apart and heal; all end on the most-work chain, losing blocks are stale, their entries return', {
  timeout: 240_000,
}, async (t) => {
  // Half-second blocks keep the partition phase short.
  const cluster = new Cluster({ network: { blockTimeMs: 500 } });
  t.diagnostic(`run dir ${cluster.runDir} (removed if the test passes, unless CAIRN_KEEP_RUN_DIR is set)`);
  const t0 = Date.now();
  const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;
  try {
    const names = ['a0', 'a1', 'b0', 'b1'];
    const nodes = await cluster.start(4, (i) => ({
      name: names[i],
      mine: names[i] === 'a0' || names[i] === 'b0',
    }));
    const [a0, a1, b0, b1] = nodes as [ClusterNode, ClusterNode, ClusterNode, ClusterNode];
    const A = [a0, a1];
    const B = [b0, b1];
    const idsOf = (ns: ClusterNode[]) => ns.map((n) => n.peerId);
    await cluster.waitForConnected({ timeoutMs: 30_000 });
    await cluster.waitForConverged({
      minHeight: 3,
      timeoutMs: 60_000,
      description: 'a common prefix of ≥ 3 blocks',
    });
    t.diagnostic(`${elapsed()}: 4 nodes connected on a common chain`);

    // ---- Partition: every node blocks the other half. ----
    await Promise.all([...A.map((n) => n.blockPeers(idsOf(B))), ...B.map((n) => n.blockPeers(idsOf(A)))]);
    const separated = (s: { statuses: Readonly<Record<string, NodeStatus>> }) =>
      [...A.map((n) => [n, B] as const), ...B.map((n) => [n, A] as const)].every(([n, others]) => {
        const st = s.statuses[n.name];
        return st !== undefined && !st.peers.some((p) => idsOf(others).includes(p.peerId));
      });
    const parted = await cluster.waitFor(separated, {
      timeoutMs: 15_000,
      description: 'no connection across the halves',
    });
    const partHeight = Math.max(...Object.values(parted.statuses).map((s) => s.height));
    t.diagnostic(`${elapsed()}: partitioned at height ≈ ${partHeight}`);

    // Entries posted in B get mined there (and must not leak to A).
    const posted: string[] = [];
    for (let i = 0; i < ENTRIES; i++)
      posted.push((await b1.postEntry(`partition entry ${i}`, [['half', 'B']])).id);
    await cluster.waitFor(
      async () => {
        const pool = new Set((await b1.mempool()).ids);
        return posted.every((id) => !pool.has(id));
      },
      { timeoutMs: 30_000, description: 'the entries posted on b1 mined in half B' },
    );

    // B diverges by more than 6 blocks, then its miner stops; A keeps mining.
    // (The fork is at most partHeight, so this is a divergence of at least DIVERGENCE blocks.)
    await cluster.waitFor((s) => (s.statuses.b1?.height ?? 0) >= partHeight + DIVERGENCE, {
      timeoutMs: 60_000,
      description: `half B ≥ ${DIVERGENCE} blocks past the partition`,
    });
    await cluster.restart('b0', { mine: false, bootstrap: [...b1.addrs] });
    await b0.blockPeers(idsOf(A));
    await cluster.waitFor(separated, {
      timeoutMs: 15_000,
      description: 'still partitioned after b0 restarted',
    });
    const bConv = await cluster.waitForConverged({
      nodes: ['b0', 'b1'],
      timeoutMs: 30_000,
      description: 'half B on one head',
    });
    const bHead = bConv.statuses.b1!;
    // A must have more work than B's chain, which no longer grows (so A's lead can only widen).
    const aConv = await cluster.waitFor(
      (s) => {
        const a = s.statuses.a0;
        const a1s = s.statuses.a1;
        return (
          a !== undefined &&
          a1s?.headHash === a.headHash &&
          BigInt(a.totalWork) > BigInt(bHead.totalWork) &&
          a.height >= bHead.height + 2
        );
      },
      { timeoutMs: 60_000, description: 'half A on one head with more work than half B' },
    );
    const aHead = aConv.statuses.a0!;
    t.diagnostic(
      `${elapsed()}: before healing A at ${aHead.height} (work ${aHead.totalWork}), B at ${bHead.height} (work ${bHead.totalWork})`,
    );

    // The fork point and B's losing blocks.
    const [bChain, aChain] = await Promise.all([chainOf(b1, 0, bHead.height), chainOf(a1, 0, bHead.height)]);
    assert.equal(bChain.length, bHead.height + 1);
    assert.equal(bChain.at(-1)!.hash, bHead.headHash);
    let fork = 0;
    while (fork + 1 <= bHead.height && aChain[fork + 1]?.hash === bChain[fork + 1]!.hash) fork++;
    const losing = bChain.slice(fork + 1);
    const divergence = losing.length;
    t.diagnostic(`fork at height ${fork}; B's ${divergence} blocks will lose`);
    assert.ok(divergence > 6, `half B diverged by ${divergence} blocks (need > 6 for a network split)`);
    assert.equal(
      losing.reduce((n, b) => n + b.entries, 0),
      ENTRIES,
      'the posted entries are in B’s blocks (and no other entries exist)',
    );
    for (const n of A) {
      const pool = new Set((await n.mempool()).ids);
      assert.ok(
        !posted.some((id) => pool.has(id)),
        `entries posted in B leaked to ${n.name} during the partition`,
      );
    }
    const splitsBefore = Promise.all(
      B.map(async (n) => (await n.metric('cairn_network_splits_detected_total')) ?? 0),
    );
    assert.deepEqual(await splitsBefore, [0, 0], 'no split reported before healing');

    // From here on, every node's log lines as they come (in memory: no race with the log file).
    const logSinceHeal = new Map<string, LogEntry[]>();
    const stopCollecting = cluster.nodes.map((n) => {
      const lines: LogEntry[] = [];
      logSinceHeal.set(n.name, lines);
      return n.onLine((line) => {
        try {
          lines.push(JSON.parse(line) as LogEntry);
        } catch {
          // not a JSON line
        }
      });
    });
    // B's mempools as soon as each logs the deep reorg (before A can re-mine the entries).
    const poolAtReorg = B.map((n) =>
      n
        .waitForLog((e) => e.msg === 'reorg' && Number(e.depth) >= divergence, { timeoutMs: 60_000 })
        .then(async () => (await n.mempool()).ids),
    );
    for (const p of poolAtReorg) p.catch(() => {}); // awaited below

    // ---- Heal. ----
    const tHeal = Date.now();
    await Promise.all([...A.map((n) => n.unblockPeers(idsOf(B))), ...B.map((n) => n.unblockPeers(idsOf(A)))]);
    const healed = await cluster.waitForConverged({
      minHeight: aHead.height,
      timeoutMs: 60_000,
      description: `all four nodes on one head at height ≥ ${aHead.height}`,
    });
    t.diagnostic(
      `${elapsed()}: converged ${Date.now() - tHeal} ms after healing, at height ${healed.statuses.a0!.height}`,
    );

    // Everyone is on A's (most-work) chain: A's pre-heal head is on every main chain, B's blocks on none.
    for (const n of cluster.nodes) {
      const [atA] = await chainOf(n, aHead.height, aHead.height);
      assert.equal(atA?.hash, aHead.headHash, `${n.name} has A's pre-heal head on its main chain`);
      const mainHashes = new Set((await chainOf(n, fork + 1, bHead.height)).map((b) => b.hash));
      for (const b of losing) assert.ok(!mainHashes.has(b.hash), `${n.name} still has B's block ${b.height}`);
      assert.ok(
        BigInt((await n.status()).totalWork) > BigInt(bHead.totalWork),
        `${n.name} is on a chain with more work than B's`,
      );
    }

    // Right after its deep reorg, each B node had the entries of B's blocks back in its mempool.
    const pools = await Promise.all(poolAtReorg);
    B.forEach((n, i) => {
      const pool = new Set(pools[i]);
      for (const id of posted)
        assert.ok(pool.has(id), `${n.name}: entry ${id} not back in the mempool after the reorg`);
    });

    // B's former blocks are reported stale (reorged out), with a reorg as deep as the divergence.
    for (const n of B) {
      const log = logSinceHeal.get(n.name)!;
      const reorgedOut = new Set(
        log.filter((e) => e.msg === 'orphaned block' && e.reason === 'reorged-out').map((e) => e.hash),
      );
      for (const b of losing)
        assert.ok(reorgedOut.has(b.hash), `${n.name} did not report B's block ${b.height} as reorged-out`);
      const depths = log.filter((e) => e.msg === 'reorg').map((e) => Number(e.depth));
      assert.ok(
        depths.some((d) => d >= divergence),
        `${n.name} logged no reorg of depth ≥ ${divergence} (depths: ${depths.join(', ') || 'none'})`,
      );
    }
    // A's nodes, on the winning chain, did not reorganise when the halves met.
    for (const n of A) {
      const reorgs = logSinceHeal.get(n.name)!.filter((e) => e.msg === 'reorg');
      assert.deepEqual(
        reorgs,
        [],
        `${n.name} reorganised after healing although it was on the winning chain`,
      );
    }

    // The healed deep fork is reported as a network split.
    const splits = await Promise.all(
      B.map(async (n) => (await n.metric('cairn_network_splits_detected_total')) ?? 0),
    );
    t.diagnostic(`network splits detected: b0 ${splits[0]}, b1 ${splits[1]}`);
    assert.ok(
      splits.some((s) => s >= 1),
      `no node of B reported a network split (divergence ${divergence})`,
    );
    const splitLogs = B.flatMap((n) => logSinceHeal.get(n.name)!).filter((e) =>
      e.msg?.startsWith('network split detected'),
    );
    assert.ok(splitLogs.length >= 1, 'the split is logged');
    // The fork point comes from a block locator (dense for the last 10 blocks, then sparser), so
    // for deeper forks it can lie a little below the actual one.
    for (const e of splitLogs) {
      assert.equal(Number(e.ourHeight), bHead.height, 'the split is reported from B’s head');
      assert.ok(
        Number(e.forkHeight) <= fork && Number(e.ourHeight) - Number(e.forkHeight) > 6,
        `split logged with fork height ${e.forkHeight} (actual fork ${fork}, our height ${e.ourHeight})`,
      );
    }

    // A's miner re-includes the entries once reconciliation brings them over.
    await cluster.waitFor(
      async (s) => {
        const pools = await Promise.all(cluster.nodes.map((n) => n.mempool()));
        if (pools.some((p) => posted.some((id) => p.ids.includes(id)))) {
          const a0pool = pools[0]!.ids;
          if (!posted.every((id) => a0pool.includes(id)))
            await a0.postJson('/admin/reconcile', {}).catch(() => undefined);
          return false;
        }
        return new Set(Object.values(s.statuses).map((st) => st.headHash)).size === 1;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 500,
        description: 'the entries re-mined on the winning chain, no mempool holds them',
      },
    );
    // The snapshot waitFor hands its predicate is taken before the predicate's own requests:
    // when the entries were mined in between, its heads predate their block. Read them afresh.
    const reincluded = await cluster.waitForConverged({
      timeoutMs: 30_000,
      description: 'one head after the re-inclusion',
    });
    const tip = reincluded.statuses.a0!.height;
    const winning = await chainOf(a0, fork + 1, tip);
    const blocksWithEntries = winning.filter((b) => b.entries > 0);
    assert.equal(
      winning.reduce((n, b) => n + b.entries, 0),
      ENTRIES,
      'the winning chain holds the posted entries exactly once (they are the only entries)',
    );
    assert.ok(
      blocksWithEntries.every((b) => b.height > aHead.height),
      'they were re-included after healing, not before',
    );
    for (const n of cluster.nodes)
      assert.deepEqual(await chainOf(n, fork + 1, tip), winning, `${n.name} holds the same winning chain`);
    t.diagnostic(
      `${elapsed()}: entries re-included at height(s) ${blocksWithEntries.map((b) => b.height).join(', ')}`,
    );

    for (const off of stopCollecting) off();

    const stopped = await cluster.stopAll();
    for (const [name, r] of Object.entries(stopped))
      assert.deepEqual([name, r.code, r.forced], [name, 0, false], `${name} shut down gracefully`);
    await cluster.removeRunDir();
  } finally {
    await cluster.stopAll();
  }
});
