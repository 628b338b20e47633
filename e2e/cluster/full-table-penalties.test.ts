/**
 * ATK review of #11 (ban kept when the score table is full), finding (HIGH in open mode, fixed):
 * the fix kept a newcomer's record over a table full of bans only when that one call earned a
 * ban (`fatal`). Every other penalty of a newcomer was applied to a fresh record at 0 and then
 * dropped, so nothing added up: a peer that keeps sending clearly invalid data (`low-tolerance`,
 * −10 each: disconnected at −20, banned at −50) was back at 0 after every offence, never
 * disconnected, never banned, for as long as throwaway bans (16 here, one status each) filled
 * the table. Now bans live in their own store (peer-scores.ts), so the score table never fills
 * with bans and every newcomer's penalties add up.
 *
 * Rig: as score-table-saturation.test.ts: a real node process with `--max-scored-peers 16`,
 * 16 throwaway identities banned for a wrong-chain status, then mallory sends 6 well-framed
 * random-byte blocks-by-range requests (each penalised `low-tolerance`, as in byzantine.test.ts
 * step 4). Failed before the fix (23 s): every one of mallory's 6 penalties was logged at score
 * 0 with verdict ok, it stayed connected and was never listed banned.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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
    // libp2p refuses a 6th inbound connection a second from one host (inboundConnectionThreshold).
    await sleep(250);
  }
  assert.equal((await victim.status()).banned.length, TABLE, 'the throwaway bans fill the table');

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
  t.diagnostic(
    `mallory's ${OFFENCES} offences: ${JSON.stringify(outcomes)}; listed banned ${banned.includes(mallory.peerId)}; ` +
      `still connected ${mallory.isConnected(victim)}`,
  );
  const scores = watch.penaltiesOf(mallory).map((p) => p.score);
  assert.ok(
    Math.min(0, ...scores) <= -20,
    `mallory's penalties never added up: scores ${JSON.stringify(scores)}`,
  );
  assert.ok(banned.includes(mallory.peerId), `mallory, penalised ${OFFENCES} times low-tolerance, is banned`);
});
