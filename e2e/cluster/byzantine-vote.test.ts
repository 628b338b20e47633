/**
 * The checkpoint vote cannot be steered (issue 11, item 5), on real processes, on a roster
 * network whose colluders are admitted members (mine and submit: insiders, the threat that
 * remains once strangers are refused at connect).
 *
 * 1. A fresh victim syncs 600 blocks from an honest server (a real node on a seeded store)
 *    while three colluding in-process peers, connected first and answering fast, claim the same
 *    height and name other blocks at every height they are asked about. Before the first fix
 *    the victim polled them at the checkpoint height 512, took their 3-of-3 "disagreement" as
 *    proof that the honest server was on the wrong chain, refused its batch and penalised it,
 *    sync after sync. Only peers with an established good score vote: the colluders are never
 *    asked, the victim reaches the server's head, and the server is not penalised.
 * 2. The same three colluders first earn that score honestly: each alone serves the victim
 *    1,536 blocks of their chain Y (12 imported batches, +0.5 each), then they vote, with Y's
 *    true hashes, against an honest server whose chain X (5,000 blocks) is heavier than Y
 *    (4,608: X's first 4,000 blocks and a branch of 608). Before the vote became advisory,
 *    their trusted 3-of-3 at height 4,096 aborted every sync from the server; now the vote is
 *    counted and reported, never acted on: the victim pre-syncs X's headers, reorgs 608 blocks
 *    deep onto X, and nobody honest is penalised.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Chain } from '../../node/chain/chain.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { chainIdOf } from '../../node/chain/network-config.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import { decodeHeights, encodeBlockRef, type Status } from '../../node/p2p/messages.ts';
import { STATUS } from '../../node/p2p/protocols.ts';
import { TRUSTED_VOTER_MIN_SCORE } from '../../node/sync/range-sync.ts';
import { forgeBlock } from '../../node/testing/forge.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { ByzantinePeer, insiderRoster, insiders, removeDir, successFrame } from './byzantine-peer.ts';
import { ChainPeer } from './byzantine-sync-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, parseMetric, seedableNetwork } from './harness.ts';

const BLOCKS = 600;

test('three colluding voters cannot make a victim refuse an honest server at a checkpoint', {
  timeout: 120_000,
}, async (t) => {
  // A roster network, the colluders admitted members (pool identities 2-4, mine and submit; the
  // victim and the server take 0 and 1): strangers would be refused at connect and never asked.
  const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(2) });
  const insider = insiders(cluster.roster, 2);
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
    const peer = await ByzantinePeer.start(`colluder${i}`, network, attackDir, {
      gossip: false,
      seed: insider().seed,
    });
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

/** Blocks each colluder serves alone: 12 batches of 128, 12 rewards of 0.5 = 6 ≥ the vote's 5. */
const STAGE = 12 * 128;
const Y_BLOCKS = 3 * STAGE;
const X_BLOCKS = 5_000;
/** Where Y leaves X. */
const FORK_AT = 4_000;

