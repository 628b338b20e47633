/**
 * Flooding peers against a real two-node cluster (a miner and a follower, the victim, both
 * starting from a seeded chain of ~90 KB blocks). The attackers are libp2p nodes in this process:
 *
 * - sloth asks for full ranges (128 blocks) on 16 streams at a time and never reads them. The
 *   victim serves 4 of them per peer, reads a few blocks ahead of each, cuts each off when no
 *   chunk is taken for 5 s, refuses the rest with the rate-limited code, and penalises until
 *   sloth is banned.
 * - spammer gossips 20,000 entries at 2,000 a second, every other one signed by a throwaway
 *   key and the rest by itself. The network is a roster network and the attackers admitted
 *   members (with `submit`): the victim takes them at its per-peer rate, refuses the throwaway
 *   keys' as entries of non-members, admits the spammer's own within the per-author quota,
 *   refuses the rest over the rate before checking signatures, and penalises until the
 *   spammer is banned and cut off before it has sent them all.
 *
 * For each: the victim's /status answers within 1 s throughout, its RSS grows by less than
 * 100 MB, the attacker is penalised and banned, what it sent is held within the bounds, and
 * afterwards an honest block and an honest entry still get through.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Stream } from '@libp2p/interface';
import { readNetworkConfig } from '../../node/config-file.ts';
import { ACTION_SCORE } from '../../node/p2p/peer-scores.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { rssBytes, slowRead, spamEntries, statusProbe, throwawayEntries } from './byzantine-flood-peer.ts';
import { ByzantinePeer, ChainMirror, insiderRoster, insiders, removeDir } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, parseMetric, seedableNetwork } from './harness.ts';

const SEEDED = 300;
const MB = 1024 * 1024;

test('flooding peers are bounded, penalised and banned; honest blocks and entries get through', {
  timeout: 150_000,
}, async (t) => {
  // A roster network, every peer of ours an admitted member with mine and submit (pool
  // identities from 2 on; the miner and the victim take 0 and 1): strangers are refused at
  // connect (membership.test.ts), so what bounds an insider's flood is what is tested here.
  const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(2) });
  const insider = insiders(cluster.roster, 2);
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-flood-'));
  const attackers: ByzantinePeer[] = [];
  let passed = false;
  t.after(async () => {
    for (const a of attackers) await a.stop();
    await cluster.stopAll();
    await removeDir(attackDir);
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const minerDir = path.join(cluster.runDir, 'miner');
  const victimDir = path.join(cluster.runDir, 'victim');
  // 3 entries of ~30 KB per block: a full range is ~11 MB, 16 of them ~170 MB if held whole.
  await seedChain([victimDir, minerDir], network, {
    blocks: SEEDED,
    entriesPerBlock: 3,
    entryPadding: 30_000,
  });
  const [miner, victim] = await cluster.start(2, (i) =>
    i === 0
      ? { name: 'miner', mine: true, dataDir: minerDir }
      : {
          name: 'victim',
          dataDir: victimDir,
          // FLOOD_PROF=<dir>: a CPU profile of the victim (how the stalls below were found);
          // FLOOD_NODE_OPTIONS: more options for it (a preload that logs event-loop stalls).
          ...(process.env.FLOOD_PROF || process.env.FLOOD_NODE_OPTIONS
            ? {
                env: {
                  NODE_OPTIONS: [
                    process.env.FLOOD_PROF && `--cpu-prof --cpu-prof-dir=${process.env.FLOOD_PROF}`,
                    process.env.FLOOD_NODE_OPTIONS,
                  ]
                    .filter(Boolean)
                    .join(' '),
                },
              }
            : {}),
        },
  );
  assert.ok(miner && victim);
  const watch = new VictimWatch(victim);
  await cluster.waitForConnected({ timeoutMs: 30_000 });
  await cluster.waitForConverged({ minHeight: SEEDED + 1, timeoutMs: 60_000 });
  // Warm-up: an honest peer downloads the whole chain, so the RSS baselines below already
  // include what serving full ranges costs (V8's young generation alone grows by tens of MB).
  const reader = await ByzantinePeer.start('reader', network, attackDir, {
    gossip: false,
    seed: insider().seed,
  });
  attackers.push(reader);
  await reader.dial(victim);
  assert.ok(
    (await new ChainMirror(reader, victim).catchUp()) >= SEEDED,
    'the victim serves an honest reader',
  );
  await reader.stop();
  attackers.pop();

  /** The victim accepts an honest block (the miner's next one) and an honest entry. */
  const honestTraffic = async (what: string) => {
    const { height } = await miner.status();
    const converged = await cluster.waitForConverged({ minHeight: height + 1, timeoutMs: 30_000 });
    assert.ok(converged.statuses.victim!.height > height, `${what}: the victim connected an honest block`);
    const added = async () =>
      parseMetric(await victim.metrics(), 'cairn_mempool_admissions_total', { outcome: 'added' }) ?? 0;
    const added0 = await added();
    const { id } = await miner.postEntry(`honest after ${what}`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      // In its mempool, or admitted and already mined (the miner's next block can be quick).
      const [pool, n] = await Promise.all([victim.mempool(), added()]);
      if (pool.ids.includes(id) || n > added0) break;
      assert.ok(Date.now() < deadline, `${what}: the honest entry ${id} did not reach the victim`);
      await sleep(50);
    }
  };

  const statusMax: [string, number][] = [];
  const banned = async (peer: ByzantinePeer) =>
    (await victim.status()).banned.some((b) => b.peer === peer.peerId);
  const outcomes = async (protocol: string) => {
    const text = await victim.metrics();
    const count = (outcome: string) =>
      parseMetric(text, 'cairn_reqresp_duration_seconds_count', {
        protocol,
        direction: 'inbound',
        outcome,
      }) ?? 0;
    return {
      ok: count('ok'),
      refused: count('too-many-streams'),
      cut: count('write-timeout'),
      limited: count('rate-limited'),
    };
  };

  await t.test('a slow reader on 16 streams', async () => {
    const sloth = await ByzantinePeer.start('sloth', network, attackDir, {
      gossip: false,
      seed: insider().seed,
    });
    attackers.push(sloth);
    await sloth.dial(victim);
    const rss0 = await rssBytes(victim);
    const before = await outcomes('blocks-by-range');
    const probe = statusProbe(victim);
    await probe.ready;
    const open: Stream[] = [];
    let rounds = 0;
    let maxRss = rss0;
    const deadline = Date.now() + 45_000;
    try {
      while (!(await banned(sloth))) {
        assert.ok(
          Date.now() < deadline,
          `sloth not banned after ${rounds} rounds: ${JSON.stringify(watch.penaltiesOf(sloth).slice(-3))}`,
        );
        if (!sloth.isConnected(victim)) await sloth.dial(victim).catch(() => {});
        open.push(...(await slowRead(sloth, victim, 16, SEEDED)));
        rounds++;
        maxRss = Math.max(maxRss, await rssBytes(victim));
        await sleep(1_000);
      }
    } finally {
      await probe.stop();
      for (const s of open) s.abort(new Error('done'));
    }
    const after = await outcomes('blocks-by-range');
    const penalties = watch.penaltiesOf(sloth);
    t.diagnostic(
      `sloth: ${rounds} rounds, ${open.length} streams opened, victim refused ${after.refused - before.refused}, cut ${after.cut - before.cut}; ` +
        `${penalties.length} penalties; /status ${probe.summary()}; RSS ${(rss0 / MB).toFixed(0)} → max ${(maxRss / MB).toFixed(0)} MB`,
    );
    assert.ok(
      penalties.some((p) => /concurrent requests/.test(p.reason)),
      'penalised for too many streams',
    );
    assert.ok(after.refused - before.refused >= 12, 'the streams over the per-peer cap were refused');
    assert.deepEqual(probe.failures, [], 'every /status was answered');
    assert.ok(probe.quantile(0.95) < 1_000, `/status ${probe.summary()}`);
    statusMax.push(['the slow reader', probe.max()]);
    assert.ok(maxRss - rss0 < 100 * MB, `RSS grew by ${((maxRss - rss0) / MB).toFixed(0)} MB`);
    await honestTraffic('the slow reader');
  });

  await t.test('20,000 entries from throwaway keys and its own', async () => {
    const me = insider();
    const spammer = await ByzantinePeer.start('spammer', network, attackDir, { seed: me.seed });
    attackers.push(spammer);
    // Half of them signed by the spammer itself: it holds `submit`, so those are valid entries
    // a roster admits, and only the rate and the quotas bound them.
    const entries = await throwawayEntries(20_000, undefined, me.key);
    const ownKey = Buffer.from(me.key.publicKey);
    const throwawayIds = new Set(
      entries.filter((e) => !ownKey.equals(Buffer.from(e.author))).map((e) => e.idHex),
    );
    const ownIds = new Set(entries.filter((e) => ownKey.equals(Buffer.from(e.author))).map((e) => e.idHex));
    assert.equal(ownIds.size, 10_000);
    const admissions = async (outcome: string) =>
      parseMetric(await victim.metrics(), 'cairn_mempool_admissions_total', { outcome }) ?? 0;
    const [added0, notMember0] = [await admissions('added'), await admissions('invalid:author-not-member')];
    await spammer.connect(victim);
    const rss0 = await rssBytes(victim);
    const probe = statusProbe(victim);
    await probe.ready;
    const startedAt = new Date().toISOString();
    let sent = 0;
    let maxRss = rss0;
    let maxPool = 0;
    const sampler = setInterval(() => {
      void rssBytes(victim).then(
        (r) => {
          maxRss = Math.max(maxRss, r);
        },
        () => {},
      );
      void victim.status().then(
        (s) => {
          maxPool = Math.max(maxPool, s.mempoolSize);
        },
        () => {},
      );
    }, 1_000);
    try {
      sent = await spamEntries(spammer, victim, entries);
      const deadline = Date.now() + 30_000;
      while (!(await banned(spammer))) {
        assert.ok(
          Date.now() < deadline,
          `spammer not banned: ${JSON.stringify(watch.penaltiesOf(spammer).slice(-3))}`,
        );
        await sleep(200);
      }
    } finally {
      clearInterval(sampler);
      await probe.stop();
    }
    const text = await victim.metrics();
    const count = (outcome: string) => parseMetric(text, 'cairn_mempool_admissions_total', { outcome }) ?? 0;
    const added = count('added') - added0;
    const notMember = count('invalid:author-not-member') - notMember0;
    const rateRefused = count('full:peer-rate');
    const status = await victim.status();
    t.diagnostic(
      `spammer: sent ${sent}; victim admitted ${added}, refused as non-members ${notMember}, over rate ${rateRefused}; mempool max ${maxPool}, now ${status.mempoolSize}; ` +
        `${watch.penaltiesOf(spammer).length} penalties; /status ${probe.summary()}; RSS ${(rss0 / MB).toFixed(0)} → max ${(maxRss / MB).toFixed(0)} MB; ` +
        `from ${startedAt} to ${new Date().toISOString()}`,
    );
    assert.ok(
      watch.penaltiesOf(spammer).some((p) => /admission rate/.test(p.reason)),
      'penalised for the flood',
    );
    // Roster mode: the spammer is a member, the throwaway keys are not. Those it sent within the
    // rate reached the mempool and were refused there as author-not-member (a roster lookup,
    // before any signature check), ignored without blame since a relayer at another tip may
    // judge the roster differently; none is held. (On an open network they filled the spammer's
    // per-peer quota, a quarter of the 10,000-entry pool.) Its own entries are admitted, and
    // peers together may hold at most a tenth of the pool (1,000) of one author's.
    const pool = (await victim.mempool()).ids;
    const ownHeld = pool.filter((id) => ownIds.has(id)).length;
    t.diagnostic(`spammer's own entries admitted ${added}, in the mempool now ${ownHeld}`);
    assert.ok(notMember >= 100, `the entries within the rate were refused as non-members (${notMember})`);
    assert.ok(!pool.some((id) => throwawayIds.has(id)), 'no entry of a non-member is in the mempool');
    assert.ok(added >= 100, `the spammer's own entries were admitted (${added})`);
    assert.ok(added <= 1_000, `at most the per-author quota of its own was admitted (${added})`);
    assert.ok(maxPool <= 1_000 + 50, `the victim's mempool held ${maxPool} entries`);
    // A penalty (-1) per 10 entries over the rate, banned at -50: about 500 over the rate, fewer
    // when something else it did also cost it (a reconciliation or status request of the
    // victim's that timed out under load), a few more as the score decays. Those past the ban
    // were cut off with the connection: no checks, no penalties.
    const penalties = watch.penaltiesOf(spammer);
    const ratePenalties = penalties.filter((p) => /admission rate/.test(p.reason)).length;
    const others = penalties.filter((p) => !/admission rate/.test(p.reason));
    t.diagnostic(
      `spammer: ${ratePenalties} penalties for the rate, others ${JSON.stringify(others.map((p) => `${p.action}: ${p.reason}`))}`,
    );
    assert.ok(
      rateRefused >= 10 * ratePenalties && rateRefused < 10 * ratePenalties + 200,
      `refused ${rateRefused} over the rate of ${sent}, ${ratePenalties} penalties for it`,
    );
    const banning = penalties.find((p) => p.verdict === 'ban');
    assert.ok(
      banning && banning.score <= -50,
      `banned at a score of ${banning?.score}, the ban score is -50`,
    );
    // Under load the victim may also have refused one of the spammer's handshakes (-10 each,
    // seen in a clean run: 33 rate penalties and two handshake-failed made the ban): the flood
    // must still be what banned it, the most of the score and the last straw.
    const otherCost = others.reduce((sum, p) => sum - ACTION_SCORE[p.action], 0);
    assert.ok(
      ratePenalties >= 25 && ratePenalties + otherCost >= 40,
      `banned for the flood (${ratePenalties} penalties for the rate, ${otherCost} for the rest)`,
    );
    assert.ok(penalties.length <= 70, `${penalties.length} penalties`);
    // Answered throughout, every one within 1 s (asserted with the slow reader's below).
    assert.deepEqual(probe.failures, [], 'every /status was answered');
    statusMax.push(['the entry flood', probe.max()]);
    assert.ok(maxRss - rss0 < 100 * MB, `RSS grew by ${((maxRss - rss0) / MB).toFixed(0)} MB`);
    await honestTraffic('the entry flood');
  });

  // Every /status within 1 s. The entry flood used to stall the victim 2.5-5 s (its event loop
  // held by libp2p reading a full socket 32 chunks at a time, a yamux window update written per
  // frame, and signatures checked on the main thread); with those fixed its slowest /status is
  // 0.1-0.35 s on this shared 2-core host at load 10-20 (see node/p2p/fair-read.ts).
  await t.test('every /status within 1 s during each attack', () => {
    for (const [what, ms] of statusMax) assert.ok(ms < 1_000, `${what}: /status max ${ms.toFixed(0)} ms`);
  });
  passed = true;
});
