/**
 * Finding 4 (HIGH in open mode): fresh identities with capped pre-syncs hold the one sync slot;
 * a node that is behind does not catch up with the honest peer it is connected to.
 *
 * SyncManager runs one range sync at a time, from the peer claiming the most work. A claim whose
 * fork is deeper than the side-chain margin is pre-synced first (headers only, the target alone,
 * no helper), up to `--max-presync-headers`; reaching the cap disproves the claim with a back-off
 * for *that peer id* and costs nothing the first time (byzantine-presync-cap.test.ts: only a
 * repeat is penalised). In open mode a peer id is a key generation: each fresh identity claiming
 * huge work gets one full capped pre-sync (at the default 200,000 headers, ~54 s and ~8 CPU s of
 * the victim each, attack review #11), is never penalised, never banned, so its address is never
 * charged either. While any fresh claimant is connected, the honest peer with the real, heavier-
 * than-ours chain is never the best, and a node that is behind stays behind (gossip only
 * connects blocks on its tip; a gap deeper than the ancestor fetch's 24 blocks needs range sync).
 *
 * Here: a victim holding 100 seeded blocks, an honest peer holding the same chain to 160 (not
 * mining), 12 liar identities connected at once, each serving one 20,001-header fork from
 * genesis at the easiest target (`--max-presync-headers 20000`).
 *
 *   npm exec -- node --test e2e/cluster/sync-slot-sybils.test.ts
 *
 * Failed before the fix. Measured (one run, ~125 s wall, most of it the attacker's header
 * preparation): 20 s after the honest peer joined the victim was still at 100 of 160; it had run
 * 15 capped pre-syncs (300,000 headers read, ~1.5 s each, back to back), 4 of the 12 liars were
 * penalised (repeats after their first back-off), none banned. A second run: still at 100 after
 * 20 s, 11 capped pre-syncs; a third (this session): 6 capped pre-syncs, 0 liars penalised.
 *
 * Fixed by the sync manager's connecting turn (node/sync/sync-manager.ts): after a slot spent on
 * a pre-sync that failed, the claimants not known to claim a deep fork are asked for their fork
 * points at once and the best whose chain connects near our tip is followed. Measured after: the
 * victim reached 160 5.4 s after the honest peer joined (one presync of 20,000 headers, then the
 * connecting turn: 60 blocks in 941 ms), 4 capped pre-syncs in the 20 s window (80,000 headers),
 * victim CPU 2.6 s.
 *
 * And pre-syncs are rationed (node/sync/presync-budget.ts): 2 per 10 min per address group, 4 for
 * the node, for claimants not disproved before (a repeat pays with its score). The liars are all
 * on loopback, one group: measured after, 2 of the 12 fresh ids pre-synced, every other one's
 * claim refused before any header was read (`group`), 5 capped pre-syncs in all (3 repeats of
 * those two, 2 penalised), the victim at 160 2.9 s after the honest peer joined.
 *
 * The victim's RSS grows ~49 MB in the window (47.2-49.2 MB over five runs). Not the liars: with
 * none connected (same test, no liars) it grew 48.6 MB too. Not V8's heap either: its spaces'
 * sizes did not change and heap used grew 2.5-20 MB, external memory ~1 MB. Most of it is
 * likely the signature-verification pool (node/chain/verify-pool.ts: 2 worker isolates of ~22 MB
 * each on this host, started by the first sync's preverify, stopped after 30 s idle): 35 s after
 * the window (no liars) the growth was down to 30.4 MB. What stays was not attributed; one sync
 * cannot tell allocator retention from a leak.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeHeader } from '../../node/chain/block-codec.ts';
import { expectedTarget } from '../../node/chain/difficulty.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { sha256 } from '../../node/chain/hash.ts';
import { chainIdOf } from '../../node/chain/network-config.ts';
import { targetForWork } from '../../node/chain/pow.ts';
import { type BlockHeader, FORMAT_VERSION } from '../../node/chain/types.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import { searchNonce } from '../../node/mining/nonce-search.ts';
import { SYNC_DEFAULTS } from '../../node/options.ts';
import {
  decodeRangeRequest,
  encodeBlockRef,
  MAX_HEADERS_PER_REQUEST,
  type Status,
} from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { VictimProbe } from './byzantine-blocks-peer.ts';
import { ByzantinePeer, removeDir, successFrame } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, parseMetric } from './harness.ts';

const CAP = 20_000;
const FORK = CAP + 1;
const LIARS = 12;

/** The victim's memory by part (prom-client's default metrics), in bytes. */
function memory(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const space of ['new', 'old', 'code', 'large_object', 'new_large_object'])
    out[`${space}Total`] = parseMetric(metrics, 'nodejs_heap_space_size_total_bytes', { space }) ?? 0;
  out.heapUsed = parseMetric(metrics, 'nodejs_heap_size_used_bytes') ?? 0;
  out.external = parseMetric(metrics, 'nodejs_external_memory_bytes') ?? 0;
  out.rss = parseMetric(metrics, 'process_resident_memory_bytes') ?? 0;
  return out;
}

