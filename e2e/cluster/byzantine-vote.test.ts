/**
 * The checkpoint vote cannot be steered (issue 11, item 5), on real processes: a fresh victim
 * syncs 600 blocks from an honest server (a real node on a seeded store) while three colluding
 * in-process peers, connected first and answering fast, claim the same height and name other
 * blocks at every height they are asked about. Before the fix the victim polled them at the
 * checkpoint height 512, took their 3-of-3 "disagreement" as proof that the honest server was
 * on the wrong chain, refused its batch and penalised it, sync after sync. Now only peers with
 * an established good score vote: the colluders are never asked, the victim reaches the
 * server's head, and the server is not penalised.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf } from '../../node/chain/network-config.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import { decodeHeights, encodeBlockRef, type Status } from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { ByzantinePeer, removeDir, successFrame } from './byzantine-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, seedableNetwork } from './harness.ts';

const BLOCKS = 600;

test('three colluding voters cannot make a victim refuse an honest server at a checkpoint', {
  timeout: 120_000,
}, async (t) => {
  const cluster = new Cluster({ network: seedableNetwork() });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-byzantine-vote-'));
  const colluders: ByzantinePeer[] = [];
  let passed = false;
  t.after(async () => {
    for (const c of colluders) await c.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const serverDir = path.join(cluster.runDir, 'server');
  await seedChain([serverDir], network, { blocks: BLOCKS, entriesPerBlock: 1 });

  // The victim first, alone; then the colluders; then the honest server.
  const [victim] = await cluster.start(1, () => ({ name: 'victim', bootstrap: [] }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);
  const server = await cluster.addNode({ name: 'server', dataDir: serverDir, bootstrap: [] });
  const serverStatus = await server.status();
  assert.equal(serverStatus.height, BLOCKS);

  const votesAsked = { count: 0 };
  for (let i = 0; i < 3; i++) {
    const peer = await ByzantinePeer.start(`colluder${i}`, network, attackDir, { gossip: false });
    colluders.push(peer);
    // Tall enough to vote on height 512, but with almost no work: nothing to sync from them.
    const claim: Status = {
      chainId: chainIdOf(network),
      genesisHash: genesisBlock(network).hash,
      headHash: randomBytes(32),
      headHeight: BLOCKS,
      totalWork: 1n,
      role: 'hub',
      capabilities: ['mine'],
    };
    await peer.serve('status', () => [successFrame(STATUS.encodeResponse(claim))]);
    await peer.serve('hashes-at', (req) => {
      votesAsked.count++;
      return decodeHeights(req).map((height) =>
        successFrame(encodeBlockRef({ height, hash: randomBytes(32) })),
      );
    });
    await peer.dial(victim);
    await peer.request(victim, STATUS, claim).catch(() => {});
  }
  await cluster.waitFor(async () => (await victim.status()).peers.length >= 3, {
    timeoutMs: 15_000,
    description: 'the colluders connected to the victim',
  });

  // Now the honest server joins and the victim syncs from it.
  const since = watch.penalties.length;
  const t0 = Date.now();
  await cluster.restart('server', { bootstrap: [...victim.addrs] });
  await cluster.waitFor(async () => (await victim.status()).headHash === serverStatus.headHash, {
    timeoutMs: 60_000,
    description: `the victim reaches the server's head at ${BLOCKS}`,
  });
  t.diagnostic(`synced ${BLOCKS} blocks in ${Date.now() - t0} ms; colluders asked ${votesAsked.count} times`);

  const serverPenalties = watch.penaltiesOf(server, since);
  assert.deepEqual(
    serverPenalties.map((p) => p.reason),
    [],
    'the honest server was not penalised',
  );
  assert.ok(!(await victim.status()).banned.some((b) => b.peer === server.peerId));
  assert.equal(votesAsked.count, 0, 'peers without an established score are not asked to vote');
  passed = true;
});
