/**
 * ATK review of #11 (ban kept when the score table is full), finding (LOW at the default table
 * size, fixed): a new ban over a table full of bans took the place of the ban ending soonest,
 * and every ban lasts banMs, so that was the oldest: a banned peer's friends laundered its ban
 * by earning `--max-scored-peers` more throwaway bans (one key and one wrong-chain status each).
 * Failed before the fix (34 s): 16 more throwaway bans in 11.5 s, 12 s into mallory's 1,800 s
 * ban, mallory was no longer listed, its redial connected and its status was answered.
 *
 * Now bans have their own store (peer-scores.ts, `--max-banned-peers`, 16,384 by default: 30 min
 * of bans at the 5 connections a second libp2p takes from one host) and none is forgotten before
 * its end; a ban the full store cannot hold bans the peer's address instead (peer-manager.ts).
 * Here the victim runs with `--max-scored-peers 16`: 33 bans, all kept.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf, DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { MAX_TARGET, targetForWork, workForTarget } from '../../node/chain/pow.ts';
import type { Status } from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { ByzantinePeer, removeDir } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, testNetworkConfig } from './harness.ts';

const TABLE = 16;

test('throwaway bans cannot push a real ban out of a full score table before it ends', {
  timeout: 120_000,
}, async (t) => {
  const cluster = new Cluster({
    network: testNetworkConfig({ membership: 'open', initialTarget: targetForWork(20_000n) }),
  });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-atk-launder-'));
  const attackers: ByzantinePeer[] = [];
  t.after(async () => {
    for (const a of attackers) await a.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    await cluster.removeRunDir();
  });
  const network = { ...DEFAULT_NETWORK, ...cluster.network } as NetworkConfig;
  const impostor: NetworkConfig = {
    ...network,
    name: `${network.name} (impostor)`,
    maxTarget: MAX_TARGET >> 2n,
  };
  const genesis = genesisBlock(network);
  const theirs = genesisBlock(impostor);
  const honest: Status = {
    chainId: chainIdOf(network),
    genesisHash: genesis.hash,
    headHash: genesis.hash,
    headHeight: 0,
    totalWork: workForTarget(network.initialTarget),
    role: 'submind',
    capabilities: [],
  };
  const wrongChain: Status = {
    ...honest,
    chainId: chainIdOf(impostor),
    genesisHash: theirs.hash,
    headHash: theirs.hash,
  };

  const [victim] = await cluster.start(1, () => ({
    name: 'victim',
    args: ['--max-scored-peers', String(TABLE)],
  }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);

  /** A fresh identity sends one status of another chain: `fatal`, banned at once. */
  const throwaway = async (name: string) => {
    const p = await ByzantinePeer.start(name, network, attackDir, { gossip: false });
    attackers.push(p);
    const since = watch.penalties.length;
    await p.dial(victim);
    await p.request(victim, STATUS, wrongChain).catch(() => {});
    await watch.waitPenalty(p, /status of another chain/, since);
    // libp2p refuses a 6th inbound connection a second from one host (inboundConnectionThreshold).
    await sleep(250);
    return p;
  };

  const t0 = performance.now();
  for (let i = 0; i < TABLE; i++) await throwaway(`sybil${i}`);
  const perBanMs = (performance.now() - t0) / TABLE;
  const listed = (await victim.status()).banned.length;
  t.diagnostic(
    `${TABLE} throwaway bans in ${(perBanMs * TABLE).toFixed(0)} ms (${perBanMs.toFixed(0)} ms each); ${listed} listed`,
  );
  assert.equal(listed, TABLE, 'the throwaway bans fill the table');

  // Mallory earns its ban over the full table: kept, in place of the ban ending soonest.
  const mallory = await throwaway('mallory');
  assert.ok(
    (await victim.status()).banned.some((b) => b.peer === mallory.peerId),
    'mallory is banned',
  );
  const bannedAt = Date.now();
  // Its friends then earn TABLE more throwaway bans: each takes the place of the ban ending
  // soonest, and the table's bans all last banMs, so mallory's is the TABLE-th to go.
  const t1 = performance.now();
  for (let i = 0; i < TABLE; i++) await throwaway(`launder${i}`);
  const launderMs = performance.now() - t1;
  await sleep(300);
  const stillBanned = (await victim.status()).banned.some((b) => b.peer === mallory.peerId);
  const redial = await mallory.dial(victim).then(
    () => 'connected',
    (e: Error) => e.message.slice(0, 80),
  );
  const answer = await mallory.request(victim, STATUS, honest).then(
    () => 'answered',
    (e: Error) => e.message.slice(0, 80),
  );
  const unrecorded = await victim.metric('cairn_peer_bans_unrecorded_total');
  t.diagnostic(
    `${TABLE} more throwaway bans in ${launderMs.toFixed(0)} ms, ${((Date.now() - bannedAt) / 1000).toFixed(1)} s into mallory's ` +
      `${(30 * 60).toFixed(0)} s ban: mallory still listed ${stillBanned}, redial ${redial}, status ${answer}; bans unrecorded ${unrecorded}`,
  );
  assert.ok(stillBanned, "mallory's ban was forgotten long before its end");
  assert.equal(unrecorded, 0, 'the ban store held every ban');
  assert.notEqual(answer, 'answered', "mallory's status during its ban is not answered");
});
