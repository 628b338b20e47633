/**
 * bench:p2p — block propagation in 10- and 20-node clusters of real node processes, range sync
 * of 10,000 blocks from 3 peers, and mempool reconciliation traffic between two nodes over
 * libp2p. Last line: one JSON object with the figures.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Cluster, seedableNetwork } from '../e2e/cluster/harness.ts';
import { createEntry } from '../node/chain/authoring.ts';
import type { NetworkConfig } from '../node/chain/network-config.ts';
import { VerifyPool } from '../node/chain/verify-pool.ts';
import { readNetworkConfig } from '../node/config-file.ts';
import { createLogger } from '../node/log.ts';
import { CairnNode } from '../node/node.ts';
import { testKey, testNetwork } from '../node/testing/forge.ts';
import { seedChain } from '../node/testing/seed-store.ts';
import { median, percentile } from './stats.ts';
import { benchBlocks, efficiency, poolVerifyPerSec } from './verify-limit.ts';

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const SAMPLES = Number(process.env.BENCH_PROPAGATION_BLOCKS ?? 25);
const SYNC_BLOCKS = Number(process.env.BENCH_SYNC_BLOCKS ?? 10_000);

const round = (x: number) => Math.round(x * 10) / 10;

/** Time from a block being mined to its arrival at the last of the other nodes, per block. */
async function propagation(n: number): Promise<{ p50: number; p99: number; samples: number }> {
  const cluster = new Cluster({ network: { blockTimeMs: 1000 } });
  try {
    // A sparse mesh: every node bootstraps from up to three random earlier nodes.
    await cluster.start(
      n,
      (i) => {
        if (i === 0) return { name: 'n0', mine: true };
        const earlier = Array.from({ length: i }, (_, k) => `n${k}`);
        const pick = earlier.sort(() => Math.random() - 0.5).slice(0, 3);
        return { name: `n${i}`, bootstrapFrom: pick };
      },
      { concurrency: 4 },
    );
    await cluster.waitForConverged({
      minHeight: 3,
      timeoutMs: 120_000,
      description: 'all nodes on one head',
    });
    const mined = new Map<string, number>();
    const arrivals = new Map<string, number[]>();
    for (const node of cluster.nodes) {
      node.onLine((line) => {
        if (!line.includes('"mined block"') && !line.includes('"block received"')) return;
        const e = JSON.parse(line) as { msg: string; hash: string; atMs: number };
        if (e.msg === 'mined block') mined.set(e.hash, e.atMs);
        else arrivals.set(e.hash, [...(arrivals.get(e.hash) ?? []), e.atMs]);
      });
    }
    // Warm up: let the mesh settle for a few blocks before sampling.
    await new Promise((r) => setTimeout(r, 3_000));
    mined.clear();
    arrivals.clear();
    const complete = () => [...mined].filter(([h]) => (arrivals.get(h)?.length ?? 0) >= n - 1);
    const deadline = Date.now() + SAMPLES * 4_000 + 30_000;
    while (complete().length < SAMPLES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    const times = complete().map(([h, t]) => Math.max(...arrivals.get(h)!) - t);
    log(`${n} nodes: ${times.length} blocks, propagation ms ${times.map((t) => t.toFixed(0)).join(' ')}`);
    if (times.length < Math.min(5, SAMPLES))
      throw new Error(`only ${times.length} blocks reached all ${n} nodes`);
    const sorted = [...times].sort((a, b) => a - b);
    return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), samples: times.length };
  } finally {
    await cluster.stopAll();
  }
}