test('three colluders that earned good scores vote against an honest server: the heavier chain still wins', {
  timeout: 240_000,
}, async (t) => {
  const started = Date.now();
  // A roster network, the colluders admitted members as in the first test: a member's good score
  // is earned like anyone's, and its vote must still not steer the victim.
  const cluster = new Cluster({ network: seedableNetwork(), roster: insiderRoster(2) });
  const insider = insiders(cluster.roster, 2);
  const colluderIds = [insider(), insider(), insider()];
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-byzantine-vote-trusted-'));
  const colluders: ChainPeer[] = [];
  let passed = false;
  t.after(async () => {
    for (const c of colluders) await c.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    if (!passed || !(await cluster.removeRunDir())) t.diagnostic(`logs kept in ${cluster.runDir}`);
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const serverDir = path.join(cluster.runDir, 'server');
  const X: SealedBlock[] = [];
  await seedChain([serverDir], network, { blocks: X_BLOCKS, onBlock: (b) => X.push(b) });

  // Y: the colluders' valid chain, X's first 4,000 blocks and a branch of their own, lighter
  // than X: their votes at 4,096 and 4,608 name Y's blocks. (A branch from genesis makes the
  // reorg 4,608 deep: it first showed that reorgs loaded blocks through Prisma at 2 ms each.)
  const forger = new Chain({ config: network, loadBlock: async () => undefined });
  const Y: SealedBlock[] = [];
  const work = [forger.tip.chainWork];
  for (let i = 0; i < Y_BLOCKS; i++) {
    // Y's own branch is mined by a colluder (a member with `mine`): valid on the roster network.
    const b = i < FORK_AT ? X[i]! : forgeBlock(forger, forger.tip, { miner: colluderIds[0]!.key });
    assert.equal((await forger.processBlock(b)).status, 'connected');
    Y.push(b);
    work.push(forger.tip.chainWork);
  }
  t.diagnostic(`seeded X (${X_BLOCKS}) and forged Y (${Y_BLOCKS}) in ${Date.now() - started} ms`);

  const [victim] = await cluster.start(1, () => ({ name: 'victim', bootstrap: [] }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);
  const server = await cluster.addNode({ name: 'server', dataDir: serverDir, bootstrap: [] });
  const serverStatus = await server.status();
  assert.equal(serverStatus.height, X_BLOCKS);
  assert.ok(BigInt(serverStatus.totalWork) > work[Y_BLOCKS]!, 'X is the heavier chain');

  // ---- Earning trust: each colluder alone serves the next 1,536 blocks of Y ----
  for (let i = 0; i < 3; i++) {
    const c = await ChainPeer.start(`colluder${i}`, network, attackDir, Y, work, {
      seed: colluderIds[i]!.seed,
    });
    colluders.push(c);
    await c.announce(victim, (i + 1) * STAGE);
    await cluster.waitFor(async () => (await victim.status()).height === (i + 1) * STAGE, {
      timeoutMs: 60_000,
      description: `the victim syncs Y up to ${(i + 1) * STAGE} from colluder${i}`,
    });
  }
  const earned = await victim.status();
  for (const c of colluders) {
    const score = earned.peers.find((p) => p.peerId === c.peerId)?.score ?? 0;
    assert.ok(score >= TRUSTED_VOTER_MIN_SCORE, `${c.name} earned a voter's score: ${score}`);
  }
  t.diagnostic(
    `colluders trusted after ${Date.now() - started} ms: ${JSON.stringify(earned.peers.map((p) => p.score))}`,
  );

  // ---- They claim one block more than they hold (with Y's real work): the victim counts only
  // peers taller than itself among those it asks. No taller, so that no batch they cannot
  // serve is ever asked of them (an empty answer would cost them their score before they vote).
  for (const c of colluders) await c.announce(victim, Y_BLOCKS, Y_BLOCKS + 1);
  const disagreements = async () =>
    parseMetric(await victim.metrics(), 'cairn_sync_checkpoint_disagreements_total') ?? 0;
  const before = await disagreements();
  const since = watch.penalties.length;
  const t0 = Date.now();
  await cluster.restart('server', { bootstrap: [...victim.addrs] });
  await cluster.waitFor(async () => (await victim.status()).headHash === serverStatus.headHash, {
    timeoutMs: 90_000,
    description: `the victim reorgs onto the server's heavier chain X at ${X_BLOCKS}`,
  });
  const votes = colluders.map((c) => c.votesAsked);
  t.diagnostic(
    `reorged onto X in ${Date.now() - t0} ms; votes asked of the colluders ${JSON.stringify(votes)}; ` +
      `disagreements reported ${(await disagreements()) - before}`,
  );

  assert.ok(
    votes.every((v) => v > 0),
    `every trusted colluder was asked to vote: ${votes}`,
  );
  assert.ok((await disagreements()) > before, 'their disagreement was counted, and only reported');
  assert.deepEqual(
    watch.penaltiesOf(server, since).map((p) => p.reason),
    [],
    'the honest server was not penalised',
  );
  // Nor the colluders: a vote is no offence either way (only timeouts on a loaded machine).
  for (const c of colluders)
    assert.deepEqual(
      watch.penaltiesOf(c, since).filter((p) => p.action !== 'high-tolerance'),
      [],
      `${c.name} was penalised`,
    );
  const v = await victim.status();
  assert.ok(!v.banned.some((b) => b.peer === server.peerId));
  const { blockCount } = await victim.getJson<{ blockCount: number }>('/status');
  assert.equal(
    blockCount,
    X_BLOCKS + (Y_BLOCKS - FORK_AT) + 1,
    'X on main, Y kept as the stale branch it was',
  );
  passed = true;
});
