/**
 * Attack review #11: an insider makes an honest relay earn the penalties for junk.
 *
 * Two real nodes on a seeded 40-block chain: `relay` (honest) and `victim`, connected. The
 * attacker (a member with `mine`) dials the relay only. Each round it forges a fork from far
 * below the tip: a block X whose own chain carries under half the tip's work, and ~20 children
 * of X. It gossips the children first (the relay holds them as orphans and asks for X, answered
 * late), then X. On the relay X's chain counts the orphans waiting on it, so X is kept as `side`;
 * relayed, the victim (without the orphans) sees junk and penalises the relay -10 a round.
 *
 * What holds: the relay keeps X but does not relay it (Chain: `relay: false`), so the victim
 * never penalises the honest relay.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { toHex } from '../../node/chain/bytes.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import { decodeHashes } from '../../node/p2p/messages.ts';
import { BLOCKS_BY_HASH } from '../../node/p2p/protocols.ts';
import { forgeChain } from '../../node/testing/forge.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import {
  ByzantinePeer,
  ChainMirror,
  insiderRoster,
  insiders,
  removeDir,
  successFrame,
} from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, parseMetric, seedableNetwork } from './harness.ts';

const SEEDED = 40;
const ROUNDS = 2;

test('an honest relay is not penalised for a side block it accepted on orphans it holds', {
  timeout: 120_000,
}, async (t) => {
  const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(2) });
  const insider = insiders(cluster.roster, 2);
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-relay-blame-'));
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
  const relayDir = path.join(cluster.runDir, 'relay');
  await seedChain([victimDir, relayDir], network, { blocks: SEEDED });
  const [victim, relay] = await cluster.start(2, (i) =>
    i === 0
      ? { name: 'victim', dataDir: victimDir }
      : { name: 'relay', dataDir: relayDir, bootstrapFrom: ['victim'] },
  );
  assert.ok(victim && relay);
  const watch = new VictimWatch(victim);
  await cluster.waitForConnected({ timeoutMs: 30_000 });
  await cluster.waitForConverged({ minHeight: SEEDED, timeoutMs: 30_000 });

  const me = insider();
  attacker = await ByzantinePeer.start('forker', network, attackDir, { seed: me.seed });
  const mirror = new ChainMirror(attacker, relay);
  // The relay asks us for X (the orphans' parent): answered late, after X went by gossip.
  const byHash = new Map<string, SealedBlock>();
  await attacker.serve(BLOCKS_BY_HASH.name, async (request) => {
    await sleep(3_000);
    return decodeHashes(request)
      .map((h) => byHash.get(toHex(h)))
      .filter((b): b is SealedBlock => b !== undefined)
      .map((b) => successFrame(b.encoded));
  });
  await attacker.connect(relay, 15_000);
  assert.equal((await mirror.catchUp()) >= SEEDED, true);
  const chain = mirror.chain;
  const w = workForTarget(chain.tip.header.target);
  const since = watch.penalties.length;
  const rounds: { fork: number; orphans: number; relayedBy: string[]; penalty?: string }[] = [];

  for (let r = 0; r < ROUNDS; r++) {
    // The relay must be connected to the victim (a disconnect verdict drops it; it redials).
    const deadline = Date.now() + 40_000;
    while (!(await victim.status()).peers.some((p: { peerId: string }) => p.peerId === relay.peerId)) {
      if (Date.now() > deadline) break;
      await sleep(250);
    }
    await sleep(2_500); // a gossipsub heartbeat or two: the relay's mesh has the victim again
    if (!attacker.gossipReady(relay)) await attacker.connect(relay, 15_000);
    const tipWork = chain.tip.chainWork;
    const floor = chain.sideChainWorkFloor();
    const f = 16 - r;
    const parent = chain.tree.mainAt(f)!;
    // X and enough children that X's chain, with them, reaches the floor (but stays lighter than the tip).
    const need = Number((floor - parent.chainWork) / w) + 1;
    const fork = forgeChain(chain, parent, need, { miner: me.key });
    const [x, ...orphans] = fork as [SealedBlock, ...SealedBlock[]];
    assert.ok((parent.chainWork + w) * 2n < tipWork, 'X alone is junk (under half the tip work)');
    assert.ok(parent.chainWork + BigInt(fork.length) * w >= floor, 'X with its children passes the floor');
    assert.ok(orphans.length <= 24, `${orphans.length} orphans, within the per-peer quota`);
    byHash.set(x.hashHex, x);
    // Paced: past 4 validations in flight a sender's blocks are ignored unread (gossip.ts), and
    // the relay must hold them all for X to be kept.
    for (const o of orphans) {
      await attacker.publishBlockBytes(o.encoded);
      await sleep(100);
    }
    await sleep(600);
    const relayedBy = await attacker.publishBlockBytes(x.encoded);
    const round: (typeof rounds)[number] = { fork: f, orphans: orphans.length, relayedBy };
    rounds.push(round);
    // Give the relay time to forward X and the victim time to judge it.
    const until = Date.now() + 6_000;
    while (Date.now() < until) {
      const p = watch.penaltiesOf(relay, since).find((p) => p.reason.includes(x.hashHex));
      if (p) {
        round.penalty = `${p.action} ${p.reason.slice(0, 60)} score=${p.score} verdict=${p.verdict}`;
        break;
      }
      await sleep(100);
    }
  }
  // The relay did keep each X as a side block (the defence is in relaying, not in refusing it).
  const kept = parseMetric(await relay.metrics(), 'cairn_blocks_processed_total', {
    outcome: 'side',
    source: 'gossip',
  });
  assert.ok((kept ?? 0) >= ROUNDS, `the relay kept ${kept} side blocks`);
  const penalties = watch.penaltiesOf(relay, since);
  const banned = await watch.bannedEntry(relay);
  t.diagnostic(JSON.stringify({ rounds, relayPenalties: penalties.length, banned: !!banned }));
  assert.deepEqual(
    penalties.map((p) => `${p.action}: ${p.reason.slice(0, 50)} -> ${p.verdict}`),
    [],
    'the victim penalised the honest relay for blocks it relayed',
  );
  assert.equal(banned, undefined, 'the victim banned the honest relay');
  passed = true;
});