test('fresh identities with capped pre-syncs do not keep a node that is behind from its honest peer', {
  // Most of it is the 20,001 headers' nonce search in this process (~125 s on a quiet host; it
  // ran past 240 s at a load of 16 on the 2 shared cores).
  timeout: 400_000,
}, async (t) => {
  const cluster = new Cluster({
    network: {
      name: 'sync-slot-sybils',
      membership: 'open',
      genesisTimestamp: Date.now() - 30 * 86_400_000,
      genesisMessage: 'sync slot sybils',
      blockTimeMs: 1000,
      retargetInterval: 10,
      maxRetargetFactor: 4,
      initialTarget: targetForWork(1n << 16n),
      minTarget: targetForWork(1n << 40n),
      maxTarget: targetForWork(16n),
    },
  });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-attack11-slot-'));
  const liars: ByzantinePeer[] = [];
  /** Liars whose headers the victim read: each got a pre-sync. */
  const presynced = new Set<number>();
  let running = true;
  t.after(async () => {
    running = false;
    for (const l of liars) await l.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    await cluster.removeRunDir();
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const victimDir = path.join(cluster.runDir, 'victim');
  const honestDir = path.join(cluster.runDir, 'honest');
  // The seeded chain is deterministic: the honest peer's first 100 blocks are the victim's.
  await seedChain([victimDir], network, { blocks: 100 });
  const honestTip = await seedChain([honestDir], network, { blocks: 160 });
  const [victim] = await cluster.start(1, () => ({
    name: 'victim',
    dataDir: victimDir,
    args: ['--max-presync-headers', String(CAP)],
  }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);

  // ---- One fork of headers from genesis, easing to the easiest target, shared by every liar ----
  const genesis = genesisBlock(network);
  const chainId = chainIdOf(network);
  const ts: number[] = [genesis.header.timestamp];
  const headers: Uint8Array[] = [];
  let prevHash = genesis.hash;
  let target = genesis.header.target;
  const miner = new Uint8Array(32).fill(7);
  for (let h = 1; h <= FORK; h++) {
    target = expectedTarget(h, target, (x) => ts[x]!, network);
    const timestamp = ts[h - 1]! + (h <= 80 ? 4_000 : 1_100);
    const header: BlockHeader = {
      version: FORMAT_VERSION,
      chainId,
      height: h,
      prevHash,
      merkleRoot: new Uint8Array(32),
      timestamp,
      target,
      miner,
      nonce: 0,
    };
    const nonce = searchNonce(encodeHeader(header), target, 0, 50_000_000);
    if (nonce === null) throw new Error('no nonce');
    const bytes = encodeHeader({ ...header, nonce });
    headers.push(bytes);
    ts.push(timestamp);
    prevHash = sha256(bytes);
  }
  const v0 = await victim.status();
  const lie: Status = {
    chainId,
    genesisHash: genesis.hash,
    headHash: prevHash,
    headHeight: FORK,
    totalWork: BigInt(v0.totalWork) << 40n,
    role: 'hub',
    capabilities: ['mine'],
  };

  // ---- The liars: fresh identities, each with the same claim and the same headers ----
  for (let i = 0; i < LIARS; i++) {
    const l = await ByzantinePeer.start(`liar${i}`, network, attackDir, { gossip: false });
    liars.push(l);
    await l.serve('status', () => [successFrame(STATUS.encodeResponse(lie))]);
    await l.serve('ancestor', () => [successFrame(encodeBlockRef({ height: 0, hash: genesis.hash }))]);
    await l.serve('headers-by-range', (req) => {
      presynced.add(i);
      const q = decodeRangeRequest(req, MAX_HEADERS_PER_REQUEST);
      return headers
        .slice(Math.max(0, q.startHeight - 1), q.startHeight - 1 + q.count)
        .map((b) => successFrame(b));
    });
    await l.serve('blocks-by-range', () => []);
    await l.dial(victim);
    await l.request(victim, STATUS, lie).catch(() => {});
  }
  const statusLoop = (async () => {
    while (running) {
      await Promise.all(liars.map((l) => l.request(victim, STATUS, lie).catch(() => {})));
      await sleep(2_000);
    }
  })();

  // ---- The honest peer joins: the victim should catch up with it ----
  const since = watch.penalties.length;
  const cpu = async () => parseMetric(await victim.metrics(), 'process_cpu_seconds_total') ?? 0;
  const cpuBefore = await cpu();
  const memBefore = memory(await victim.metrics());
  const probe = await VictimProbe.start(victim);
  const [honest] = await cluster.start(1, () => ({ name: 'honest', dataDir: honestDir }));
  assert.ok(honest);
  const joined = Date.now();
  let caughtUpMs: number | undefined;
  while (Date.now() - joined < 20_000) {
    if ((await victim.status()).height >= honestTip.height) {
      caughtUpMs = Date.now() - joined;
      break;
    }
    await sleep(250);
  }
  running = false;
  await statusLoop;
  await probe.stop();
  const cpuSeconds = (await cpu()) - cpuBefore;
  const m = await victim.metrics();
  // Where RSS growth sits: V8's spaces (young generation, old) and memory outside the heap.
  const memAfter = memory(m);
  const memGrowthMb = Object.fromEntries(
    Object.keys(memAfter).map((k) => [
      k,
      Number(((memAfter[k]! - (memBefore[k] ?? 0)) / 2 ** 20).toFixed(1)),
    ]),
  );
  const tooLong = parseMetric(m, 'cairn_sync_presyncs_total', { outcome: 'too-long' }) ?? 0;
  const presyncHeaders = parseMetric(m, 'cairn_sync_presync_headers_total') ?? 0;
  const v = await victim.status();
  const penalised = new Set(watch.penalties.slice(since).map((p) => p.peer));
  const liarsPenalised = liars.filter((l) => penalised.has(l.peerId)).length;
  t.diagnostic(
    JSON.stringify({
      liars: LIARS,
      cap: CAP,
      caughtUpMs: caughtUpMs ?? null,
      victimHeight: v.height,
      honestHeight: honestTip.height,
      cappedPresyncs: tooLong,
      presyncHeaders,
      liarsPenalised,
      victimCpuSeconds: Number(cpuSeconds.toFixed(1)),
      statusMaxMs: Math.round(probe.statusMaxMs),
      rssGrowthMb: Number(probe.rssGrowthMb.toFixed(1)),
      memGrowthMb,
      liarsPresynced: presynced.size,
      // Each pre-sync's group and whether the budget refused it.
      presyncBudget: watch
        .syncLog(0)
        .filter((l) => l.includes(' pre-sync budget {'))
        .map((l) => l.replace(/^.*?"group":/, '').slice(0, 40)),
      banned: v.banned.length,
      syncLog: watch
        .syncLog(0)
        .filter((l) => /sync (started|aborted|finished)/.test(l))
        .slice(-4)
        .map((l) => l.slice(0, 160)),
    }),
  );
  assert.ok(
    caughtUpMs !== undefined,
    `the victim is at ${v.height}, not the honest ${honestTip.height}, 20 s after the honest peer joined ` +
      `(${tooLong} capped pre-syncs of fresh identities, ${liarsPenalised} of ${LIARS} liars penalised)`,
  );
  // Every liar is on loopback, one address group: its fresh ids get the group's pre-syncs per
  // period, not one each (4 to 15 capped pre-syncs of fresh ids in this test before the pre-sync
  // budget). A liar disproved once and claiming again is pre-synced outside the budget, paying
  // with its score (a penalty each time) until banned.
  assert.ok(
    presynced.size <= SYNC_DEFAULTS.presyncs.group.limit,
    `${presynced.size} fresh ids of one address group pre-synced (${tooLong} capped pre-syncs in all; its budget: ` +
      `${SYNC_DEFAULTS.presyncs.group.limit} per ${SYNC_DEFAULTS.presyncs.group.periodMs / 60_000} min)`,
  );
});
