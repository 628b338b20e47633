/**
 * Finding 3 (MEDIUM): a lying sync target gets an honest helper penalised for serving the
 * honest chain ("served another chain than the target's").
 *
 * Range sync lets helpers (other peers whose head reaches the range) download batches, and
 * checks a helper's batch against the hash the *target* names at the batch end
 * (`requestHashesAt`). When that batch then does not link to the chain being imported, it is
 * refetched from the target, and if the target's refetch links, the helper "served another chain
 * in the target's place" and is penalised mid-tolerance (`servedAnotherChain`). Nothing checks
 * the target's hash-at answer against what the target serves: a target on its own fork names the
 * honest chain's hash at the end of the helper's batch (the honest chain is public), so the
 * honest helper's batch is "anchored"; its own previous batch ends on its fork, so the helper's
 * batch does not link; its refetch serves its fork, which links. The target contradicted itself
 * (hash H at height 256, then a range ending elsewhere), yet the helper pays: -5 per sync, ten
 * such syncs within a half-life (10 min) put an honest peer at the ban threshold (-50), and every
 * victim that syncs from the liar charges the same honest helper. The cost to the attacker is one
 * fork of 129 blocks (one batch and one block past the common prefix), reusable against every
 * node that joins; it is itself never penalised (its chain linked and was imported). Limit: at
 * one victim it repeats only while that victim lacks the honest chain above the fork point (a
 * synced victim pre-syncs a fork that deep and checks helpers against its headers), so a ban
 * of the helper by one victim is hard; the blame itself, and its -5 at every joiner, are not.
 *
 * Run on range sync with real Chains behind every peer (each answering as the node's handlers
 * do, like node/sync/range-sync.test.ts); only the liar's hashes-at answer is rewritten.
 *
 *   npm exec -- node --test node/sync/helper-framed.test.ts
 *
 * Failed before the fix: the honest helper got `mid-tolerance: range 129+128: served another
 * chain than the target's`, the target nothing. Passes since the refetch is judged against the
 * hash the target named: a helper batch ending on that hash is the target's named chain (a hash
 * fixes its ancestry), so a target whose own range then ends elsewhere contradicted itself (the
 * target is penalised, its status disproved; the helper is not).
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import pino from 'pino';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { Chain, ProcessResult } from '../chain/chain.ts';
import type { SealedBlock } from '../chain/types.ts';
import type { SealedHeader } from '../chain/validation.ts';
import type { BlockRef, Status } from '../p2p/messages.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { forgeChain, type TestChain, testChain, testKey } from '../testing/forge.ts';
import { type RangeSyncDeps, rangeSync } from './range-sync.ts';

const forger = testChain();
let MAIN: SealedBlock[] = [];
let FORK: SealedBlock[] = [];

before(async () => {
  MAIN = forgeChain(forger.chain, forger.chain.tip, 256);
  for (const b of MAIN) assert.equal((await forger.submit(b)).status, 'connected');
  // The liar's fork: leaves MAIN after height 127, heights 128..257 (one more than MAIN).
  FORK = forgeChain(forger.chain, forger.chain.tree.mainAt(127)!, 130, { miner: testKey(7) });
});

async function loaded(blocks: readonly SealedBlock[]): Promise<TestChain> {
  const t = testChain();
  for (const b of blocks) {
    const r = await t.submit(b);
    assert.ok(r.status === 'connected' || r.status === 'reorg', `setup: ${r.status}`);
  }
  return t;
}

const statusOf = (c: Chain): Status => ({
  chainId: c.chainId,
  genesisHash: c.genesis.hash,
  headHash: c.tip.hash,
  headHeight: c.tip.height,
  totalWork: c.tip.chainWork,
  role: 'submind',
  capabilities: ['relay'],
});

interface Peer {
  readonly id: PeerId;
  readonly t: TestChain;
  hashesAt?: (heights: number[]) => BlockRef[];
  readonly ranges: number[];
}

async function peer(blocks: readonly SealedBlock[]): Promise<Peer> {
  return { id: peerIdFromPrivateKey(await generateKeyPair('Ed25519')), t: await loaded(blocks), ranges: [] };
}

/** The node's handlers, answered from each peer's chain (main-chain blocks, stopping at the head). */
function deps(
  local: TestChain,
  peers: Peer[],
  penalties: { peer: string; action: PeerAction; reason: string }[],
) {
  const find = (id: PeerId) => peers.find((p) => p.id.equals(id))!;
  const mainHashes = (c: Chain, start: number, count: number) => {
    const out: Hex[] = [];
    for (let h = Math.max(1, start); h < start + count; h++) {
      const n = c.tree.mainAt(h);
      if (!n) break;
      out.push(n.hashHex);
    }
    return out;
  };
  const d: RangeSyncDeps = {
    chain: local.chain,
    requestRange: async (id, start, count) => {
      const p = find(id);
      p.ranges.push(start);
      return p.t.chain.getBlocks(mainHashes(p.t.chain, start, count));
    },
    requestAncestor: async (id, locator) => {
      const c = find(id).t.chain;
      for (const h of locator) {
        const n = c.tree.get(toHex(h));
        if (n?.onMain) return { height: n.height, hash: n.hash };
      }
      return { height: 0, hash: c.genesis.hash };
    },
    requestHeaders: async (id, start, count) => {
      const c = find(id).t.chain;
      return mainHashes(c, start, count).map((h): SealedHeader => {
        const n = c.tree.get(h)!;
        return { header: n.header, hash: n.hash, hashHex: n.hashHex };
      });
    },
    requestHashesAt: async (id, heights) => {
      const p = find(id);
      if (p.hashesAt) return p.hashesAt(heights);
      return heights.flatMap((h) => {
        const n = p.t.chain.tree.mainAt(h);
        return n ? [{ height: h, hash: n.hash }] : [];
      });
    },
    submit: async (blocks, from) => {
      const out: ProcessResult[] = [];
      for (const b of blocks) out.push(await local.submit(b, from));
      return out;
    },
    penalise: (id, action, reason) => {
      penalties.push({ peer: id.toString(), action, reason });
    },
    log: pino({ level: 'silent' }),
  };
  return d;
}

