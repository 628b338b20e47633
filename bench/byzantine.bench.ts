/**
 * bench:byzantine — the status-lie and free-orphan attacks against one real node process (the
 * victim, following a real miner, on a roster network whose attackers are admitted members),
 * with its /status latency and resident memory sampled throughout:
 *
 *  1. two peers claim heads at 2^32−1 and 5·10^7 with 2^40× the victim's work, give the true
 *     fork point, serve no blocks, and repeat their status until banned;
 *  2. a peer gossips 10,000 signed orphans at target 2^256−1 on random parents until banned.
 *
 * Then the time from the miner's next block to its arrival on the victim. Last line: one JSON
 * object; targets (issue 11): RSS growth < 100 MB each, /status max < 1,000 ms,
 * orphanFloodStored ≤ the orphan pool bound (100), every attacker banned.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { flood, freeOrphans, VictimProbe } from '../e2e/cluster/byzantine-blocks-peer.ts';
import { ByzantinePeer, insiderRoster, insiders, removeDir } from '../e2e/cluster/byzantine-peer.ts';
import { startStatusLiars } from '../e2e/cluster/byzantine-sync-peer.ts';
import { Cluster, type ClusterNode, seedableNetwork } from '../e2e/cluster/harness.ts';
import { Chain } from '../node/chain/chain.ts';
import { DEFAULT_NETWORK, type NetworkConfig } from '../node/chain/network-config.ts';

const log = (msg: string) => process.stderr.write(`${msg}\n`);
const ORPHANS = Number(process.env.BENCH_ORPHANS ?? 10_000);

interface VictimStatus {
  height: number;
  orphanCount: number;
  blockCount?: number;
  banned: { peer: string }[];
}

// A roster network (the default), every attacker an admitted member holding mine and submit
// (pool identities from 2 on; the miner and the victim take 0 and 1). Strangers would be refused
// at connect: their lies and orphans would never reach sync or the orphan pool, and the run
// would measure nothing (it printed `orphan flood: 0 of 10000 delivered` when they were).
const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(2) });
const insider = insiders(cluster.roster, 2);
const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-bench-byzantine-'));
const stoppers: (() => Promise<void>)[] = [];
try {
  const network = { ...DEFAULT_NETWORK, ...cluster.network } as NetworkConfig;
  const [miner, victim] = (await cluster.start(2, (i) =>
    i === 0 ? { name: 'miner', mine: true } : { name: 'victim' },
  )) as [ClusterNode, ClusterNode];
  await cluster.waitForConnected({ timeoutMs: 30_000 });
  await cluster.waitForConverged({ minHeight: 5, timeoutMs: 60_000 });
  const status = () => victim.getJson<VictimStatus>('/status');
  const bannedIds = async () => new Set((await status()).banned.map((b) => b.peer));
  const waitBanned = async (ids: string[], timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const banned = await bannedIds();
      if (ids.every((id) => banned.has(id))) return;
      await sleep(250);
    }
  };

  // ---- 1. status lies ----
  const lieProbe = await VictimProbe.start(victim);
  const liars = await startStatusLiars(network, attackDir, victim, [insider().seed, insider().seed]);
  for (const l of liars) stoppers.push(() => l.stop().catch(() => {}));
  const lieStart = Date.now();
  await waitBanned(
    liars.map((l) => l.peerId),
    90_000,
  );
  const lieBannedMs = Date.now() - lieStart;
  for (const l of liars) await l.stop();
  await lieProbe.stop();
  log(
    `status lie: banned after ${lieBannedMs} ms; /status max ${lieProbe.statusMaxMs.toFixed(0)} ms over ${lieProbe.statusMs.length}; RSS +${lieProbe.rssGrowthMb.toFixed(1)} MB`,
  );

  // ---- 2. free orphans ----
  const forger = new Chain({ config: network, loadBlock: async () => undefined });
  // Signed by orson's own key (it holds `mine`): only the work rules stand in their way.
  const orsonId = insider();
  const orphans = freeOrphans(forger, orsonId.key, ORPHANS, (await status()).height + 10);
  const floodProbe = await VictimProbe.start(victim);
  const orson = await ByzantinePeer.start('orson', network, attackDir, { seed: orsonId.seed });
  stoppers.push(() => orson.stop());
  const result = await flood(orson, victim, orphans);
  await sleep(1_000);
  await floodProbe.stop();
  const after = await status();
  const extraBlocks = after.blockCount === undefined ? 0 : after.blockCount - (after.height + 1);
  const orphanFloodStored = after.orphanCount + Math.max(0, extraBlocks);
  log(
    `orphan flood: ${result.delivered} of ${orphans.length} delivered, refused at ${result.refusedAt}; stored ${orphanFloodStored}; /status max ${floodProbe.statusMaxMs.toFixed(0)} ms; RSS +${floodProbe.rssGrowthMb.toFixed(1)} MB`,
  );
  // Sanity: a flood that never reached the node measured nothing (as when the attackers were
  // strangers to the roster); the figures below would be meaningless.
  if (result.delivered > 0) log(`sanity: orphanFloodDelivered ${result.delivered} > 0: ok`);
  else {
    log('sanity: orphanFloodDelivered is 0: the orphans never reached the node; this run measured nothing');
    process.exitCode = 1;
  }

  // ---- the honest chain goes on ----
  const h = (await miner.status()).height;
  const deadline = Date.now() + 60_000;
  while ((await miner.status()).height <= h && Date.now() < deadline) await sleep(10);
  const minedAt = Date.now();
  while ((await victim.status()).height <= h && Date.now() < deadline) await sleep(10);
  const honestBlockConnectedMs = Date.now() - minedAt;

  const banned = await bannedIds();
  const attackers = [...liars.map((l) => l.peerId), orson.peerId];
  console.log(
    JSON.stringify({
      statusLieRssGrowthMb: Number(lieProbe.rssGrowthMb.toFixed(1)),
      statusLieStatusMaxMs: Math.round(lieProbe.statusMaxMs),
      statusLieBannedMs: lieBannedMs,
      orphanFloodRssGrowthMb: Number(floodProbe.rssGrowthMb.toFixed(1)),
      orphanFloodStatusMaxMs: Math.round(floodProbe.statusMaxMs),
      orphanFloodDelivered: result.delivered,
      orphanFloodReachedNode: result.delivered > 0,
      orphanFloodStored,
      attackersBanned: attackers.filter((id) => banned.has(id)).length,
      attackers: attackers.length,
      honestBlockConnectedMs,
      probeFailures: lieProbe.failures.length + floodProbe.failures.length,
    }),
  );
} finally {
  for (const stop of stoppers) await stop();
  await cluster.stopAll();
  await cluster.removeRunDir();
  await removeDir(attackDir);
}
// Not 0 when the sanity check failed (process.exitCode set above).
process.exit(process.exitCode ?? 0);
