/**
 * Finding 5 (LOW; MEDIUM for a node on a metered or thin uplink, open mode): block serving has a budget per peer id and none per node, so
 * a stranger with a handful of free identities takes the node's whole upload and store reads.
 *
 * `ServeBudget` (node/p2p/serve-budget.ts) allows each peer 5,000 blocks and 64 MiB per 10 s
 * (~50 Mbit/s), and BLOCKS_BY_RANGE's rate limit is per peer too. Nothing bounds what all
 * peers together take. In open mode a peer id costs a key generation; the per-IP connection cap
 * (`--max-inbound-per-ip`, 8) lets one host hold 8 of them, and each of the node's 64 slots can be
 * another. Every identity here reads full 128-block ranges of ~90 KB blocks at 5 MB/s, within its
 * own budget, so no one is penalised or banned.
 *
 *   npm exec -- node --test e2e/cluster/serve-sybils.test.ts
 *
 * Failed before the fix. Measured (15 s windows): one identity 5.0 MB/s, /status p50 12 ms, max
 * 571 ms; eight identities 11.1 MB/s together (2.2x; the bound here is the attacker's own process,
 * which decrypts all eight streams on the 2 shared cores, not the victim: its CPU was 0.18 s/s),
 * /status p50 148 ms, max 758 ms; 0 penalties. The budget allows each of them ~6.7 MB/s: 8 ids,
 * ~54 MB/s.
 *
 * Fixed by the node-wide serve budget (node/p2p/node-serve-budget.ts): 5 MiB/s for all peers with
 * a 12 MiB burst, taken at once while nobody waits, fair-queued by address group and peer when
 * it runs dry; over it a chunk waits for its turn (no refusal, no penalty). Rates are measured
 * over the time the answers took, since queued answers started in the window end after it.
 * Measured after: one identity 5.0 MB/s (15 s), eight 5.8 MB/s together (1.16x, 21.1 s),
 * /status max 274 ms, victim CPU 0.13 s/s, 0 penalties.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readNetworkConfig } from '../../node/config-file.ts';
import { encodeRangeRequest } from '../../node/p2p/messages.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { statusProbe } from './byzantine-flood-peer.ts';
import { ByzantinePeer, removeDir } from './byzantine-peer.ts';
import { Cluster, parseMetric, seedableNetwork } from './harness.ts';

const SEEDED = 300;
const SYBILS = 8;
const WINDOW_MS = 15_000;
/** 5 MB/s per identity. */
const PACE_BYTES_PER_MS = 5_000;

test("a stranger's identities together get no more block serving than one peer's share", {
  timeout: 200_000,
}, async (t) => {
  const cluster = new Cluster({ network: { ...seedableNetwork(), membership: 'open' } });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-attack11-serve-'));
  const readers: ByzantinePeer[] = [];
  t.after(async () => {
    for (const r of readers) await r.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    await cluster.removeRunDir();
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const victimDir = path.join(cluster.runDir, 'victim');
  await seedChain([victimDir], network, { blocks: SEEDED, entriesPerBlock: 3, entryPadding: 30_000 });
  const [victim] = await cluster.start(1, () => ({ name: 'victim', dataDir: victimDir }));
  assert.ok(victim);

  /**
   * Reads full ranges for WINDOW_MS, paced to 5 MB/s: inside the per-peer byte budget (64 MiB per
   * 10 s), so the victim has nothing to penalise. Returns bytes read.
   */
  const readFor = async (r: ByzantinePeer, until: number) => {
    let bytes = 0;
    let n = 0;
    const t0 = Date.now();
    while (Date.now() < until) {
      const ahead = bytes / PACE_BYTES_PER_MS - (Date.now() - t0);
      if (ahead > 0) await sleep(Math.min(ahead, until - Date.now()));
      if (Date.now() >= until) break;
      const start = 1 + ((n++ * 128) % (SEEDED - 128));
      const req = encodeRangeRequest({ startHeight: start, count: 128 });
      const a = await r.rawRequest(victim, 'blocks-by-range', Uint8Array.from([req.length, ...req]), 20_000);
      for (const f of a.frames) bytes += f.length;
    }
    return bytes;
  };
  const cpu = async () => parseMetric(await victim.metrics(), 'process_cpu_seconds_total') ?? 0;

  const round = async (k: number) => {
    while (readers.length < k) {
      const r = await ByzantinePeer.start(`sybil${readers.length}`, network, attackDir, { gossip: false });
      await r.dial(victim);
      readers.push(r);
    }
    const probe = statusProbe(victim);
    await probe.ready;
    const cpu0 = await cpu();
    const t0 = Date.now();
    const until = t0 + WINDOW_MS;
    const bytes = await Promise.all(readers.slice(0, k).map((r) => readFor(r, until)));
    // Over the time the answers took: the last ones, started inside the window, end after it
    // (queued for their turn, up to the victim's 10 s answer time each).
    const seconds = (Date.now() - t0) / 1000;
    const cpuS = (await cpu()) - cpu0;
    await probe.stop();
    const total = bytes.reduce((a, b) => a + b, 0);
    return {
      peers: k,
      seconds: Number(seconds.toFixed(1)),
      servedMbPerS: Number((total / 1e6 / seconds).toFixed(1)),
      victimCpuPerS: Number((cpuS / seconds).toFixed(2)),
      status: probe.summary(),
    };
  };
  const one = await round(1);
  const many = await round(SYBILS);
  const m = await victim.metrics();
  const penalties = ['fatal', 'low-tolerance', 'mid-tolerance', 'high-tolerance'].reduce(
    (n, action) => n + (parseMetric(m, 'cairn_peer_penalties_total', { action }) ?? 0),
    0,
  );
  t.diagnostic(JSON.stringify({ one, many, penalties }));
  assert.ok(
    many.servedMbPerS <= one.servedMbPerS * 1.5,
    `${SYBILS} identities of one stranger took ${many.servedMbPerS} MB/s of serving, one took ${one.servedMbPerS} MB/s ` +
      `(victim CPU ${many.victimCpuPerS} vs ${one.victimCpuPerS} s/s; /status ${many.status}; ${penalties} penalties)`,
  );
});