/** A fresh node pulls a long chain from three peers that already hold it. */
async function syncFromThree(): Promise<{ blocksPerSec: number; seconds: number }> {
  // An easy target so the chain can be written quickly; no node mines here.
  const cluster = new Cluster({ network: seedableNetwork() });
  try {
    const network = await readNetworkConfig(cluster.networkConfigPath!);
    const dirs = ['s0', 's1', 's2'].map((n) => path.join(cluster.runDir, n));
    const started = performance.now();
    await seedChain(dirs, network, { blocks: SYNC_BLOCKS, entriesPerBlock: 2 });
    log(
      `seeded ${SYNC_BLOCKS} blocks into 3 stores in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    await cluster.start(3, (i) => ({ name: `s${i}`, dataDir: dirs[i], bootstrap: [] }));
    const fresh = await cluster.addNode({ name: 'fresh', bootstrapFrom: ['s0', 's1', 's2'] });
    const syncStart = fresh
      .waitForLog((e) => e.msg === 'sync started', { timeoutMs: 60_000, includeRecent: true })
      .then((line) => Date.parse((JSON.parse(line) as { time: string }).time));
    let doneAt = 0;
    await cluster.waitFor(
      async () => {
        const st = await fresh.status();
        if (st.height >= SYNC_BLOCKS && !doneAt) doneAt = Date.now();
        return st.height >= SYNC_BLOCKS;
      },
      {
        timeoutMs: 180_000,
        intervalMs: 50,
        description: `fresh node reaches height ${SYNC_BLOCKS}`,
        nodes: ['fresh'],
      },
    );
    const seconds = (doneAt - (await syncStart)) / 1000;
    return { blocksPerSec: Math.round(SYNC_BLOCKS / seconds), seconds: round(seconds) };
  } finally {
    await cluster.stopAll();
  }
}

/** Two mempools of 10,000 entries, 1% missing on one side, reconciled over a real libp2p stream. */
async function reconciliation() {
  const network: NetworkConfig = {
    ...(await import('../node/chain/network-config.ts')).DEFAULT_NETWORK,
    name: 'bench-reconcile',
  };
  const dirs = [
    await mkdtemp(path.join(tmpdir(), 'cairn-rec-a-')),
    await mkdtemp(path.join(tmpdir(), 'cairn-rec-b-')),
  ];
  const quiet = createLogger('warn');
  const start = (dataDir: string) =>
    CairnNode.start({
      dataDir,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      mine: false,
      mdns: false,
      role: 'submind',
      capabilities: [],
      network,
      reconcileIntervalMs: 0,
      logger: quiet,
    });
  const [a, b] = [await start(dirs[0]!), await start(dirs[1]!)];
  try {
    const key = testKey(77);
    const now = Date.now();
    const entries = Array.from({ length: 10_000 }, (_, i) =>
      createEntry(
        {
          kind: 'knowledge',
          content: `observation ${i}: ${'lorem ipsum '.repeat(8)}`,
          metadata: [['source', `sensor-${i % 17}`]],
        },
        key,
        now - i,
      ),
    );
    for (const e of entries) a.chain.addEntry(e);
    for (const e of entries.slice(100)) b.chain.addEntry(e);
    await a.store.apply(a.chain.takeUpdate());
    await b.store.apply(b.chain.takeUpdate());
    await a.host.dial(b.host.getMultiaddrs()[0]!);
    const stats = await a.reconcileWith(b.identity.peerId);
    // The responder admits what it received after its side of the exchange ends.
    for (let i = 0; i < 100 && b.chain.mempool.size < 10_000; i++)
      await new Promise((r) => setTimeout(r, 50));
    if (b.chain.mempool.size !== 10_000)
      throw new Error(`B has ${b.chain.mempool.size} entries after reconciliation`);
    const missingBytes = entries.slice(0, 100).reduce((n, e) => n + e.encoded.length, 0);
    return { roundTrips: stats.roundTrips, bytes: stats.bytesSent + stats.bytesReceived, missingBytes };
  } finally {
    await a.stop();
    await b.stop();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  }
}

// BENCH_ONLY=sync|reconcile|propagation runs one part (for quick iterations; the JSON then has gaps).
const only = process.env.BENCH_ONLY;
const skipped = { p50: Number.NaN, p99: Number.NaN, samples: 0 };
const rec =
  !only || only === 'reconcile' ? await reconciliation() : { roundTrips: 0, bytes: 0, missingBytes: 0 };
log(`reconciliation: ${JSON.stringify(rec)}`);
/**
 * The syncing node's signature-bound limit: a pool of the same size checking blocks of the
 * seeded shape (2 entries, 3 signatures each) alone, right before and right after the sync.
 */
const SYNC_SIGNATURES_PER_BLOCK = 3;
const limitBlocks =
  !only || only === 'sync' ? benchBlocks(testNetwork(), 3000, SYNC_SIGNATURES_PER_BLOCK - 1) : [];
const limitPool = new VerifyPool();
const syncLimitRuns: number[] = [];
const measureLimit = async () => {
  if (limitBlocks.length) syncLimitRuns.push(await poolVerifyPerSec(limitPool, limitBlocks));
};
await measureLimit();
const sync = !only || only === 'sync' ? await syncFromThree() : { blocksPerSec: 0, seconds: 0 };
await measureLimit();
await limitPool.close();
const syncPoolVerifyPerSec = syncLimitRuns.length ? median(syncLimitRuns) : 0;
log(`sync: ${JSON.stringify(sync)}; pool alone ${JSON.stringify(syncLimitRuns)} signatures/s`);
const p10 = !only || only === 'propagation' ? await propagation(10) : skipped;
const p20 = !only || only === 'propagation' ? await propagation(20) : skipped;

console.log(
  JSON.stringify({
    propagationP50Ms10: p10.p50,
    propagationP99Ms10: p10.p99,
    propagationP50Ms20: p20.p50,
    propagationP99Ms20: p20.p99,
    propagationSamples: [p10.samples, p20.samples],
    syncBlocksPerSec: sync.blocksPerSec,
    syncSeconds: sync.seconds,
    syncBlocks: SYNC_BLOCKS,
    syncPoolVerifyPerSec,
    syncPoolRunsVerifyPerSec: syncLimitRuns,
    syncEfficiency: syncPoolVerifyPerSec
      ? efficiency(sync.blocksPerSec, SYNC_SIGNATURES_PER_BLOCK, syncPoolVerifyPerSec)
      : Number.NaN,
    reconcileRoundTrips: rec.roundTrips,
    reconcileBytes: rec.bytes,
    missingBytes: rec.missingBytes,
    reconcileBudget: Math.round(1.5 * rec.missingBytes + 16_384),
  }),
);
process.exit(0);
