/**
 * Fork choice, reorgs and what they hand to the store; the orphan pool (any arrival order,
 * bounds, expiry, invalid parents); the block locator; and restoring from persisted state.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  forgeBlock,
  forgeBranch,
  forgeChain,
  knowledgeEntry,
  scratchNode,
  TEST_NOW,
  type TestChain,
  testChain,
  testKey,
  testNetwork,
} from '../testing/forge.ts';
import { seededRandom } from '../testing/prng.ts';
import { decodeBlock } from './block-codec.ts';
import type { Hex } from './bytes.ts';
import { toHex } from './bytes.ts';
import { Chain, type ChainEvent, type PersistedChainState, type ProcessResult } from './chain.ts';
import type { SealedBlock, SealedEntry } from './types.ts';

const GENESIS_TS = testNetwork().genesisTimestamp;
const author = testKey(1);
const entry = (n: number) => knowledgeEntry(author, GENESIS_TS + n, `entry number ${n}`);
const rival = testKey(2);

async function submitAll(t: TestChain, blocks: readonly SealedBlock[]): Promise<ProcessResult[]> {
  const out: ProcessResult[] = [];
  for (const b of blocks) out.push(await t.submit(b));
  return out;
}

const statuses = (rs: readonly ProcessResult[]) => rs.map((r) => r.status);
const eventsOf = <T extends ChainEvent['type']>(events: readonly ChainEvent[], type: T) =>
  events.filter((e): e is Extract<ChainEvent, { type: T }> => e.type === type);
const sortedIds = (entries: readonly SealedEntry[]) => entries.map((e) => e.idHex).sort();

const rng = seededRandom;

function shuffle<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const next = rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('fork choice and reorgs', () => {
  test('a 3-deep fork switch moves the tip, returns entries to the mempool and reports net changes', async () => {
    // A small recent-block cache, so the reorg has to load the old blocks through loadBlock.
    const t = testChain({}, { recentBlockCache: 2 });
    const { chain } = t;
    const [x1, x2, x3, x4, y] = [entry(1), entry(2), entry(3), entry(4), entry(5)] as const;
    for (const e of [x1, x2, x3, x4]) assert.equal(chain.addEntry(e).status, 'added');

    const [common] = forgeChain(chain, chain.tip, 1);
    assert.equal((await t.submit(common!)).status, 'connected');
    const forkPoint = chain.tip;
    const [a1, a2, a3] = forgeBranch(chain, forkPoint, [
      { entries: [x1] },
      { entries: [x2] },
      { entries: [x3, x4] },
    ]) as [SealedBlock, SealedBlock, SealedBlock];
    assert.deepEqual(statuses(await submitAll(t, [a1, a2, a3])), ['connected', 'connected', 'connected']);
    assert.equal(chain.tip.hashHex, a3.hashHex);
    assert.equal(chain.mempool.size, 0, 'included entries left the mempool');
    assert.equal(chain.addEntry(y).status, 'added');
    chain.takeUpdate();

    // The rival branch carries x2 (also in a2) and y (pending).
    const branch = forgeBranch(chain, forkPoint, [
      { miner: rival, entries: [x2] },
      { miner: rival, entries: [y] },
      { miner: rival },
      { miner: rival },
    ]);

    const lighter = await submitAll(t, branch.slice(0, 3));
    assert.deepEqual(statuses(lighter), ['side', 'side', 'side']);
    assert.equal(chain.tip.hashHex, a3.hashHex, 'equal work keeps the first-seen tip');
    const sideUpdate = chain.takeUpdate();
    assert.deepEqual(
      [...sideUpdate.stale],
      branch.slice(0, 3).map((b) => [b.hashHex, 'side-chain']),
    );
    assert.equal(sideUpdate.head, undefined, 'the head did not move');
    assert.equal(sideUpdate.mempool.size, 0);
    assert.equal(sideUpdate.blocks.length, 3);

    const r = await t.submit(branch[3]!);
    assert.deepEqual(r, { status: 'reorg', hashHex: branch[3]!.hashHex, depth: 3 });
    assert.equal(chain.tip.hashHex, branch[3]!.hashHex);
    assert.equal(chain.tip.height, 5);
    for (const [i, b] of [common!, ...branch].entries())
      assert.equal(chain.tree.mainAt(i + 1)?.hashHex, b.hashHex);
    for (const b of [a1, a2, a3]) assert.equal(chain.tree.get(b.hashHex)?.onMain, false);

    // x1, x3, x4 are back; x2 is in the new branch (b1) and y was included by it.
    assert.deepEqual(chain.mempool.ids().sort(), sortedIds([x1, x3, x4]));
    assert.deepEqual(
      chain.mempool.ids(),
      [x1, x3, x4].map((e) => e.idHex),
      'lowest block first',
    );

    const u = chain.takeUpdate();
    assert.equal(u.head?.hashHex, branch[3]!.hashHex);
    assert.deepEqual(
      new Map(u.stale),
      new Map<Hex, string | null>([
        [a3.hashHex, 'reorged-out'],
        [a2.hashHex, 'reorged-out'],
        [a1.hashHex, 'reorged-out'],
        [branch[0]!.hashHex, null],
        [branch[1]!.hashHex, null],
        [branch[2]!.hashHex, null],
      ]),
    );
    assert.deepEqual(
      new Map(u.mempool),
      new Map<Hex, SealedEntry | null>([
        [y.idHex, null],
        [x1.idHex, x1],
        [x3.idHex, x3],
        [x4.idHex, x4],
      ]),
    );
    assert.deepEqual(
      u.blocks.map((b) => b.block.hashHex),
      [branch[3]!.hashHex],
    );
    const [reorg] = eventsOf(u.events, 'reorg');
    assert.ok(reorg);
    assert.equal(reorg.depth, 3);
    assert.equal(reorg.fork.hashHex, forkPoint.hashHex);
    assert.equal(reorg.oldTip.hashHex, a3.hashHex);
    assert.equal(reorg.newTip.hashHex, branch[3]!.hashHex);
    assert.deepEqual(
      eventsOf(u.events, 'block-connected').map((e) => e.node.hashHex),
      branch.map((b) => b.hashHex),
      'connected lowest first',
    );
    assert.deepEqual(
      eventsOf(u.events, 'block-stale').map((e) => [e.node.hashHex, e.reason, e.reorgDepth]),
      [a3, a2, a1].map((b) => [b.hashHex, 'reorged-out', 3]),
      'each reorged-out block carries the depth of the reorg that took it out',
    );

    // And back: two more blocks on the old branch win again.
    const a4 = forgeBlock(chain, chain.tree.get(a3.hashHex)!);
    assert.equal((await t.submit(a4)).status, 'side', 'equal work: the current tip stays');
    const a5 = forgeBlock(chain, chain.tree.get(a4.hashHex)!);
    const back = await t.submit(a5);
    assert.deepEqual(back, { status: 'reorg', hashHex: a5.hashHex, depth: 4 });
    assert.deepEqual(chain.mempool.ids(), [y.idHex], 'y returns; x2 is in a2, the others left');
    const u2 = chain.takeUpdate();
    assert.equal(u2.stale.get(a1.hashHex), null);
    assert.equal(u2.stale.get(a4.hashHex), null, 'side-chain then main within one update: net un-staled');
    for (const b of branch) assert.equal(u2.stale.get(b.hashHex), 'reorged-out');
  });

  test('equal work keeps the first-seen tip; one more block on the rival branch switches', async () => {
    const t = testChain();
    const { chain } = t;
    const genesis = chain.tip;
    const main = forgeChain(chain, genesis, 2);
    const other = forgeChain(chain, genesis, 3, { miner: rival });
    assert.deepEqual(statuses(await submitAll(t, main)), ['connected', 'connected']);
    assert.deepEqual(statuses(await submitAll(t, other.slice(0, 2))), ['side', 'side']);
    assert.equal(chain.tip.hashHex, main[1]!.hashHex);
    assert.equal(chain.tree.get(other[1]!.hashHex)!.chainWork, chain.tip.chainWork);
    // The order of arrival decides, not the hash.
    const t2 = testChain();
    assert.deepEqual(statuses(await submitAll(t2, other.slice(0, 2))), ['connected', 'connected']);
    assert.deepEqual(statuses(await submitAll(t2, main)), ['side', 'side']);
    assert.equal(t2.chain.tip.hashHex, other[1]!.hashHex);

    assert.deepEqual(await t.submit(other[2]!), { status: 'reorg', hashHex: other[2]!.hashHex, depth: 2 });
  });

  test('fork choice is by cumulative work, not length', async () => {
    const t = testChain();
    const { chain } = t;
    // Fast blocks make the retarget at height 10 four times harder.
    const fast = forgeChain(chain, chain.tip, 10, { gapMs: 1_000 });
    assert.equal(fast[9]!.header.target, fast[8]!.header.target / 4n);
    const slow = forgeChain(chain, chain.tip, 12, { miner: rival });
    assert.deepEqual(statuses(await submitAll(t, slow)), Array(12).fill('connected'));
    assert.equal(chain.tip.height, 12);
    const rs = await submitAll(t, fast);
    assert.deepEqual(statuses(rs.slice(0, 9)), Array(9).fill('side'));
    // 9 blocks of work w plus one of 4w beats 12 blocks of w.
    assert.deepEqual(rs[9], { status: 'reorg', hashHex: fast[9]!.hashHex, depth: 12 });
    assert.equal(chain.tip.height, 10);
  });

  test('a reorg whose old blocks cannot be loaded changes nothing and can be retried', async () => {
    const t = testChain({}, { recentBlockCache: 1 });
    const { chain } = t;
    const genesis = chain.tip;
    const main = forgeBranch(chain, genesis, [{ entries: [entry(10)] }, {}]);
    const other = forgeChain(chain, genesis, 3, { miner: rival });
    assert.deepEqual(statuses(await submitAll(t, main)), ['connected', 'connected']);
    assert.deepEqual(statuses(await submitAll(t, other.slice(0, 2))), ['side', 'side']);
    chain.takeUpdate();
    const lost = t.stored.get(main[0]!.hashHex)!;
    t.stored.delete(main[0]!.hashHex);

    await assert.rejects(t.submit(other[2]!), /missing from the store/);
    assert.equal(chain.tip.hashHex, main[1]!.hashHex);
    assert.equal(chain.tree.get(other[2]!.hashHex), undefined, 'the block did not enter the tree');
    assert.equal(chain.takeUpdate().blocks.length, 0);

    t.stored.set(lost.hashHex, lost);
    assert.deepEqual(await t.submit(other[2]!), { status: 'reorg', hashHex: other[2]!.hashHex, depth: 2 });
    assert.equal(chain.mempool.size, 1, 'the entry of the reorged-out block came back');
  });

  test('re-admitted entries that evict pending ones report the evictions', async () => {
    const t = testChain({}, { mempoolMaxEntries: 2 });
    const { chain } = t;
    const genesis = chain.tip;
    const [x, y, p, q] = [entry(21), entry(22), entry(23), entry(24)] as const;
    const [a1] = forgeChain(chain, genesis, 1, { entries: [x, y] });
    assert.equal((await t.submit(a1!)).status, 'connected');
    assert.equal(chain.addEntry(p).status, 'added');
    assert.equal(chain.addEntry(q).status, 'added');
    chain.takeUpdate();
    const other = forgeChain(chain, genesis, 2, { miner: rival });
    assert.deepEqual(statuses(await submitAll(t, other)), ['side', 'reorg']);
    assert.deepEqual(chain.mempool.ids(), [x.idHex, y.idHex]);
    const u = chain.takeUpdate();
    assert.deepEqual(
      new Map(u.mempool),
      new Map<Hex, SealedEntry | null>([
        [p.idHex, null],
        [q.idHex, null],
        [x.idHex, x],
        [y.idHex, y],
      ]),
    );
  });

  test('a block including a pending entry removes it from the mempool', async () => {
    const t = testChain();
    const { chain } = t;
    const e = entry(30);
    assert.equal(chain.addEntry(e).status, 'added');
    assert.equal(chain.takeUpdate().mempool.get(e.idHex), e);
    await t.submit(forgeBlock(chain, chain.tip, { entries: [e] }));
    assert.equal(chain.mempool.has(e.idHex), false);
    assert.equal(chain.takeUpdate().mempool.get(e.idHex), null);
    const again = chain.addEntry(e);
    assert.equal(again.status, 'rejected');
    assert.equal(again.status === 'rejected' && again.reason, 'already-included');
  });
});

describe('orphans', () => {
  test('20 orphans delivered in reverse order connect once the missing parent arrives', async () => {
    const t = testChain();
    const { chain } = t;
    const [first, ...orphans] = forgeChain(chain, chain.tip, 21, { entries: [] });
    assert.equal(orphans.length, 20);
    for (const b of [...orphans].reverse()) {
      const r = await t.submit(b, 'peer-a');
      // The lowest block not yet known is always the parent of the one just received.
      assert.deepEqual(r, {
        status: 'orphan',
        hashHex: b.hashHex,
        missingParent: toHex(b.header.prevHash),
        from: 'peer-a',
      });
    }
    assert.equal(chain.orphans.size, 20);
    assert.equal(chain.tip.height, 0);
    chain.takeUpdate();

    assert.equal((await t.submit(first!)).status, 'connected');
    assert.equal(chain.tip.hashHex, orphans[19]!.hashHex);
    assert.equal(chain.tip.height, 21);
    assert.equal(chain.orphans.size, 0);
    const u = chain.takeUpdate();
    assert.equal(u.head?.hashHex, orphans[19]!.hashHex);
    assert.equal(u.blocks.length, 21);
    assert.deepEqual([...u.orphans.values()], Array(20).fill(null));
    assert.deepEqual(
      eventsOf(u.events, 'block-connected').map((e) => e.node.height),
      Array.from({ length: 21 }, (_, i) => i + 1),
    );
  });

  test('orphans delivered in forward order all name the first missing block', async () => {
    const t = testChain();
    const [first, ...orphans] = forgeChain(t.chain, t.chain.tip, 21);
    for (const b of orphans) {
      const r = await t.submit(b);
      assert.ok(r.status === 'orphan');
      assert.equal(r.missingParent, first!.hashHex);
    }
    assert.equal((await t.submit(first!)).status, 'connected');
    assert.equal(t.chain.tip.hashHex, orphans[19]!.hashHex);
  });

  test('any arrival order connects the whole chain', async () => {
    const probe = testChain();
    const blocks = forgeChain(probe.chain, probe.chain.tip, 21);
    const index = new Map(blocks.map((b, i) => [b.hashHex, i]));
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const t = testChain();
      const order = shuffle(blocks, seed);
      const delivered = new Set<number>();
      for (const b of order) {
        const i = index.get(b.hashHex)!;
        delivered.add(i);
        let below = i - 1;
        while (below >= 0 && delivered.has(below)) below--;
        const r = await t.submit(b);
        if (below < 0) {
          assert.ok(r.status === 'connected', `seed ${seed}: block ${i} connects`);
        } else {
          assert.ok(r.status === 'orphan', `seed ${seed}: block ${i} waits`);
          assert.equal(r.missingParent, blocks[below]!.hashHex, `seed ${seed}: block ${i} asks for ${below}`);
        }
      }
      assert.equal(t.chain.tip.hashHex, blocks[20]!.hashHex, `seed ${seed}`);
      assert.equal(t.chain.orphans.size, 0);
      assert.equal(t.chain.tree.size, 22);
    }
  });

  test('the pool holds 100 orphans: the oldest is evicted with an orphan-dropped event', async () => {
    // Orphans up to 102 blocks ahead: past the default window of 24, which has its own test.
    const t = testChain({}, { orphanMaxAhead: 200 });
    const { chain } = t;
    const [first, ...orphans] = forgeChain(chain, chain.tip, 102);
    const results = await submitAll(t, orphans.slice(0, 100));
    assert.ok(results.every((r) => r.status === 'orphan'));
    assert.equal(chain.orphans.size, 100);
    chain.takeUpdate();

    const r = await t.submit(orphans[100]!);
    assert.equal(r.status, 'orphan');
    assert.equal(chain.orphans.size, 100);
    assert.equal(chain.orphans.has(orphans[0]!.hashHex), false, 'the oldest went');
    assert.equal(
      r.status === 'orphan' && r.missingParent,
      orphans[0]!.hashHex,
      'now the evicted one is missing',
    );
    const u = chain.takeUpdate();
    const dropped = eventsOf(u.events, 'orphan-dropped');
    assert.deepEqual(
      dropped.map((e) => [e.block.hashHex, e.reason]),
      [[orphans[0]!.hashHex, 'orphan-evicted']],
    );
    assert.equal(u.orphans.get(orphans[0]!.hashHex), null);
    assert.equal(u.orphans.get(orphans[100]!.hashHex)?.block, orphans[100]);

    // The first block connects alone; re-sending the evicted one connects the other 100.
    assert.equal((await t.submit(first!)).status, 'connected');
    assert.equal(chain.tip.height, 1);
    assert.equal((await t.submit(orphans[0]!)).status, 'connected');
    assert.equal(chain.tip.height, 102);
    assert.equal(chain.orphans.size, 0);
  });

  test('orphanCapacity bounds the pool', async () => {
    const t = testChain({}, { orphanCapacity: 5 });
    const [, ...orphans] = forgeChain(t.chain, t.chain.tip, 9);
    await submitAll(t, orphans);
    assert.equal(t.chain.orphans.size, 5);
    assert.deepEqual(
      t.chain.orphans.all().map((o) => o.block.hashHex),
      orphans.slice(3).map((b) => b.hashHex),
    );
    assert.equal(eventsOf(t.chain.takeUpdate().events, 'orphan-dropped').length, 3);
  });

  test('orphans expire after orphanTtlMs', async () => {
    const t = testChain({}, { orphanTtlMs: 1_000 });
    const { chain } = t;
    const [, a] = forgeChain(chain, chain.tip, 2);
    const [, b] = forgeChain(chain, chain.tip, 2, { miner: rival });
    await t.submit(a!);
    t.clock.now += 500;
    await t.submit(b!);
    chain.takeUpdate();

    t.clock.now += 500;
    assert.deepEqual(chain.expireOrphans(), [], 'exactly at the TTL it is kept');
    t.clock.now += 1;
    const expired = chain.expireOrphans();
    assert.deepEqual(
      expired.map((o) => o.block.hashHex),
      [a!.hashHex],
    );
    assert.equal(chain.orphans.has(a!.hashHex), false);
    assert.equal(chain.orphans.has(b!.hashHex), true);
    const u = chain.takeUpdate();
    assert.equal(u.orphans.get(a!.hashHex), null);
    assert.deepEqual(
      eventsOf(u.events, 'orphan-dropped').map((e) => [e.block.hashHex, e.reason]),
      [[a!.hashHex, 'orphan-expired']],
    );
    t.clock.now += 500;
    assert.equal(chain.expireOrphans().length, 1);
    assert.equal(chain.orphans.size, 0);
  });

  test('orphans whose parent turns out invalid are rejected with invalid-parent', async () => {
    const t = testChain();
    const { chain } = t;
    const genesis = chain.tip;
    const bad = forgeBlock(chain, genesis, { header: { target: genesis.header.target >> 1n } });
    const [child, grandchild] = forgeChain(chain, scratchNode(bad, genesis), 2);
    assert.equal((await t.submit(grandchild!)).status, 'orphan');
    assert.equal((await t.submit(child!)).status, 'orphan');
    const r = await t.submit(bad);
    assert.ok(r.status === 'invalid');
    assert.equal(r.error.code, 'bad-difficulty');
    assert.equal(chain.orphans.size, 0);
    assert.equal(chain.invalidReason(child!.hashHex)?.code, 'invalid-parent');
    assert.equal(chain.invalidReason(grandchild!.hashHex)?.code, 'invalid-parent');
    const again = await t.submit(child!);
    assert.ok(again.status === 'invalid');
    assert.equal(again.error.code, 'invalid-parent');
    const u = chain.takeUpdate();
    assert.deepEqual(
      eventsOf(u.events, 'block-invalid').map((e) => [e.hashHex, e.error.code]),
      [
        [bad.hashHex, 'bad-difficulty'],
        [child!.hashHex, 'invalid-parent'],
        [grandchild!.hashHex, 'invalid-parent'],
      ],
      'the re-sent child is answered from memory, without a new event',
    );
    assert.equal(chain.tip.height, 0);
  });

  test('orphans of a parent that is only early (clock behind) keep waiting and connect later', async () => {
    const t = testChain();
    const { chain } = t;
    const genesis = chain.tip;
    const drift = chain.config.maxFutureDriftMs;
    const early = forgeBlock(chain, genesis, { header: { timestamp: TEST_NOW + drift + 1 } });
    const [child] = forgeChain(chain, scratchNode(early, genesis), 1);
    assert.equal((await t.submit(child!)).status, 'orphan');
    const r = await t.submit(early);
    assert.ok(r.status === 'invalid');
    assert.equal(r.error.code, 'timestamp-in-future');
    assert.equal(chain.orphans.has(child!.hashHex), true, 'the child still waits');
    assert.equal(chain.invalidReason(child!.hashHex), undefined);

    t.clock.now = child!.header.timestamp - drift;
    assert.equal((await t.submit(early)).status, 'connected');
    assert.equal(chain.tip.hashHex, child!.hashHex);
  });

  test('a tampered copy of the missing parent does not condemn the waiting orphans', async () => {
    const t = testChain();
    const { chain } = t;
    const [parent, child] = forgeChain(chain, chain.tip, 2);
    assert.equal((await t.submit(child!)).status, 'orphan');
    const sig = parent!.signature.slice();
    sig[0]! ^= 0x80;
    const tampered = { ...parent!, signature: sig };
    const r = await t.submit(tampered);
    assert.ok(r.status === 'invalid');
    assert.equal(r.error.code, 'bad-block-signature');
    assert.equal(chain.orphans.has(child!.hashHex), true);
    assert.equal((await t.submit(parent!)).status, 'connected');
    assert.equal(chain.tip.hashHex, child!.hashHex);
  });

  test('duplicates: known blocks, known orphans and the genesis', async () => {
    const t = testChain();
    const [a, , c] = forgeChain(t.chain, t.chain.tip, 3);
    assert.equal((await t.submit(a!)).status, 'connected');
    assert.deepEqual(await t.submit(a!), { status: 'duplicate', hashHex: a!.hashHex });
    assert.equal((await t.submit(c!)).status, 'orphan');
    assert.deepEqual(await t.submit(c!), { status: 'duplicate', hashHex: c!.hashHex });
    assert.equal((await t.submit(t.chain.genesis)).status, 'duplicate');
    assert.equal(t.chain.orphans.size, 1);
    assert.equal(t.chain.takeUpdate().blocks.length, 1);
  });
});

describe('locator and restore', () => {
  test('locator: ten consecutive hashes from the tip, then doubling steps, ending at genesis', async () => {
    const t = testChain();
    const { chain } = t;
    assert.deepEqual(chain.tree.locator(), [chain.genesis.hashHex]);
    const blocks = forgeChain(chain, chain.tip, 30);
    await submitAll(t, blocks.slice(0, 5));
    const heightOf = (h: Hex) => chain.tree.get(h)!.height;
    assert.deepEqual(chain.tree.locator().map(heightOf), [5, 4, 3, 2, 1, 0]);
    await submitAll(t, blocks.slice(5));
    const loc = chain.tree.locator();
    assert.deepEqual(loc.map(heightOf), [30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 19, 15, 7, 0]);
    assert.equal(loc[0], chain.tip.hashHex);
    assert.equal(loc.at(-1), chain.genesis.hashHex);
    for (const h of loc) assert.equal(chain.tree.get(h)!.onMain, true);
  });

  test('the locator follows the main chain after a reorg', async () => {
    const t = testChain();
    const { chain } = t;
    const main = forgeChain(chain, chain.tip, 3);
    const other = forgeChain(chain, chain.tip, 4, { miner: rival });
    await submitAll(t, main);
    await submitAll(t, other);
    assert.deepEqual(
      chain.tree.locator(),
      [...other]
        .reverse()
        .map((b) => b.hashHex)
        .concat(chain.genesis.hashHex),
    );
  });

  test('restore rebuilds the same tree, tip, orphans and mempool from persisted state', async () => {
    const t = testChain();
    const { chain } = t;
    const genesis = chain.tip;
    const [x, y, pending] = [entry(41), entry(42), entry(43)] as const;
    const rebuilt = forgeBranch(
      chain,
      genesis,
      Array.from({ length: 12 }, (_, i) => (i === 3 ? { entries: [x] } : {})),
    );
    const side = forgeBranch(chain, genesis, [{ miner: rival, entries: [y] }]);
    await submitAll(t, rebuilt);
    await submitAll(t, side);
    const [, orphanChild] = forgeChain(chain, chain.tip, 2);
    assert.equal((await t.submit(orphanChild!)).status, 'orphan');
    assert.equal(chain.addEntry(pending).status, 'added');
    assert.equal(chain.tip.height, 12);

    const persisted: PersistedChainState = {
      blocks: [chain.genesis, ...rebuilt, ...side].map((b) => ({
        hashHex: b.hashHex,
        hash: b.hash,
        header: b.header,
        entryIds: b.entries.map((e) => e.idHex),
      })),
      headHashHex: chain.tip.hashHex,
      orphans: chain.orphans.all(),
      mempool: chain.mempool.all(),
    };
    const reopened = new Chain({
      config: chain.config,
      loadBlock: async (h) => t.stored.get(h),
      now: () => TEST_NOW,
    });
    reopened.restore(persisted);
    assert.equal(reopened.tip.hashHex, chain.tip.hashHex);
    assert.equal(reopened.tip.chainWork, chain.tip.chainWork);
    assert.equal(reopened.tree.size, chain.tree.size);
    for (let h = 0; h <= 12; h++)
      assert.equal(reopened.tree.mainAt(h)?.hashHex, chain.tree.mainAt(h)?.hashHex);
    assert.equal(reopened.tree.get(side[0]!.hashHex)?.onMain, false);
    assert.deepEqual(reopened.tree.locator(), chain.tree.locator());
    assert.deepEqual(reopened.mempool.ids(), [pending.idHex]);
    assert.equal(reopened.orphans.has(orphanChild!.hashHex), true);
    assert.equal(reopened.mainBlockOf(x.idHex) !== undefined, true);
    assert.equal(reopened.mainBlockOf(y.idHex) !== undefined, false);

    // It carries on: the orphan's parent connects both, with the restored block index.
    const [orphanParent] = forgeChain(reopened, reopened.tip, 1);
    assert.equal((await reopened.processBlock(orphanParent!)).status, 'connected');
    assert.equal(reopened.tip.hashHex, orphanChild!.hashHex);
    const dup = forgeBlock(reopened, reopened.tip, { entries: [x] });
    const r = await reopened.processBlock(dup);
    assert.ok(r.status === 'invalid');
    assert.equal(r.error.code, 'entry-already-included');
  });

  test('restore with the head on a branch of equal work selects that branch; an unknown head throws', async () => {
    const t = testChain();
    const { chain } = t;
    const main = forgeChain(chain, chain.tip, 2);
    const other = forgeChain(chain, chain.tip, 2, { miner: rival });
    await submitAll(t, [...main, ...other]);
    assert.equal(chain.tip.hashHex, main[1]!.hashHex);
    const blocks = [...main, ...other].map((b) => ({
      hashHex: b.hashHex,
      hash: b.hash,
      header: b.header,
      entryIds: [] as Hex[],
    }));
    const fresh = () =>
      new Chain({ config: chain.config, loadBlock: async (h) => t.stored.get(h), now: () => TEST_NOW });
    const reopened = fresh();
    reopened.restore({ blocks, headHashHex: other[1]!.hashHex, orphans: [], mempool: [] });
    assert.equal(reopened.tip.hashHex, other[1]!.hashHex);
    assert.equal(reopened.tree.mainAt(1)?.hashHex, other[0]!.hashHex);
    assert.throws(
      () => fresh().restore({ blocks, headHashHex: '00'.repeat(32), orphans: [], mempool: [] }),
      /not among the stored blocks/,
    );
  });
});

test('the block tree keeps its own small copy of a hash and header, not views into the decoded block', async () => {
  const { chain } = testChain();
  const [forged] = forgeChain(chain, chain.tip, 1, {
    entries: [knowledgeEntry(testKey(4), TEST_NOW - 1000)],
  });
  const block = decodeBlock(forged!.encoded);
  assert.equal((await chain.processBlock(block)).status, 'connected');
  const node = chain.tree.get(block.hashHex)!;
  assert.deepEqual(node.hash, block.hash);
  assert.deepEqual(node.header, block.header);
  for (const bytes of [
    node.hash,
    node.header.prevHash,
    node.header.chainId,
    node.header.merkleRoot,
    node.header.miner,
  ]) {
    assert.notEqual(bytes.buffer, block.encoded.buffer, 'not a view into the block encoding');
    assert.equal(bytes.buffer.byteLength, 160, 'one 160-byte buffer per node');
  }
});