test('a target naming the honest chain at a helper batch end cannot get the honest helper penalised', async () => {
  // The honest helper holds MAIN (256 blocks); the liar holds MAIN to 127, then its fork to 257.
  const honest = await peer(MAIN);
  const liar = await peer([...MAIN.slice(0, 127), ...FORK]);
  // Its only lie: asked for its hashes at batch ends, it names the honest chain's (public) blocks.
  liar.hashesAt = (heights) =>
    heights.flatMap((h) => {
      const n = forger.chain.tree.mainAt(h);
      return n ? [{ height: h, hash: n.hash }] : [];
    });
  const local = await loaded([]);
  const penalties: { peer: string; action: PeerAction; reason: string }[] = [];
  const outcome = await rangeSync(
    { peer: liar.id, status: statusOf(liar.t.chain) },
    () => [{ peer: honest.id, status: statusOf(honest.t.chain) }],
    deps(local, [liar, honest], penalties),
    { requestsPerPeer: 1, bufferBatches: 2 },
  );
  const of = (p: Peer) =>
    penalties.filter((x) => x.peer === p.id.toString()).map((x) => `${x.action}: ${x.reason}`);
  const described = `outcome ${JSON.stringify(outcome)}; honest ${JSON.stringify(of(honest))}; liar ${JSON.stringify(of(liar))}; ranges honest ${honest.ranges} liar ${liar.ranges}`;
  assert.ok(honest.ranges.includes(129), `the honest helper served batch 129+128: ${described}`);
  assert.deepEqual(of(honest), [], `the honest helper served its main chain, as asked: ${described}`);
  assert.ok(
    of(liar).length > 0,
    `the target whose answers contradict each other is the one penalised: ${described}`,
  );
});
