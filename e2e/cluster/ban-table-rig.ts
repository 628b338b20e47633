/**
 * The rig of the score-table tests (score-table-saturation, ban-laundering, full-table-penalties):
 * an open network, one victim with the smallest score table (`--max-scored-peers 16`), and
 * throwaway identities that each earn a ban with one status of another chain (`fatal`).
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf, DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { MAX_TARGET, targetForWork, workForTarget } from '../../node/chain/pow.ts';
import type { Status } from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { ByzantinePeer, removeDir } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, testNetworkConfig } from './harness.ts';

/** `--max-scored-peers` of the victim: its minimum. */
export const TABLE = 16;

export async function banTableRig(t: TestContext, dirPrefix: string) {
  const cluster = new Cluster({
    network: testNetworkConfig({ membership: 'open', initialTarget: targetForWork(20_000n) }),
  });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), dirPrefix));
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

  /** A new attacker identity (stopped with the rig). */
  const attacker = async (name: string) => {
    const p = await ByzantinePeer.start(name, network, attackDir, { gossip: false });
    attackers.push(p);
    return p;
  };
  /** A fresh identity sends one status of another chain: `fatal`, banned at once. */
  const throwaway = async (name: string) => {
    const p = await attacker(name);
    const since = watch.penalties.length;
    await p.dial(victim);
    await p.request(victim, STATUS, wrongChain).catch(() => {});
    await watch.waitPenalty(p, /status of another chain/, since);
    // libp2p refuses a 6th inbound connection a second from one host (inboundConnectionThreshold).
    await sleep(250);
    return p;
  };
  return { cluster, network, honest, wrongChain, victim, watch, attacker, throwaway };
}
