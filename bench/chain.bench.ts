/**
 * bench:chain — validate and commit 10,000 blocks of 10 entries each into a fresh store, the
 * way a syncing node imports batches; then Ed25519 verifications per second on each path.
 * Last line: one JSON object with the figures.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeBlock } from '../node/chain/block-codec.ts';
import { Chain } from '../node/chain/chain.ts';
import { decodeEntry } from '../node/chain/entry-codec.ts';
import { chainIdHex } from '../node/chain/network-config.ts';
import { sign, verifyNative, verifyNoble, verifyNodeCrypto } from '../node/chain/signature.ts';
import { CachedVerifier } from '../node/chain/signature-cache.ts';
import type { SealedBlock } from '../node/chain/types.ts';
import { VerifyPool } from '../node/chain/verify-pool.ts';
import { NodeStore } from '../node/store/node-store.ts';
import { testKey, testNetwork } from '../node/testing/forge.ts';
import { median } from './stats.ts';
import { benchBlocks, efficiency, poolVerifyPerSec, signaturesOf } from './verify-limit.ts';

const BLOCKS = Number(process.env.BENCH_BLOCKS ?? 10_000);
const ENTRIES = 10;
const BATCH = Number(process.env.BENCH_BATCH ?? 250);
/** Batches decoded and queued for signature checks ahead of the one being imported. */
const AHEAD = Number(process.env.BENCH_AHEAD ?? 2);
/**
 * Imports of each kind, each into a fresh store; the figures are their medians, as this
 * machine's speed drifts by tens of percent within a minute (every run is printed too).
 */
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const config = testNetwork();
const log = (msg: string) => process.stderr.write(`${msg}\n`);

function ratePerSec(fn: () => boolean, ms = 1500): number {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 50; i++) if (!fn()) throw new Error('verification failed');
    n += 50;
  }
  return Math.round(n / ((performance.now() - start) / 1000));
}

log(`generating ${BLOCKS} blocks of ${ENTRIES} entries…`);
const blocks = benchBlocks(config, BLOCKS, ENTRIES);
const bytes = blocks.reduce((n, b) => n + b.encoded.length, 0);
log(`generated ${(bytes / 1e6).toFixed(1)} MB`);

const genesisHashHex = new Chain({ config, loadBlock: async () => undefined }).genesis.hashHex;
const encoded = blocks.map((b) => b.encoded);
const pool = new VerifyPool();
const decodedForLimit = encoded.map((b) => decodeBlock(b));
const SIGNATURES_PER_BLOCK = signaturesOf(blocks[0]!);

/**
 * Imports every block from its bytes into a fresh store, as a syncing node does: decode,
 * check signatures (on the worker pool, one batch ahead), validate, commit one transaction
 * per batch. With `entriesSeenBefore`, the node first received the entries by gossip (into the
 * mempool, untimed), so their signatures are already known, as in steady-state operation.
 */
async function importAll(entriesSeenBefore: boolean, count = BLOCKS) {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-bench-chain-'));
  const store = await NodeStore.open({
    file: path.join(dir, 'node.db'),
    chainIdHex: chainIdHex(config),
    genesisHashHex,
  });
  const verifier = new CachedVerifier();
  const chain = new Chain({
    config,
    verifier,
    loadBlock: (h) => store.loadBlock(h),
    mempoolMaxEntries: BLOCKS * ENTRIES,
    mempoolMaxBytes: 1 << 30,
  });
  if (entriesSeenBefore) {
    for (const b of blocks.slice(0, count)) for (const e of b.entries) chain.addEntry(decodeEntry(e.encoded));
    await store.apply(chain.takeUpdate());
  }
  const input = encoded.slice(0, count);
  const decodeBatch = (k: number) => input.slice(k * BATCH, (k + 1) * BATCH).map((b) => decodeBlock(b));
  const batchCount = Math.ceil(input.length / BATCH);
  const time = { verifyWait: 0, decode: 0, validate: 0, commit: 0 };
  const lap = (key: keyof typeof time, since: number) => {
    const now = performance.now();
    time[key] += now - since;
    return now;
  };
  const start = performance.now();
  let t = start;
  const verify = (batch: SealedBlock[]) =>
    entriesSeenBefore ? Promise.resolve() : pool.verifyBlocks(batch, verifier);
  // Batches are decoded and handed to the signature workers as they "arrive", up to AHEAD
  // batches before their import, as range sync preverifies every downloaded batch at once.
  const window: { blocks: SealedBlock[]; verified: Promise<void> }[] = [];
  let dispatched = 0;
  for (let k = 0; k < batchCount; k++) {
    while (dispatched < batchCount && dispatched <= k + AHEAD) {
      const blocks = decodeBatch(dispatched++);
      window.push({ blocks, verified: verify(blocks) });
    }
    t = lap('decode', t);
    const { blocks: current, verified } = window.shift()!;
    await verified;
    t = lap('verifyWait', t);
    for (const b of current) {
      const r = await chain.processBlock(b);
      if (r.status !== 'connected') throw new Error(`block ${b.header.height}: ${JSON.stringify(r)}`);
    }
    t = lap('validate', t);
    await store.apply(chain.takeUpdate());
    t = lap('commit', t);
  }
  const seconds = (performance.now() - start) / 1000;
  const stored = await store.blockCount();
  await store.close();
  await rm(dir, { recursive: true, force: true });
  if (stored !== count || chain.tip.height !== count || chain.mempool.size !== 0) {
    throw new Error(`stored ${stored}, tip ${chain.tip.height}, mempool ${chain.mempool.size}`);
  }
  const ms = Object.fromEntries(Object.entries(time).map(([k, v]) => [k, Math.round(v)]));
  log(
    `${entriesSeenBefore ? 'warm' : 'cold'}: ${count} blocks in ${seconds.toFixed(2)} s; main thread ms ${JSON.stringify(ms)}`,
  );
  return seconds;
}

