/**
 * Attack review #11: a header pre-sync that hits its hard cap cost the claimant nothing.
 *
 * HeaderPresync reads at most `--max-presync-headers` headers of a deep fork (default 200,000;
 * here 2,000, so the attack takes 2,001 headers instead of 200,001 and the same code path runs).
 * Reaching the cap fails the pre-sync as `too-long`, which range-sync.ts used to treat as "not a
 * lie": no penalty, no disproof, the peer skipped 60 s, then the same status started the same
 * pre-sync again (in the attacker's full-size run: 54 s of the one sync slot a round).
 *
 * The attacker's fork: headers from genesis that ease to the easiest target within seven
 * retargets, valid under every header rule, no bodies. The victim holds a seeded 100-block chain
 * at 2^16 hashes a block, so the fork would need ~385,000 easiest headers to show its claim.
 *
 * What holds: a capped pre-sync disproves the claim (a doubling back-off), and a repeat costs
 * the claimant score.
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
import {
  decodeRangeRequest,
  encodeBlockRef,
  MAX_HEADERS_PER_REQUEST,
  type Status,
} from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { VictimProbe } from './byzantine-blocks-peer.ts';
import { ByzantinePeer, insiderRoster, insiders, removeDir, successFrame } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, parseMetric } from './harness.ts';

const CAP = 2_000;
const FORK = CAP + 1;

test('a pre-sync that reaches the header cap costs the peer that caused it', {
  timeout: 150_000,
}, async (t) => {
  const cluster = new Cluster({
    network: {
      name: 'presync-cap',
      genesisTimestamp: Date.now() - 30 * 86_400_000,
      genesisMessage: 'presync cap',
      blockTimeMs: 1000,
      retargetInterval: 10,
      maxRetargetFactor: 4,
      initialTarget: targetForWork(1n << 16n),
      minTarget: targetForWork(1n << 40n),
      maxTarget: targetForWork(16n),
    },
    roster: insiderRoster(1),
  });
  const insider = insiders(cluster.roster, 1);
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-presync-cap-'));
  let attacker: ByzantinePeer | undefined;
  let passed = false;
  let running = true;
  t.after(async () => {
    running = false;
    await attacker?.stop();
    await cluster.stopAll();
    await removeDir(attackDir);
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const victimDir = path.join(cluster.runDir, 'victim');
  await seedChain([victimDir], network, { blocks: 100 });
  const [victim] = await cluster.start(1, () => ({
    name: 'victim',
    dataDir: victimDir,
    args: ['--max-presync-headers', String(CAP)],
  }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);

  // ---- The fork's headers: slow timestamps ease the target to the easiest, then 1 s apart ----
  const t0 = performance.now();
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
  const prepMs = Math.round(performance.now() - t0);
  assert.equal(target, network.maxTarget, 'the fork reached the easiest target');

  // ---- The attacker: a status claiming far more work, the fork's headers, no blocks ----
  const me = insider();
  attacker = await ByzantinePeer.start('capper', network, attackDir, { gossip: false, seed: me.seed });
  const v = await victim.status();
  const lie: Status = {
    chainId,
    genesisHash: genesis.hash,
    headHash: prevHash,
    headHeight: FORK,
    totalWork: BigInt(v.totalWork) << 40n,
    role: 'hub',
    capabilities: ['mine'],
  };
  let headerRequests = 0;
  let headersServed = 0;
  await attacker.serve('status', () => [successFrame(STATUS.encodeResponse(lie))]);
  await attacker.serve('ancestor', () => [successFrame(encodeBlockRef({ height: 0, hash: genesis.hash }))]);
  await attacker.serve('headers-by-range', (req) => {
    const q = decodeRangeRequest(req, MAX_HEADERS_PER_REQUEST);
    headerRequests++;
    const out = headers.slice(Math.max(0, q.startHeight - 1), q.startHeight - 1 + q.count);
    headersServed += out.length;
    return out.map((b) => successFrame(b));
  });
  await attacker.serve('blocks-by-range', () => []);
  await attacker.dial(victim);
  const probe = await VictimProbe.start(victim);
  const cpu = async () => parseMetric(await victim.metrics(), 'process_cpu_seconds_total') ?? 0;
  const cpuBefore = await cpu();
  const since = watch.penalties.length;
  const started = Date.now();
  // Its status, repeated (within the status rate limit), as a persistent claimant would.
  const statusLoop = (async () => {
    while (running) {
      await attacker!.request(victim, STATUS, lie).catch(() => {});
      await sleep(2_000);
    }
  })();
  const tooLong = async () =>
    parseMetric(await victim.metrics(), 'cairn_sync_presyncs_total', { outcome: 'too-long' }) ?? 0;
  // Two rounds (before the fix the second came after a 60 s skip), or the claimant penalised.
  const deadline = Date.now() + 90_000;
  while ((await tooLong()) < 2 && Date.now() < deadline) {
    if (watch.penaltiesOf(attacker, since).length > 0) break;
    await sleep(500);
  }
  const rounds = await tooLong();
  const elapsedMs = Date.now() - started;
  running = false;
  await statusLoop;
  await probe.stop();
  const cpuUsed = (await cpu()) - cpuBefore;
  const presyncHeaders = parseMetric(await victim.metrics(), 'cairn_sync_presync_headers_total') ?? 0;
  const penalties = watch.penaltiesOf(attacker, since);
  t.diagnostic(
    JSON.stringify({
      forkHeaders: FORK,
      attackerPrepMs: prepMs,
      tooLongRounds: rounds,
      elapsedMs,
      headerRequests,
      headersServed,
      victimPresyncHeaders: presyncHeaders,
      victimCpuSeconds: Number(cpuUsed.toFixed(1)),
      statusMaxMs: Math.round(probe.statusMaxMs),
      rssGrowthMb: Number(probe.rssGrowthMb.toFixed(1)),
      attackerPenalties: penalties.map((p) => `${p.action}:${p.reason.slice(0, 50)}`),
      syncLog: watch
        .syncLog(0)
        .filter((l) => /presync|sync (started|aborted)/.test(l))
        .slice(-6),
    }),
  );
  assert.ok(rounds >= 1, `${rounds} capped pre-syncs within ${elapsedMs} ms`);
  assert.ok(presyncHeaders <= rounds * CAP + 1_000, `${presyncHeaders} headers read: the cap held`);
  assert.ok(
    penalties.length > 0,
    `two capped pre-syncs (${headersServed} headers) cost the attacker nothing`,
  );
  passed = true;
});
