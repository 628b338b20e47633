/**
 * Attack review #11: orphans with full bodies bought main-thread signature checks for almost no
 * work and no penalty (100 orphans x 1,000 entries: victim busy 24 s, /status 1.4 s, sender -4).
 *
 * An insider gossips ORPHANS orphans of ENTRIES entries each, signed by a key not on the roster,
 * each on a random parent a few blocks above the victim's tip, and never answers the ancestor
 * requests. What holds: no entry signature is checked for an orphan whose authors the roster at
 * our tip refuses (ignored, -1 each), /status answers within 1 s, RSS grows by under 100 MB,
 * and the flood gets its sender banned.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SealedBlock } from '../../node/chain/types.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import { BLOCKS_BY_HASH } from '../../node/p2p/protocols.ts';
import { forgeBlock, knowledgeEntry, testKey } from '../../node/testing/forge.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { VictimProbe } from './byzantine-blocks-peer.ts';
import { ByzantinePeer, ChainMirror, insiderRoster, insiders, removeDir } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, parseMetric, seedableNetwork } from './harness.ts';

const SEEDED = 40;
const ORPHANS = 60;
const ENTRIES = 200;

test('orphans of signed entries by a non-member: /status, RSS and the sender are bounded', {
  timeout: 150_000,
}, async (t) => {
  const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(1) });
  const insider = insiders(cluster.roster, 1);
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-orphan-bodies-'));
  let attacker: ByzantinePeer | undefined;
  let passed = false;
  t.after(async () => {
    await attacker?.stop();
    await cluster.stopAll();
    await removeDir(attackDir);
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const victimDir = path.join(cluster.runDir, 'victim');
  await seedChain([victimDir], network, { blocks: SEEDED });
  const [victim] = await cluster.start(1, () => ({ name: 'victim', dataDir: victimDir }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);
  const me = insider();
  attacker = await ByzantinePeer.start('bodies', network, attackDir, { seed: me.seed });
  // Ancestor requests are never answered: the victim's request times out (10 s).
  await attacker.serve(BLOCKS_BY_HASH.name, async () => {
    await sleep(15_000);
    return [];
  });
  await attacker.connect(victim, 15_000);
  const mirror = new ChainMirror(attacker, victim);
  await mirror.catchUp();
  const chain = mirror.chain;

  // ---- Before the attack: pre-signed entries, mined orphans (not counted against the victim) ----
  const t0 = performance.now();
  const author = testKey(77_777);
  const now = Date.now() - 5_000;
  const orphans: SealedBlock[] = [];
  for (let i = 0; i < ORPHANS; i++) {
    const entries = Array.from({ length: ENTRIES }, (_, j) => knowledgeEntry(author, now, `o${i}e${j}`));
    orphans.push(
      forgeBlock(chain, chain.tip, {
        miner: me.key,
        entries,
        header: { prevHash: randomBytes(32), height: chain.tip.height + 2 + (i % 20) },
      }),
    );
  }
  const prepMs = Math.round(performance.now() - t0);
  const bytes = orphans.reduce((n, b) => n + b.encoded.length, 0);

  // ---- The attack ----
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    try {
      return parseMetric(await victim.metrics(), name, labels) ?? 0;
    } catch {
      return -1; // no answer within the client's timeout
    }
  };
  // Judged: held as orphans, or ignored before their bodies.
  const processed = async () =>
    (await metric('cairn_blocks_processed_total', { outcome: 'orphan', source: 'gossip' })) +
    (await metric('cairn_blocks_processed_total', { outcome: 'ignored', source: 'gossip' }));
  const cpuBefore = await metric('process_cpu_seconds_total');
  const probe = await VictimProbe.start(victim);
  const since = watch.penalties.length;
  const sentAt = performance.now();
  let delivered = 0;
  for (const o of orphans) {
    // Dropped at the disconnect threshold, it comes back for more, until it is refused.
    if (!attacker.gossipReady(victim)) {
      if (await watch.bannedEntry(attacker)) break;
      try {
        await attacker.connect(victim, 10_000);
      } catch {
        break;
      }
    }
    const to = await attacker.publishBlockBytes(o.encoded).catch(() => [] as string[]);
    if (to.includes(victim.peerId)) delivered++;
    await sleep(5);
  }
  const sendMs = Math.round(performance.now() - sentAt);
  // Until the victim has judged every orphan delivered (or 60 s).
  const deadline = Date.now() + 60_000;
  while ((await processed()) < delivered && Date.now() < deadline) {
    // Banned or dropped: the rest of its gossip is dropped unread.
    if (!attacker.isConnected(victim) || (await watch.bannedEntry(attacker))) break;
    await sleep(500);
  }
  const drainMs = Math.round(performance.now() - sentAt);
  await probe.stop();
  const cpuAfter = await metric('process_cpu_seconds_total');
  const status = await victim.status().catch(() => ({ orphanCount: -1 }));
  const penalties = watch.penaltiesOf(attacker, since);
  const banned = !!(await watch.bannedEntry(attacker));
  t.diagnostic(
    JSON.stringify({
      orphans: ORPHANS,
      entriesPerOrphan: ENTRIES,
      orphanKB: Math.round(bytes / ORPHANS / 1024),
      attackerPrepMs: prepMs,
      delivered,
      sendMs,
      judged: await processed(),
      drainMs,
      victimCpuSeconds: Number((cpuAfter - cpuBefore).toFixed(1)),
      statusMaxMs: Math.round(probe.statusMaxMs),
      statusSamples: probe.statusMs.length,
      rssGrowthMb: Number(probe.rssGrowthMb.toFixed(1)),
      orphanCount: status.orphanCount,
      attackerPenalties: penalties.map((p) => `${p.action}:${p.reason.slice(0, 40)}`),
      attackerScore: watch.lastScore(attacker),
      banned,
    }),
  );
  assert.ok(probe.statusMaxMs < 1_000, `a /status answer took ${Math.round(probe.statusMaxMs)} ms`);
  assert.ok(probe.rssGrowthMb < 100, `the victim's RSS grew by ${probe.rssGrowthMb.toFixed(1)} MB`);
  assert.ok(banned, `the sender of ${delivered} orphans was not banned (score ${watch.lastScore(attacker)})`);
  passed = true;
});
