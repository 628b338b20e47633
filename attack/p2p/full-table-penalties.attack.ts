/**
 * ATK review of #11 (ban kept when the score table is full, cairn_peer_bans_evicted_total),
 * finding (HIGH in open mode): the fix keeps a newcomer's record over a table full of bans only
 * when that one call earns a ban (`fatal`). Every other penalty of a newcomer is applied to a
 * fresh record at 0 and then dropped (`settle`), so nothing adds up: a peer that keeps sending
 * clearly invalid data (`low-tolerance`, −10 each: disconnected at −20, banned at −50 when its
 * record is kept) is back at 0 after every offence, is never disconnected, never banned, and keeps
 * being served, for as long as the throwaway bans (16 here, one status each) fill the table.
 * Only `fatal` offences are still punished; the rest of the scoring (garbage frames, invalid
 * blocks, lying statuses, oversized gossip, messaging abuse) is off.
 *
 * Rig: as e2e/cluster/score-table-saturation.test.ts: a real node process with
 * `--max-scored-peers 16`, 16 throwaway identities banned for a wrong-chain status, then mallory
 * sends 6 well-framed random-byte blocks-by-range requests (each penalised `low-tolerance`, as in
 * byzantine.test.ts step 4). Measured (23 s): every one of mallory's 6 penalties was logged
 * `low-tolerance` at score 0 with verdict ok (its record is dropped before the score is read),
 * it stayed connected, was never listed banned, and `cairn_peer_scores_dropped_total` grew by 6.
 * With room in the table the same offences add up (PEERS_DEFAULTS: −10 each, disconnected at
 * −20, banned at −50), as byzantine.test.ts step 4 checks.
 *
 * Fix that makes it pass: when the table is full of bans, keep a penalised newcomer's record in
 * place of the ban ending soonest once its score reaches the disconnect threshold (or keep a
 * small separate table of recent offenders that bans cannot fill), so that penalties add up.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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
const OFFENCES = 6;

test('over a score table full of bans, repeated low-tolerance offences still add up to a ban', {
  timeout: 120_000,
}, async (t) => {
  const cluster = new Cluster({
    network: testNetworkConfig({ membership: 'open', initialTarget: targetForWork(20_000n) }),
  });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-atk-fulltable-'));
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

  for (let i = 0; i < TABLE; i++) {
    const p = await ByzantinePeer.start(`sybil${i}`, network, attackDir, { gossip: false });
    attackers.push(p);
    const since = watch.penalties.length;
    await p.dial(victim);
    await p.request(victim, STATUS, wrongChain).catch(() => {});
    await watch.waitPenalty(p, /status of another chain/, since);
  }
  assert.equal((await victim.status()).banned.length, TABLE, 'the throwaway bans fill the table');
  const droppedBefore = (await victim.metric('cairn_peer_scores_dropped_total')) ?? 0;

  const mallory = await ByzantinePeer.start('mallory', network, attackDir, { gossip: false });
  attackers.push(mallory);
  const outcomes: string[] = [];
  for (let i = 0; i < OFFENCES; i++) {
    const since = watch.penalties.length;
    const dialed = await mallory.dial(victim).then(
      () => true,
      () => false,
    );
    if (!dialed) {
      outcomes.push('refused');
      continue;
    }
    const noise = randomBytes(9);
    noise[0] = 0x42;
    await mallory.rawRequest(victim, 'blocks-by-range', Uint8Array.from([noise.length, ...noise]));
    const p = await watch.waitPenalty(mallory, /^blocks-by-range: /, since, 5_000).catch(() => undefined);
    outcomes.push(p ? `${p.action} ${p.score} ${p.verdict}` : 'no penalty');
    await sleep(200);
  }
  await sleep(500);
  const banned = (await victim.status()).banned.map((b) => b.peer);
  const dropped = ((await victim.metric('cairn_peer_scores_dropped_total')) ?? 0) - droppedBefore;
  t.diagnostic(
    `mallory's ${OFFENCES} offences: ${JSON.stringify(outcomes)}; listed banned ${banned.includes(mallory.peerId)}; ` +
      `score records dropped meanwhile ${dropped}; still connected ${mallory.isConnected(victim)}`,
  );
  const scores = watch.penaltiesOf(mallory).map((p) => p.score);
  assert.ok(
    Math.min(0, ...scores) <= -20,
    `mallory's penalties never added up: scores ${JSON.stringify(scores)}`,
  );
  assert.ok(banned.includes(mallory.peerId), `mallory, penalised ${OFFENCES} times low-tolerance, is banned`);
});
