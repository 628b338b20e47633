/**
 * Work is never free, and low-work side chains are not stored: a real two-node cluster (one
 * miner, one follower, the victim) on a network whose easiest target is 16 expected hashes, so
 * that junk is cheap to make, against in-process attacker peers that dial only the victim. The
 * network is a roster network and every attacker an admitted member holding `mine` and `submit`
 * (insiders: what remains once strangers are refused at connect), signing its junk with its own
 * key.
 *
 * - orson gossips 10,000 signed orphans at target 2^256 − 1 (no work at all) on random parents;
 * - forrest gossips a 1,000-block fork from genesis at the minimum difficulty, every block
 *   valid, redialling after every disconnect;
 * - fiona serves the same fork by range sync, her status claiming 2^40 times the victim's work
 *   and repeating it until banned. Before the headers-first pre-sync the victim downloaded and
 *   stored the fork as a side chain before the work lie showed; now it reads the fork's
 *   headers, finds them short of the work a side chain needs, and asks for no block at all.
 *
 * For each: the victim's /status answers within 1 s throughout, its RSS grows by less than
 * 100 MB, the attacker is penalised and banned, nothing it sent is stored (orphan count, block
 * count = height + 1 on both honest nodes, nothing relayed to the miner), and the miner's next
 * block still connects on the victim.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Chain } from '../../node/chain/chain.ts';
import { DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { cheapFork, flood, freeOrphans, VictimProbe } from './byzantine-blocks-peer.ts';
import { ByzantinePeer, insiderRoster, insiders, removeDir } from './byzantine-peer.ts';
import { StatusLiar } from './byzantine-sync-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, type ClusterNode, parseMetric, seedableNetwork } from './harness.ts';

interface Status {
  height: number;
  orphanCount: number;
  blockCount: number;
  banned: { peer: string }[];
}

test('free orphans and a cheap fork from genesis cost the victim nothing lasting', {
  timeout: 210_000,
}, async (t) => {
  const started = Date.now();
  // A roster network, every attacker an admitted member with mine and submit (pool identities
  // from 2 on; the two nodes take 0 and 1): a stranger is refused at connect (membership.test.ts),
  // an insider's blocks reach validation, so the bounds below are what stops them.
  const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(2) });
  const insider = insiders(cluster.roster, 2);
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-byzantine-blocks-'));
  const attackers: ByzantinePeer[] = [];
  const liars: StatusLiar[] = [];
  let passed = false;
  t.after(async () => {
    for (const a of attackers) await a.stop();
    for (const l of liars) await l.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = { ...DEFAULT_NETWORK, ...cluster.network } as NetworkConfig;
  const forger = new Chain({ config: network, loadBlock: async () => undefined });

  const [miner, victim] = await cluster.start(2, (i) =>
    i === 0 ? { name: 'miner', mine: true } : { name: 'victim' },
  );
  assert.ok(miner && victim);
  const watch = new VictimWatch(victim);
  await cluster.waitForConnected({ timeoutMs: 30_000 });
  // Past the difficulty ramp's first steps: the honest chain's work is far above 1,000 blocks at
  // the easiest target, and its tip target far below it.
  await cluster.waitForConverged({ minHeight: 60, timeoutMs: 60_000 });
  t.diagnostic(`cluster at height 60 after ${Date.now() - started} ms`);

  const status = (node: ClusterNode) => node.getJson<Status>('/status');
  const metric = async (node: ClusterNode, name: string, labels: Record<string, string> = {}) =>
    parseMetric(await node.metrics(), name, labels) ?? 0;
  /** Every block either honest node holds is on its main chain: nothing else was stored. */
  const assertOnlyMainChainStored = async (what: string) => {
    for (const node of [victim, miner]) {
      const s = await status(node);
      assert.equal(s.blockCount, s.height + 1, `${node.name} stored blocks off its main chain after ${what}`);
    }
  };
  /** The miner's next block connects on the victim. */
  const assertHonestBlockConnects = async (what: string) => {
    const h = (await status(miner)).height;
    const t0 = Date.now();
    await cluster.waitForConverged({ minHeight: h + 1, timeoutMs: 30_000 });
    t.diagnostic(`${what}: honest block ${h + 1} connected on the victim in ${Date.now() - t0} ms`);
  };

  const attack = async (name: string, seed: Uint8Array, blocks: () => ReturnType<typeof freeOrphans>) => {
    const peer = await ByzantinePeer.start(name, network, attackDir, { seed });
    attackers.push(peer);
    const junk = blocks();
    const probe = await VictimProbe.start(victim);
    const since = watch.penalties.length;
    const t0 = Date.now();
    const result = await flood(peer, victim, junk);
    // Let the victim work through what it had received before the ban.
    await sleep(1_000);
    await probe.stop();
    const penalties = watch.penaltiesOf(peer, since);
    t.diagnostic(
      `${name}: ${result.delivered} of ${junk.length} delivered, ${result.reconnects} reconnects, ` +
        `refused at ${result.refusedAt} after ${Date.now() - t0} ms; ${penalties.length} penalties; ` +
        `/status max ${probe.statusMaxMs.toFixed(0)} ms over ${probe.statusMs.length} polls; ` +
        `RSS +${probe.rssGrowthMb.toFixed(1)} MB`,
    );
    assert.deepEqual(probe.failures, [], `${name}: /status or /metrics failed during the attack`);
    assert.ok(probe.statusMs.length >= 5, `${name}: /status was polled throughout`);
    assert.ok(probe.statusMaxMs < 1_000, `${name}: /status took ${probe.statusMaxMs} ms`);
    assert.ok(probe.rssGrowthMb < 100, `${name}: RSS grew by ${probe.rssGrowthMb} MB`);
    assert.ok(result.delivered >= 1, `${name}: the attack reached the victim`);
    assert.notEqual(result.refusedAt, undefined, `${name}: the victim kept accepting its connections`);
    assert.ok(penalties.length >= 1, `${name} was penalised`);
    assert.equal(penalties.at(-1)?.verdict, 'ban', `${name}'s last penalty banned it`);
    const s = await status(victim);
    assert.ok(
      s.banned.some((b) => b.peer === peer.peerId),
      `${name} is listed as banned in the victim's /status`,
    );
    return { peer, penalties, status: s };
  };

  // ---- 10,000 orphans at target 2^256 − 1 on random parents ----
  const tip = (await status(victim)).height;
  const checksBefore = await metric(victim, 'cairn_block_validation_errors_total', {
    code: 'target-out-of-range',
  });
  // Signed by orson's own key, which holds `mine`: no membership rule refuses them before the work.
  const orson = insider();
  const orphans = await attack('orson', orson.seed, () => freeOrphans(forger, orson.key, 10_000, tip + 10));
  // A flood also trips the per-peer gossip validation cap; any other reason is a wrong blame.
  const orsonReasons = orphans.penalties.map((p) => p.reason);
  assert.ok(
    orsonReasons.some((r) => /target-out-of-range/.test(r)) &&
      orsonReasons.every((r) => /target-out-of-range|blocks in validation at once/.test(r)),
    `orson's penalties name the target bound: ${JSON.stringify(orsonReasons)}`,
  );
  assert.ok(
    (await metric(victim, 'cairn_block_validation_errors_total', { code: 'target-out-of-range' })) >
      checksBefore,
    'counted as target-out-of-range',
  );
  assert.equal(orphans.status.orphanCount, 0, 'no free orphan was pooled');
  assert.equal(await metric(victim, 'cairn_orphan_blocks'), 0);
  await assertOnlyMainChainStored('the orphan flood');
  await assertHonestBlockConnects('orphan flood');

  // ---- a 1,000-block minimum-difficulty fork from genesis ----
  // Mined by forrest, a member with `mine`: every block of it valid under the roster too, so only
  // the side-chain work rule stands between it and the victim's store.
  const forrest = insider();
  const fork = cheapFork(forger, forrest.key, 1_000);
  assert.equal(fork[0]!.header.target, network.maxTarget, 'the fork is at the minimum difficulty');
  const ignoredBefore = await metric(victim, 'cairn_blocks_ignored_total', { reason: 'low-work-side-chain' });
  const forked = await attack('forrest', forrest.seed, () => fork);
  assert.ok(
    (await metric(victim, 'cairn_blocks_ignored_total', { reason: 'low-work-side-chain' })) > ignoredBefore,
    'its first block was ignored as a low-work side chain',
  );
  assert.ok(
    forked.penalties.some((p) => /low-work-side-chain/.test(p.reason) && p.action === 'low-tolerance'),
    'the genesis fork is junk: low tolerance',
  );
  assert.ok(
    forked.status.orphanCount <= 25,
    `at most one peer quota of orphans (${forked.status.orphanCount})`,
  );
  await assertOnlyMainChainStored('the cheap fork');
  const forkHashes = new Set(fork.map((b) => b.hashHex));
  for (const node of [victim, miner]) {
    const { blocks } = await node.chain(0, Math.min(1_000, (await status(node)).height));
    assert.ok(!blocks.some((b) => forkHashes.has(b.hash)), `${node.name} has a fork block on its chain`);
  }
  await assertHonestBlockConnects('cheap fork');

  // ---- the same fork by range sync, from a status claiming far more work ----
  const unproven = () => metric(victim, 'cairn_sync_presyncs_total', { outcome: 'work-unproven' });
  const unprovenBefore = await unproven();
  const syncProbe = await VictimProbe.start(victim);
  const syncSince = watch.penalties.length;
  const t0 = Date.now();
  const fiona = await StatusLiar.startForkServer('fiona', network, attackDir, victim, fork, {
    seed: insider().seed,
  });
  liars.push(fiona);
  await fiona.peer.dial(victim);
  fiona.persist();
  const banDeadline = Date.now() + 60_000;
  while (!(await watch.bannedEntry(fiona))) {
    if (Date.now() > banDeadline)
      assert.fail(
        `fiona not banned; her penalties: ${JSON.stringify(watch.penaltiesOf(fiona, syncSince).map((p) => [p.action, p.reason, p.score, p.verdict]))}`,
      );
    await sleep(250);
  }
  const bannedMs = Date.now() - t0;
  await fiona.stop();
  await syncProbe.stop();
  const fionaPenalties = watch.penaltiesOf(fiona, syncSince);
  t.diagnostic(
    `fiona: banned after ${bannedMs} ms; ${fiona.headerRequests} header requests (${fiona.headersServed} headers), ` +
      `${fiona.rangeRequests} block requests; ${fionaPenalties.length} penalties; ` +
      `/status max ${syncProbe.statusMaxMs.toFixed(0)} ms over ${syncProbe.statusMs.length} polls; ` +
      `RSS +${syncProbe.rssGrowthMb.toFixed(1)} MB`,
  );
  assert.deepEqual(syncProbe.failures, [], 'fiona: /status or /metrics failed during the attack');
  assert.ok(syncProbe.statusMs.length >= 5, 'fiona: /status was polled throughout');
  assert.ok(syncProbe.statusMaxMs < 1_000, `fiona: /status took ${syncProbe.statusMaxMs} ms`);
  assert.ok(syncProbe.rssGrowthMb < 100, `fiona: RSS grew by ${syncProbe.rssGrowthMb} MB`);
  assert.ok(fiona.headersServed >= 1_000, `the victim read the fork's headers (${fiona.headersServed})`);
  assert.equal(fiona.rangeRequests, 0, 'the victim asked for no block of the fork');
  assert.ok((await unproven()) > unprovenBefore, 'counted as a pre-sync whose work was unproven');
  assert.ok(
    fionaPenalties.some(
      (p) => p.action === 'mid-tolerance' && /^presync: its headers up to 1000 carry work/.test(p.reason),
    ),
    `penalised for headers short of the claimed work: ${JSON.stringify(fionaPenalties.map((p) => p.reason))}`,
  );
  assert.ok(
    fionaPenalties.some((p) => /^status disproved \d+ times/.test(p.reason)),
    'a repeated lie costs more each time',
  );
  assert.equal(fionaPenalties.at(-1)?.verdict, 'ban', "fiona's last penalty banned her");
  assert.ok(watch.logged('status disproved', fiona, 0), "fiona's status was disbelieved");
  const afterSync = await status(victim);
  assert.ok(
    afterSync.banned.some((b) => b.peer === fiona.peerId),
    'fiona is listed as banned',
  );
  await assertOnlyMainChainStored('the cheap fork by range sync');
  for (const node of [victim, miner]) {
    const { blocks } = await node.chain(0, Math.min(1_000, (await status(node)).height));
    assert.ok(!blocks.some((b) => forkHashes.has(b.hash)), `${node.name} has a fork block on its chain`);
  }
  await assertHonestBlockConnects('cheap fork by range sync');

  t.diagnostic(`total ${Date.now() - started} ms`);
  passed = true;
});
