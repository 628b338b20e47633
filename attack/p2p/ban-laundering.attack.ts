/**
 * ATK review of #11 (ban kept when the score table is full, cairn_peer_bans_evicted_total),
 * finding (LOW at the default table size): a new ban over a table full of bans takes the place of
 * the ban ending soonest, and every ban lasts banMs, so that is the oldest: a banned peer's friends
 * launder its ban by earning `--max-scored-peers` more throwaway bans (one key and one wrong-chain
 * status each), after which it is forgotten and served again, long before its 30 minutes end.
 * At the default 4,096 places that is 4,096 bans within the 30 minutes (2.3 a second), each from
 * an address its address bans do not yet refuse (two per address, or per IPv6 /64: the second
 * ban at an address bans it too): 2,048 /64s (an IPv6 /53), or loopback's exempt range for a
 * local stranger.
 *
 * Rig: e2e/cluster/score-table-saturation.test.ts's (a real node process with
 * `--max-scored-peers 16`, throwaway identities banned for a wrong-chain status). Measured (34 s):
 * 16 bans filled the table in 10.7 s; mallory banned over it; 16 more throwaway bans in 11.5 s,
 * 12 s into its 1,800 s ban: mallory no longer listed, its redial connected, its status was
 * answered; 17 bans evicted.
 *
 * Fix that makes it pass: keep bans apart from scores, in a store a flood of bans cannot cycle
 * within a ban's time (ids with their end only, sized for banMs at the highest ban rate the
 * admission limits allow), and when even that is full refuse new
 * identities from the address that is earning the bans instead of forgetting the oldest ban.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ByzantinePeer, removeDir } from '../../e2e/cluster/byzantine-peer.ts';
import { VictimWatch } from '../../e2e/cluster/byzantine-watch.ts';
import { Cluster, testNetworkConfig } from '../../e2e/cluster/harness.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf, DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { MAX_TARGET, targetForWork, workForTarget } from '../../node/chain/pow.ts';
import type { Status } from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';

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
  const evicted = await victim.metric('cairn_peer_bans_evicted_total');
  t.diagnostic(
    `${TABLE} more throwaway bans in ${launderMs.toFixed(0)} ms, ${((Date.now() - bannedAt) / 1000).toFixed(1)} s into mallory's ` +
      `${(30 * 60).toFixed(0)} s ban: mallory still listed ${stillBanned}, redial ${redial}, status ${answer}; bans evicted ${evicted}`,
  );
  assert.ok(stillBanned, "mallory's ban was forgotten long before its end");
  assert.notEqual(answer, 'answered', "mallory's status during its ban is not answered");
});
