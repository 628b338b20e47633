/**
 * What the chain agrees to hold: orphans only within the height window and the difficulty
 * envelope the retarget rule allows from our tip, within a per-peer quota; side-chain blocks
 * that arrive unasked only within the work margin of the tip (counting the orphans waiting on
 * them), so a cheap fork from genesis is neither stored nor judged worth relaying, while
 * requested blocks and a side chain overtaking the tip block by block still connect.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import {
  countingChain,
  forgeBlock,
  forgeBranch,
  forgeChain,
  knowledgeEntry,
  TEST_NOW,
  type TestChain,
  testChain,
  testKey,
  testNetwork,
} from '../testing/forge.ts';
import { toHex } from './bytes.ts';
import type { ChainEvent, ProcessResult } from './chain.ts';
import { easiestTargetReachable } from './difficulty.ts';
import { MAX_TARGET } from './pow.ts';
import type { SealedBlock } from './types.ts';

const rival = testKey(2);
const eventsOf = <T extends ChainEvent['type']>(events: readonly ChainEvent[], type: T) =>
  events.filter((e): e is Extract<ChainEvent, { type: T }> => e.type === type);

/** Submits as a gossiped (unrequested) block from `from`. */
function gossip(t: TestChain, b: SealedBlock, from = 'peer-x'): Promise<ProcessResult> {
  t.stored.set(b.hashHex, b);
  return t.chain.processBlock(b, from, { requested: false });
}

function ignored(r: ProcessResult, reason: string, junk?: boolean) {
  assert.equal(r.status, 'ignored', r.status === 'invalid' ? r.error.message : r.status);
  assert.ok(r.status === 'ignored');
  assert.equal(r.reason, reason);
  if (junk !== undefined) assert.equal(r.junk, junk, 'junk');
}

/** Genesis 256 times harder than the easiest target: room for an envelope below maxTarget. */
const envelopeChain = (options: Parameters<typeof countingChain>[1] = {}) =>
  countingChain({ initialTarget: MAX_TARGET >> 10n }, options);

/** An orphan (random unknown parent) at `height` with `target`, mined and signed. */
const orphanAt = (t: TestChain, height: number, target: bigint, opts: { badSignature?: boolean } = {}) => {
  const b = forgeBlock(t.chain, t.chain.tip, { header: { prevHash: randomBytes(32), height, target } });
  if (!opts.badSignature) return b;
  const signature = b.signature.slice();
  signature[3]! ^= 1;
  return { ...b, signature };
};

describe('easiestTargetReachable', () => {
  const p = testNetwork({ maxTarget: MAX_TARGET >> 2n });
  test('one clamp factor per retarget height crossed, never past maxTarget', () => {
    const t = MAX_TARGET >> 20n;
    assert.equal(easiestTargetReachable(t, 5, 9, p), t, 'no retarget height in (5, 9]');
    assert.equal(easiestTargetReachable(t, 5, 3, p), t, 'below: the target itself');
    assert.equal(easiestTargetReachable(t, 5, 10, p), t * 4n);
    assert.equal(easiestTargetReachable(t, 9, 30, p), t * 64n, 'heights 10, 20, 30');
    assert.equal(easiestTargetReachable(t, 10, 19, p), t, 'from a retarget height itself');
    assert.equal(easiestTargetReachable(t, 0, 1000, p), p.maxTarget);
  });
});

