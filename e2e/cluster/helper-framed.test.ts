/**
 * Finding 3, on real node processes (see node/sync/helper-framed.test.ts for the mechanism; MEDIUM): a
 * lying sync target gets an honest node penalised for serving it the honest chain.
 *
 * The victim is a fresh node; `honest` is a real node holding the seeded 256-block chain. The
 * liar holds the same chain to 127 and its own fork from there to 257 (one block more: it is the
 * best claim). It makes its first answer for 129+128 fail, so that batch goes to the honest
 * helper; asked for its hashes at batch ends it names the honest chain's (public) blocks; its
 * refetch of 129+128 then serves its fork, which links.
 *
 *   npm exec -- node --test e2e/cluster/helper-framed.test.ts
 *
 * Failed before the fix. Measured (17 s run): the victim synced 257 blocks from the liar in
 * 6.3 s, penalised the honest node once (mid-tolerance, "range 129+128: served another chain than
 * the target's") and the liar not at all. With the fix (a helper batch ending on the hash the
 * target named is the target's named chain; a target whose own refetch then ends elsewhere is
 * penalised, its status disproved), one 26 s run: the sync from the liar aborted after 128
 * blocks (6.3 s), the honest node (no penalty) served 129 blocks in 258 ms, the liar got one
 * mid-tolerance ("named another block at 256 than it serves"); its later sync reached 257.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Hex } from '../../node/chain/bytes.ts';
import { Chain } from '../../node/chain/chain.ts';
import { genesisBlock } from '../../node/chain/genesis.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import {
  decodeHeights,
  decodeRangeRequest,
  encodeBlockRef,
  MAX_BLOCKS_PER_REQUEST,
} from '../../node/p2p/messages.ts';
import { forgeChain, testKey } from '../../node/testing/forge.ts';
import { seedChain } from '../../node/testing/seed-store.ts';
import { removeDir, successFrame } from './byzantine-peer.ts';
import { ChainPeer } from './byzantine-sync-peer.ts';
import { VictimWatch } from './byzantine-watch.ts';
import { Cluster, seedableNetwork } from './harness.ts';

test('a lying target cannot get an honest helper node penalised', { timeout: 180_000 }, async (t) => {
  const cluster = new Cluster({ network: { ...seedableNetwork(), membership: 'open' } });
  const attackDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-attack11-framed-'));
  let liar: ChainPeer | undefined;
  t.after(async () => {
    await liar?.stop().catch(() => {});
    await cluster.stopAll();
    await removeDir(attackDir);
    await cluster.removeRunDir();
  });
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const honestDir = path.join(cluster.runDir, 'honest');
  const MAIN: SealedBlock[] = [];
  await seedChain([honestDir], network, { blocks: 256, onBlock: (b) => MAIN.push(b) });

  // The liar's chain: MAIN to 127, then its own 130 blocks (heights 128..257).
  const stored = new Map<Hex, SealedBlock>();
  const chain = new Chain({
    config: network,
    loadBlock: async (h) => stored.get(h),
    now: () => Number.MAX_SAFE_INTEGER / 2,
    mempoolMaxEntries: 1,
  });
  for (const b of MAIN.slice(0, 127)) {
    stored.set(b.hashHex, b);
    assert.equal((await chain.processBlock(b)).status, 'connected');
  }
  const fork = forgeChain(chain, chain.tip, 130, { miner: testKey(7) });
  const blocks = [...MAIN.slice(0, 127), ...fork];
  const genesis = genesisBlock(network);
  const work: bigint[] = [workForTarget(genesis.header.target)];
  for (const b of blocks) work.push(work.at(-1)! + workForTarget(b.header.target));

  const [victim] = await cluster.start(1, () => ({ name: 'victim', bootstrap: [] }));
  assert.ok(victim);
  const watch = new VictimWatch(victim);

  liar = await ChainPeer.start('liar', network, attackDir, blocks, work);
  const l = liar;
  let failed129 = false;
  const served: string[] = [];
  await l.peer.serve('blocks-by-range', async (req) => {
    const q = decodeRangeRequest(req, MAX_BLOCKS_PER_REQUEST);
    served.push(`${q.startHeight}+${q.count}`);
    // Batch 0 slowly (the honest node joins meanwhile); its first 129+128 fails (the helper takes it).
    if (q.startHeight === 1) await sleep(6_000);
    if (q.startHeight === 129 && !failed129) {
      failed129 = true;
      throw new Error('not now');
    }
    return blocks.slice(q.startHeight - 1, q.startHeight - 1 + q.count).map((b) => successFrame(b.encoded));
  });
  // Its only lie: the honest chain's hashes at the batch ends.
  await l.peer.serve('hashes-at', (req) =>
    decodeHeights(req)
      .filter((h) => h >= 1 && h <= MAIN.length)
      .map((height) => successFrame(encodeBlockRef({ height, hash: MAIN[height - 1]!.hash }))),
  );
  await l.announce(victim, blocks.length);

  const [honest] = await cluster.start(1, () => ({ name: 'honest', dataDir: honestDir }));
  assert.ok(honest);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && (await victim.status()).height < blocks.length) await sleep(250);
  await sleep(1_000);
  const v = await victim.status();
  const ofHonest = watch.penaltiesOf(honest).map((p) => `${p.action}: ${p.reason}`);
  const ofLiar = watch.penaltiesOf(l).map((p) => `${p.action}: ${p.reason}`);
  t.diagnostic(
    JSON.stringify({
      victimHeight: v.height,
      liarServed: served,
      honestPenalties: ofHonest,
      liarPenalties: ofLiar,
      syncLog: watch
        .syncLog(0)
        .filter((x) => /sync (started|aborted|finished)/.test(x))
        .map((x) => x.slice(0, 200)),
    }),
  );
  assert.ok(
    served.filter((s) => s.startsWith('129+')).length >= 2,
    'the liar was asked for 129+ twice (the refetch)',
  );
  assert.deepEqual(
    ofHonest.filter((p) => /another chain/.test(p)),
    [],
    'the honest node served its main chain, as asked, and is not penalised for it',
  );
  assert.ok(
    ofLiar.some((p) => /named another block at 256 than it serves/.test(p)),
    'the liar, whose named hash and own range disagree, is penalised',
  );
});