/** The pool's rate on the same blocks, measured right before each cold import (side by side). */
const poolRuns: number[] = [];
const runs = async (entriesSeenBefore: boolean) => {
  const seconds: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (!entriesSeenBefore) {
      poolRuns.push(await poolVerifyPerSec(pool, decodedForLimit, BATCH));
      log(`pool alone: ${poolRuns.at(-1)} signatures/s`);
    }
    seconds.push(await importAll(entriesSeenBefore));
  }
  return seconds;
};
// An untimed first import of 1,000 blocks, so the timed runs measure compiled code, as in a
// node that has been importing for a while, not V8's first tiers.
await importAll(false, Math.min(1000, BLOCKS));
const coldRuns = await runs(false);
const warmRuns = await runs(true);
await pool.close();
const coldSeconds = median(coldRuns);
const poolVerify = median(poolRuns);
// Each cold run against the pool rate measured just before it, then the median of those shares.
const runEfficiency = coldRuns.map((sec, i) => efficiency(BLOCKS / sec, SIGNATURES_PER_BLOCK, poolRuns[i]!));
const warmSeconds = median(warmRuns);

const key = testKey(7);
const msg = new Uint8Array(32).fill(9);
const sig = sign(msg, key);
const nobleVerifyPerSec = ratePerSec(() => verifyNoble(sig, msg, key.publicKey));
const nativeVerifyPerSec = ratePerSec(() => verifyNative(sig, msg, key.publicKey));
const nodeCryptoVerifyPerSec = ratePerSec(() => verifyNodeCrypto(sig, msg, key.publicKey));

console.log(
  JSON.stringify({
    blocks: BLOCKS,
    entriesPerBlock: ENTRIES,
    // Cold: a node that never saw these entries checks all 11 signatures of every block.
    seconds: Number(coldSeconds.toFixed(3)),
    blocksPerSec: Math.round(BLOCKS / coldSeconds),
    entriesPerSec: Math.round((BLOCKS * ENTRIES) / coldSeconds),
    coldRunsBlocksPerSec: coldRuns.map((s) => Math.round(BLOCKS / s)),
    // The signature-bound limit, measured beside each cold run, and the share of it reached.
    poolVerifyPerSec: poolVerify,
    poolRunsVerifyPerSec: poolRuns,
    signaturesPerBlock: SIGNATURES_PER_BLOCK,
    importEfficiency: median(runEfficiency),
    importRunsEfficiency: runEfficiency,
    // Warm: the entries arrived by gossip first (steady state); only block signatures are new.
    warmBlocksPerSec: Math.round(BLOCKS / warmSeconds),
    warmEntriesPerSec: Math.round((BLOCKS * ENTRIES) / warmSeconds),
    warmRunsBlocksPerSec: warmRuns.map((s) => Math.round(BLOCKS / s)),
    runs: RUNS,
    nobleVerifyPerSec,
    nativeVerifyPerSec,
    nodeCryptoVerifyPerSec,
    nativeOverNoble: Number((nativeVerifyPerSec / nobleVerifyPerSec).toFixed(1)),
  }),
);