describe('orphans: height window, difficulty envelope, per-peer quota', () => {
  test('an orphan easier than the envelope is ignored before its body is checked; one inside it waits', async () => {
    const { t, calls } = envelopeChain();
    const tipTarget = t.chain.tip.header.target;
    // At heights 1..9 (no retarget crossed) the envelope is one clamp factor easier than the tip.
    const inside = orphanAt(t, 5, tipTarget * 4n);
    assert.equal((await gossip(t, inside)).status, 'orphan');
    const before = calls();
    assert.ok(before >= 1, 'the admitted orphan had its signature checked');
    const outside = orphanAt(t, 5, tipTarget * 8n, { badSignature: true });
    ignored(await gossip(t, outside), 'orphan-outside-envelope', false);
    assert.equal(calls(), before, 'no signature checked for the ignored one');
    assert.equal(t.chain.orphans.has(outside.hashHex), false);
    assert.equal(t.chain.takeUpdate().orphans.has(outside.hashHex), false, 'nothing to store');
    // Crossing the retarget at height 10 allows one factor more.
    assert.equal((await gossip(t, orphanAt(t, 10, tipTarget * 16n))).status, 'orphan');
    ignored(await gossip(t, orphanAt(t, 10, tipTarget * 32n)), 'orphan-outside-envelope');
  });

  test('an orphan further above the tip than ancestor fetching reaches is ignored (range sync fetches those)', async () => {
    const { t, calls } = envelopeChain({ orphanMaxAhead: 24 });
    const target = t.chain.tip.header.target;
    assert.equal((await gossip(t, orphanAt(t, 24, target))).status, 'orphan');
    const before = calls();
    ignored(await gossip(t, orphanAt(t, 25, target, { badSignature: true })), 'orphan-too-far-ahead', false);
    assert.equal(calls(), before);
    assert.equal(t.chain.orphans.size, 1);
  });

  test('a peer at its quota gets no more orphans held; others still do', async () => {
    // Attack review #11: past its quota each orphan only bought the sender our work.
    const t = testChain({}, { orphanCapacity: 8, orphanPeerQuota: 2 });
    const target = t.chain.tip.header.target;
    const fromA = [1, 2, 3, 4, 5].map((h) => orphanAt(t, h, target));
    for (const b of fromA.slice(0, 2)) assert.equal((await gossip(t, b, 'a')).status, 'orphan');
    for (const b of fromA.slice(2)) ignored(await gossip(t, b, 'a'), 'orphan-peer-quota', false);
    assert.deepEqual(
      t.chain.orphans.from('a').map((o) => o.block.hashHex),
      fromA.slice(0, 2).map((b) => b.hashHex),
      'its first two, its chain unevicted',
    );
    for (const peer of ['b', 'c', 'd']) {
      for (const h of [1, 2]) assert.equal((await gossip(t, orphanAt(t, h, target), peer)).status, 'orphan');
    }
    assert.equal(t.chain.orphans.size, 8, 'full');
    // A new sender in a full pool evicts the oldest orphan of a sender holding most.
    await gossip(t, orphanAt(t, 3, target), 'e');
    assert.equal(t.chain.orphans.size, 8);
    assert.deepEqual(
      ['a', 'b', 'c', 'd', 'e'].map((p) => t.chain.orphans.countFrom(p)),
      [1, 2, 2, 2, 1],
    );
  });

  test("an orphan waits header-first: its entries' signatures are checked when its parent comes", async () => {
    // Attack review #11: 1,000-entry orphans that never connect cost 263 ms of main thread each.
    const { t, calls } = countingChain();
    const author = testKey(31);
    const entries = Array.from({ length: 10 }, (_, i) => knowledgeEntry(author, TEST_NOW - 60_000, `o${i}`));
    const [parent, child] = forgeBranch(t.chain, t.chain.tip, [{}, { entries }]) as [
      SealedBlock,
      SealedBlock,
    ];
    const before = calls();
    assert.equal((await gossip(t, child)).status, 'orphan');
    assert.equal(calls() - before, 1, "only the miner's signature");
    assert.equal((await gossip(t, parent)).status, 'connected');
    assert.equal(t.chain.tip.hashHex, child.hashHex);
    assert.ok(calls() - before >= 12, `${calls() - before} signatures checked`);
  });

  test('a held orphan whose entry signature is bad is rejected when its parent comes', async () => {
    const t = testChain();
    const good = knowledgeEntry(testKey(32), TEST_NOW - 60_000, 'x');
    const signature = good.signature.slice();
    signature[5]! ^= 1;
    const [parent, child] = forgeBranch(t.chain, t.chain.tip, [
      {},
      { entries: [{ ...good, signature }] },
    ]) as [SealedBlock, SealedBlock];
    assert.equal((await gossip(t, child)).status, 'orphan');
    assert.equal((await gossip(t, parent)).status, 'connected');
    assert.equal(t.chain.tip.hashHex, parent.hashHex);
    assert.equal(t.chain.orphans.has(child.hashHex), false);
    const invalid = eventsOf(t.chain.takeUpdate().events, 'block-invalid');
    assert.deepEqual(
      invalid.map((e) => e.hashHex),
      [child.hashHex],
    );
  });

  test('roster mode: an orphan with a non-member author is ignored before any signature check', async () => {
    const member = testKey(33);
    const { t, calls } = countingChain({
      membership: 'roster',
      admins: [toHex(testKey(34).publicKey)],
      members: [
        { publicKey: toHex(member.publicKey), name: 'm', role: 'submind', capabilities: ['mine', 'submit'] },
      ],
    });
    const stranger = testKey(35);
    const mk = (by: typeof member) =>
      forgeBlock(t.chain, t.chain.tip, {
        miner: member,
        entries: [knowledgeEntry(by, TEST_NOW - 60_000, 'spam')],
        header: { prevHash: randomBytes(32), height: 3 },
      });
    const before = calls();
    ignored(await gossip(t, mk(stranger)), 'orphan-not-member', false);
    assert.equal(calls(), before, 'no signature checked');
    assert.equal((await gossip(t, mk(member))).status, 'orphan');
  });

  test('a flood of orphans from one peer leaves the others waiting in the pool untouched', async () => {
    const t = testChain({}, { orphanCapacity: 100 });
    const target = t.chain.tip.header.target;
    const honest = forgeChain(t.chain, t.chain.tip, 4).slice(1);
    for (const b of honest) assert.equal((await gossip(t, b, 'honest')).status, 'orphan');
    for (let i = 0; i < 300; i++) await gossip(t, orphanAt(t, 1 + (i % 20), target), 'flooder');
    assert.equal(t.chain.orphans.countFrom('flooder'), 25, 'a quarter of the pool by default');
    for (const b of honest) assert.ok(t.chain.orphans.has(b.hashHex));
  });

  test('dropOrphansFrom removes one peer’s orphans with a reason the store and reports see', async () => {
    const t = testChain();
    const target = t.chain.tip.header.target;
    const mine = [orphanAt(t, 3, target), orphanAt(t, 4, target)];
    for (const b of mine) await gossip(t, b, 'liar');
    await gossip(t, orphanAt(t, 3, target), 'other');
    t.chain.takeUpdate();
    assert.equal(t.chain.dropOrphansFrom('liar').length, 2);
    assert.equal(t.chain.orphans.size, 1);
    const u = t.chain.takeUpdate();
    for (const b of mine) assert.equal(u.orphans.get(b.hashHex), null);
    assert.deepEqual(
      eventsOf(u.events, 'orphan-dropped').map((e) => e.reason),
      ['orphan-unresolved', 'orphan-unresolved'],
    );
  });
});

describe('side chains: the work margin for unrequested blocks', () => {
  /** A main chain of `n` blocks on a test chain with a margin of `margin` blocks. */
  async function mainChain(n: number, margin = 2) {
    const t = testChain({}, { sideChainMarginBlocks: margin });
    const main = forgeChain(t.chain, t.chain.tip, n);
    for (const b of main) assert.equal((await t.submit(b)).status, 'connected');
    t.chain.takeUpdate();
    return { t, main };
  }

  test('a fork from genesis far lighter than the tip is ignored as junk: not stored, no signature checked', async () => {
    const { t } = await mainChain(10);
    const fork = forgeChain(t.chain, t.chain.tree.genesis, 3, { miner: rival });
    const size = t.chain.tree.size;
    ignored(await gossip(t, fork[0]!), 'low-work-side-chain', true);
    assert.equal(t.chain.tree.size, size);
    const u = t.chain.takeUpdate();
    assert.equal(u.blocks.length, 0, 'nothing for the store');
    assert.equal(u.events.length, 0);
    // Its children have no stored parent: orphans, ignored by the envelope or waiting at most.
    const child = await gossip(t, fork[1]!);
    assert.ok(child.status === 'orphan' || child.status === 'ignored');
  });

  test('an easy block stamped a year ahead is refused for its difficulty, for good, not as too early', async () => {
    const { t } = await mainChain(10);
    const yearAhead = t.clock.now + 365 * 86_400_000;
    const easy = forgeBlock(t.chain, t.chain.tip, {
      header: { target: t.chain.tip.header.target - 1n, timestamp: yearAhead },
    });
    const r = await gossip(t, easy);
    assert.equal(r.status, 'invalid');
    assert.ok(r.status === 'invalid');
    assert.equal(r.error.code, 'bad-difficulty', r.error.message);
    assert.equal(r.error.isTransient, false, 'final: its sender is blamed and it is never validated again');
  });

  test('the same fork block, requested (range sync of a heavier chain), is stored as a side block', async () => {
    const { t } = await mainChain(10);
    const [f1] = forgeChain(t.chain, t.chain.tree.genesis, 1, { miner: rival });
    assert.equal((await t.submit(f1!)).status, 'side');
    assert.equal(t.chain.takeUpdate().blocks.length, 1);
  });

  test('on a young chain, lighter than the margin itself, a fork from genesis is still junk', async () => {
    const { t } = await mainChain(4, 100);
    const [f1] = forgeChain(t.chain, t.chain.tree.genesis, 1, { miner: rival });
    ignored(await gossip(t, f1!), 'low-work-side-chain', true);
    // Half the tip's work or more, and within the margin: kept.
    const [f2] = forgeChain(t.chain, t.chain.tree.get(t.chain.tip.parent!.parent!.hashHex)!, 1, {
      miner: rival,
    });
    assert.equal((await gossip(t, f2!)).status, 'side');
  });

  test('within the margin a side block is kept; a lighter one is ignored but not called junk', async () => {
    const { t, main } = await mainChain(10, 2);
    const at = (h: number) => t.chain.tree.get(main[h - 1]!.hashHex)!;
    // Forks from height 7: its first block leaves the side chain 2 blocks behind: kept.
    const [k] = forgeChain(t.chain, at(7), 1, { miner: rival });
    const kept = await gossip(t, k!);
    assert.equal(kept.status, 'side');
    assert.ok(kept.status === 'side' && kept.relay === undefined, 'on its own work: relayed');
    // From height 6: 3 blocks behind.
    const [l] = forgeChain(t.chain, at(6), 1, { miner: rival });
    ignored(await gossip(t, l!), 'low-work-side-chain', false);
  });

  test('a side chain overtaking the tip block by block over gossip reorgs', async () => {
    const { t, main } = await mainChain(10, 2);
    // From height 8: one block behind, level, then ahead.
    const fork = forgeChain(t.chain, t.chain.tree.get(main[7]!.hashHex)!, 3, { miner: rival });
    const statuses = [];
    for (const b of fork) statuses.push((await gossip(t, b)).status);
    assert.deepEqual(statuses, ['side', 'side', 'reorg']);
    assert.equal(t.chain.tip.hashHex, fork[2]!.hashHex);
  });

  test('a heavier side chain arriving top-down (orphans first, as ancestor fetches bring it) connects', async () => {
    const { t, main } = await mainChain(10, 2);
    const forkPoint = t.chain.tree.get(main[4]!.hashHex)!;
    const fork = forgeChain(t.chain, forkPoint, 8, { miner: rival });
    for (const b of [...fork].reverse().slice(0, 7)) assert.equal((await gossip(t, b)).status, 'orphan');
    // Alone its first block would be 4 blocks behind; with the 7 waiting on it, 3 ahead.
    // It is kept (a side block itself), and the orphans waiting on it connect into a reorg.
    // Not relayed (attack review #11): a peer without our orphans would see it 4 blocks behind.
    const first = await gossip(t, fork[0]!);
    assert.equal(first.status, 'side');
    assert.ok(first.status === 'side' && first.relay === false, 'relayed');
    assert.equal(t.chain.tip.hashHex, fork[7]!.hashHex);
    assert.equal(eventsOf(t.chain.takeUpdate().events, 'reorg').length, 1);
    assert.equal(t.chain.orphans.size, 0);
  });

  test('a lighter side chain arriving top-down is dropped whole when its base arrives', async () => {
    const { t, main } = await mainChain(10, 2);
    const forkPoint = t.chain.tree.get(main[2]!.hashHex)!;
    const fork = forgeChain(t.chain, forkPoint, 4, { miner: rival });
    for (const b of [...fork].reverse().slice(0, 3)) assert.equal((await gossip(t, b)).status, 'orphan');
    t.chain.takeUpdate();
    ignored(await gossip(t, fork[0]!), 'low-work-side-chain', false);
    assert.equal(t.chain.orphans.size, 0, 'its waiting descendants can never connect');
    const u = t.chain.takeUpdate();
    assert.equal(u.blocks.length, 0);
    assert.deepEqual(
      eventsOf(u.events, 'orphan-dropped').map((e) => e.reason),
      ['orphan-low-work', 'orphan-low-work', 'orphan-low-work'],
    );
  });

  test("margin 0 is Bitcoin's rule: only a side block at least as heavy as the tip is kept", async () => {
    const { t, main } = await mainChain(4, 0);
    const at = (h: number) => t.chain.tree.get(main[h - 1]!.hashHex)!;
    const [same] = forgeChain(t.chain, at(3), 1, { miner: rival });
    assert.equal((await gossip(t, same!)).status, 'side');
    const [lower] = forgeChain(t.chain, at(2), 1, { miner: rival });
    ignored(await gossip(t, lower!), 'low-work-side-chain');
  });
});
