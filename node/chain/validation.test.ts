/**
 * Every block and entry validation rule, each broken on its own: the block is otherwise valid
 * (mined and signed after the override) and must be rejected with that rule's specific code.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  countingChain,
  forgeBlock,
  forgeChain,
  knowledgeEntry,
  scratchNode,
  TEST_NOW,
  type TestChain,
  testChain,
  testKey,
  testNetwork,
  unmineHeader,
} from '../testing/forge.ts';
import { createEntry, merkleRootOf, signBlock } from './authoring.ts';
import { sealBlock } from './block-codec.ts';
import { toHex } from './bytes.ts';
import type { ProcessResult } from './chain.ts';
import { entryIdOf, sealEntry } from './entry-codec.ts';
import { chainIdOf } from './network-config.ts';
import { MAX_TARGET, meetsTarget } from './pow.ts';
import { sign } from './signature.ts';
import { FORMAT_VERSION, type SealedBlock, type SealedEntry } from './types.ts';
import { type BlockErrorCode, BlockValidationError, validateBlockContext } from './validation.ts';

const GENESIS_TS = testNetwork().genesisTimestamp;
const DRIFT = testNetwork().maxFutureDriftMs;
const author = testKey(1);
const entryAt = (offsetMs: number, content?: string) =>
  knowledgeEntry(author, GENESIS_TS + offsetMs, content);

async function expectInvalid(t: TestChain, block: SealedBlock, code: BlockErrorCode) {
  const r = await t.submit(block);
  assert.equal(r.status, 'invalid', `expected ${code}, got ${r.status}`);
  assert.ok(r.status === 'invalid');
  assert.equal(r.error.code, code, r.error.message);
  assert.ok(r.error instanceof BlockValidationError);
  assert.equal(r.hashHex, block.hashHex);
  return r;
}

async function expectStatus(t: TestChain, block: SealedBlock, status: ProcessResult['status']) {
  const r = await t.submit(block);
  assert.equal(r.status, status, r.status === 'invalid' ? r.error.message : undefined);
  return r;
}

/** Connects `n` valid blocks on the tip and returns the new tip. */
async function extend(t: TestChain, n: number, opts: Parameters<typeof forgeChain>[3] = {}) {
  for (const b of forgeChain(t.chain, t.chain.tip, n, opts)) await expectStatus(t, b, 'connected');
  return t.chain.tip;
}

function flipBit(bytes: Uint8Array, index = 0): Uint8Array {
  const copy = bytes.slice();
  copy[index]! ^= 1;
  return copy;
}

/** The same block with a corrupted miner signature (the hash does not cover the signature). */
const withBadSignature = (b: SealedBlock) =>
  sealBlock({ header: b.header, signature: flipBit(b.signature, 10), entries: b.entries });

/** The same entry with a corrupted signature: same id, so the block's Merkle root still matches. */
const withBadEntrySignature = (e: SealedEntry) => sealEntry({ ...e, signature: flipBit(e.signature, 3) });

const configEntry = (key = testKey(9), ts = GENESIS_TS + 1) =>
  createEntry({ kind: 'config', changes: [['maxPeers', '12']] }, key, ts);

describe('intrinsic rules', () => {
  test('unsupported-version: a header version other than the format version', async () => {
    const t = testChain();
    const bad = forgeBlock(t.chain, t.chain.tip, { header: { version: FORMAT_VERSION + 1 } });
    assert.equal(bad.header.version, 2);
    await expectInvalid(t, bad, 'unsupported-version');
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip), 'connected');
  });

  test("wrong-chain-id: a block of another network's chain", async () => {
    const t = testChain();
    const other = chainIdOf(testNetwork({ name: 'another-network' }));
    assert.notEqual(toHex(other), toHex(t.chain.chainId));
    const bad = forgeBlock(t.chain, t.chain.tip, { header: { chainId: other } });
    await expectInvalid(t, bad, 'wrong-chain-id');
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip), 'connected');
  });

  test('block-too-large: one byte over maxBlockBytes is rejected, exactly at the limit accepted', async () => {
    const entries = Array.from({ length: 5 }, (_, i) => entryAt(i + 1, `sized entry ${i}`));
    const probe = testChain({ maxBlockBytes: 100_000 });
    const size = forgeBlock(probe.chain, probe.chain.tip, { entries }).encoded.length;
    assert.ok(size > 500, 'the block carries its entries');

    const tight = testChain({ maxBlockBytes: size - 1 });
    const over = forgeBlock(tight.chain, tight.chain.tip, { entries });
    assert.equal(over.encoded.length, size);
    await expectInvalid(tight, over, 'block-too-large');

    const exact = testChain({ maxBlockBytes: size });
    const fits = forgeBlock(exact.chain, exact.chain.tip, { entries });
    assert.equal(fits.encoded.length, size);
    await expectStatus(exact, fits, 'connected');
  });

  test('too-many-entries: more entries than maxEntriesPerBlock', async () => {
    const t = testChain({ maxEntriesPerBlock: 2 });
    const [a, b, c] = [entryAt(1), entryAt(2), entryAt(3)] as const;
    await expectInvalid(t, forgeBlock(t.chain, t.chain.tip, { entries: [a, b, c] }), 'too-many-entries');
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip, { entries: [a, b] }), 'connected');
  });

  test('bad-merkle-root: a root that does not commit to the entries in their order', async () => {
    const t = testChain();
    const [a, b] = [entryAt(1), entryAt(2)] as const;
    const reordered = forgeBlock(t.chain, t.chain.tip, {
      entries: [a, b],
      header: { merkleRoot: merkleRootOf([b, a]) },
    });
    await expectInvalid(t, reordered, 'bad-merkle-root');
    const subset = forgeBlock(t.chain, t.chain.tip, {
      entries: [a, b],
      header: { merkleRoot: merkleRootOf([a]) },
    });
    await expectInvalid(t, subset, 'bad-merkle-root');
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip, { entries: [a, b] }), 'connected');
  });

  test('duplicate-entry: the same entry twice, Merkle root computed over the duplicated list', async () => {
    const t = testChain();
    const e = entryAt(1);
    const bad = forgeBlock(t.chain, t.chain.tip, { entries: [e, entryAt(2), e] });
    assert.deepEqual(bad.header.merkleRoot, merkleRootOf(bad.entries), 'the root matches the list');
    await expectInvalid(t, bad, 'duplicate-entry');
  });

  test('insufficient-work: a hash above the target', async () => {
    const t = testChain();
    const template = forgeBlock(t.chain, t.chain.tip, { mine: false });
    const header = unmineHeader(template.header);
    const bad = signBlock(header, [], testKey(0));
    assert.equal(meetsTarget(bad.hash, header.target), false);
    await expectInvalid(t, bad, 'insufficient-work');
  });

  test('bad-block-signature: a flipped signature bit, and a signature by a key other than the miner', async () => {
    const t = testChain();
    const genuine = forgeBlock(t.chain, t.chain.tip, { entries: [entryAt(1)] });
    const flipped = withBadSignature(genuine);
    assert.equal(flipped.hashHex, genuine.hashHex, 'the signature is not part of the hash');
    await expectInvalid(t, flipped, 'bad-block-signature');

    const template = forgeBlock(t.chain, t.chain.tip);
    const foreign = signBlock(template.header, [], testKey(7));
    await expectInvalid(t, foreign, 'bad-block-signature');

    // A tampered copy must not poison the hash: the genuine block is still accepted.
    await expectStatus(t, genuine, 'connected');
  });

  test('bad-entry-signature: one entry with a corrupted signature', async () => {
    const t = testChain();
    const [a, b] = [entryAt(1), entryAt(2)] as const;
    const genuine = forgeBlock(t.chain, t.chain.tip, { entries: [a, b] });
    const tampered = sealBlock({
      header: genuine.header,
      signature: genuine.signature,
      entries: [a, withBadEntrySignature(b)],
    });
    assert.equal(tampered.hashHex, genuine.hashHex);
    await expectInvalid(t, tampered, 'bad-entry-signature');
    await expectStatus(t, genuine, 'connected');
  });

  test('unsupported-entry-version: an entry of an unknown format version', async () => {
    const t = testChain();
    const unsigned = {
      version: FORMAT_VERSION + 1,
      author: author.publicKey,
      timestamp: GENESIS_TS + 1,
      payload: { kind: 'knowledge', content: 'from the future', metadata: [] } as const,
    };
    const e = sealEntry({ ...unsigned, signature: sign(entryIdOf(unsigned), author) });
    await expectInvalid(t, forgeBlock(t.chain, t.chain.tip, { entries: [e] }), 'unsupported-entry-version');
  });

  test('entry-timestamp-in-future: transient, the same block is accepted once the clock catches up', async () => {
    const t = testChain();
    const atLimit = knowledgeEntry(author, TEST_NOW + DRIFT);
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip, { entries: [atLimit] }), 'connected');

    const ahead = knowledgeEntry(author, TEST_NOW + DRIFT + 1);
    const block = forgeBlock(t.chain, t.chain.tip, { entries: [ahead] });
    await expectInvalid(t, block, 'entry-timestamp-in-future');
    assert.equal(t.chain.invalidReason(block.hashHex), undefined, 'not remembered as invalid');
    t.clock.now += 1;
    await expectStatus(t, block, 'connected');
  });

  test('unauthorized-config: config entries need an admin signature', async () => {
    const admin = testKey(9);
    const t = testChain({ admins: [toHex(admin.publicKey)] });
    const byStranger = configEntry(testKey(3));
    await expectInvalid(
      t,
      forgeBlock(t.chain, t.chain.tip, { entries: [byStranger] }),
      'unauthorized-config',
    );
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip, { entries: [configEntry(admin)] }), 'connected');

    const noAdmins = testChain();
    await expectInvalid(
      noAdmins,
      forgeBlock(noAdmins.chain, noAdmins.chain.tip, { entries: [configEntry(admin)] }),
      'unauthorized-config',
    );
  });

  test('unauthorized-config: admin keys are compared case-insensitively, like the chain id treats them', async () => {
    const admin = testKey(9);
    const upper = toHex(admin.publicKey).toUpperCase();
    assert.deepEqual(
      chainIdOf(testNetwork({ admins: [upper] })),
      chainIdOf(testNetwork({ admins: [upper.toLowerCase()] })),
    );
    const t = testChain({ admins: [upper] });
    await expectStatus(t, forgeBlock(t.chain, t.chain.tip, { entries: [configEntry(admin)] }), 'connected');
  });
});

describe('contextual rules', () => {
  test('bad-height: a height that is not parent + 1', async () => {
    const t = testChain();
    await extend(t, 2);
    const tip = t.chain.tip;
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { height: tip.height + 2 } }), 'bad-height');
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { height: tip.height } }), 'bad-height');
  });

  test('bad-height: a non-genesis block at height 0', async () => {
    const t = testChain();
    const bad = forgeBlock(t.chain, t.chain.tip, { header: { height: 0 } });
    assert.notEqual(bad.hashHex, t.chain.genesis.hashHex);
    await expectInvalid(t, bad, 'bad-height');
    assert.equal((await t.submit(t.chain.genesis)).status, 'duplicate', 'the real genesis is known');
  });

  test('bad-prev-hash: the header does not link to the parent context', () => {
    const t = testChain();
    const ctx = t.chain.tree.parentContext(t.chain.tip);
    const block = forgeBlock(t.chain, t.chain.tip);
    assert.doesNotThrow(() => validateBlockContext(block, ctx, t.chain.config, TEST_NOW));
    const wrong = { ...ctx, hash: flipBit(ctx.hash) };
    assert.throws(
      () => validateBlockContext(block, wrong, t.chain.config, TEST_NOW),
      (err) => err instanceof BlockValidationError && err.code === 'bad-prev-hash',
    );
  });

  test('timestamp-too-early: at or below the median of the last 11 blocks', async () => {
    const t = testChain();
    const tip = await extend(t, 15);
    // Last 11 blocks are heights 5..15: their median is the timestamp at height 10.
    const median = t.chain.tree.mainAt(10)!.header.timestamp;
    assert.ok(median < t.chain.tree.mainAt(11)!.header.timestamp);
    await expectInvalid(
      t,
      forgeBlock(t.chain, tip, { header: { timestamp: median } }),
      'timestamp-too-early',
    );
    await expectInvalid(
      t,
      forgeBlock(t.chain, tip, { header: { timestamp: median - 1 } }),
      'timestamp-too-early',
    );
    // One millisecond above the median is fine, even though it is earlier than the parent.
    const ok = forgeBlock(t.chain, tip, { header: { timestamp: median + 1 } });
    assert.ok(ok.header.timestamp < tip.header.timestamp);
    await expectStatus(t, ok, 'connected');
  });

  test('timestamp-in-future: beyond the allowed drift; transient, accepted once the clock advances', async () => {
    const t = testChain();
    const tip = t.chain.tip;
    const ahead = forgeBlock(t.chain, tip, { header: { timestamp: TEST_NOW + DRIFT + 1 } });
    await expectInvalid(t, ahead, 'timestamp-in-future');
    assert.equal(t.chain.invalidReason(ahead.hashHex), undefined, 'not remembered as invalid');
    await expectInvalid(t, ahead, 'timestamp-in-future');
    t.clock.now += 1;
    await expectStatus(t, ahead, 'connected');

    const t2 = testChain();
    const atLimit = forgeBlock(t2.chain, t2.chain.tip, { header: { timestamp: TEST_NOW + DRIFT } });
    await expectStatus(t2, atLimit, 'connected');
  });

  test('bad-difficulty: a target other than the parent target off a retarget height', async () => {
    const t = testChain();
    const tip = t.chain.tip;
    const target = tip.header.target;
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: target >> 1n } }), 'bad-difficulty');
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: target - 1n } }), 'bad-difficulty');
    // Easier than the test network's maxTarget: out of the bounds, which are checked first.
    await expectInvalid(
      t,
      forgeBlock(t.chain, tip, { header: { target: target << 1n } }),
      'target-out-of-range',
    );
    await expectStatus(t, forgeBlock(t.chain, tip), 'connected');
  });

  test('bad-difficulty at retarget heights 10 and 20: wrong targets rejected, the retargeted one accepted', async () => {
    const t = testChain();
    const initial = t.chain.tip.header.target;
    // Blocks ten times too fast: each retarget wants the clamped factor of 4 harder.
    let tip = await extend(t, 9, { gapMs: 1_000 });
    assert.equal(tip.height, 9);
    assert.equal(tip.header.target, initial, 'no retarget before height 10');
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: initial } }), 'bad-difficulty');
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: initial / 9n } }), 'bad-difficulty');
    const at10 = forgeBlock(t.chain, tip, { gapMs: 1_000 });
    assert.equal(at10.header.target, initial / 4n, 'clamped to a factor of 4');
    await expectStatus(t, at10, 'connected');

    // The retargeted value sticks until the next retarget.
    tip = t.chain.tip;
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: initial } }), 'bad-difficulty');
    tip = await extend(t, 9, { gapMs: 1_000 });
    assert.equal(tip.height, 19);
    assert.equal(tip.header.target, initial / 4n);
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: initial / 4n } }), 'bad-difficulty');
    await expectInvalid(t, forgeBlock(t.chain, tip, { header: { target: initial / 64n } }), 'bad-difficulty');
    const at20 = forgeBlock(t.chain, tip, { gapMs: 1_000 });
    assert.equal(at20.header.target, initial / 4n / 4n);
    await expectStatus(t, at20, 'connected');
    assert.equal(t.chain.tip.height, 20);
  });

  test('entry-already-included: an entry already in an ancestor, but not one only on another branch', async () => {
    const t = testChain();
    const e = entryAt(1);
    const fork = t.chain.tip;
    const [withE] = forgeChain(t.chain, fork, 1, { entries: [e] });
    await expectStatus(t, withE!, 'connected');
    await extend(t, 1);
    await expectInvalid(
      t,
      forgeBlock(t.chain, t.chain.tip, { entries: [entryAt(2), e] }),
      'entry-already-included',
    );
    // A competing branch from before the inclusion may carry the entry.
    await expectStatus(t, forgeBlock(t.chain, fork, { entries: [e], miner: testKey(2) }), 'side');
  });

  test('invalid-parent: a child of a block rejected as invalid', async () => {
    const t = testChain();
    const tip = t.chain.tip;
    const bad = forgeBlock(t.chain, tip, { header: { target: tip.header.target >> 1n } });
    const child = forgeBlock(t.chain, scratchNode(bad, tip));
    await expectInvalid(t, bad, 'bad-difficulty');
    const r = await expectInvalid(t, child, 'invalid-parent');
    assert.equal(t.chain.invalidReason(child.hashHex), r.status === 'invalid' ? r.error : undefined);
    assert.equal(t.chain.orphans.size, 0, 'not kept as an orphan');
  });
});

describe('memory of invalid blocks', () => {
  test('a block invalid by its header is remembered: re-sending returns the same error without re-validation', async () => {
    const { t, calls } = countingChain();
    const tip = t.chain.tip;
    const bad = forgeBlock(t.chain, tip, {
      header: { target: tip.header.target >> 1n },
      entries: [entryAt(1)],
    });
    const first = await expectInvalid(t, bad, 'bad-difficulty');
    const checked = calls();
    // Its difficulty is checked against its parent before its body: not one signature verified.
    assert.equal(checked, 0, 'refused on its header alone');
    assert.equal(t.chain.invalidReason(bad.hashHex), first.status === 'invalid' ? first.error : undefined);
    const again = await expectInvalid(t, bad, 'bad-difficulty');
    assert.equal(calls(), checked, 'no signature was checked again');
    assert.ok(first.status === 'invalid' && again.status === 'invalid');
    assert.equal(again.error, first.error, 'the remembered error itself');
  });

  test('intrinsic failures by header (wrong chain id, insufficient work) are remembered too', async () => {
    const { t, calls } = countingChain();
    const other = chainIdOf(testNetwork({ name: 'elsewhere' }));
    const wrongChain = forgeBlock(t.chain, t.chain.tip, { header: { chainId: other } });
    await expectInvalid(t, wrongChain, 'wrong-chain-id');
    assert.ok(t.chain.invalidReason(wrongChain.hashHex));
    const unmined = signBlock(
      unmineHeader(forgeBlock(t.chain, t.chain.tip, { mine: false }).header),
      [],
      testKey(0),
    );
    await expectInvalid(t, unmined, 'insufficient-work');
    assert.equal(t.chain.invalidReason(unmined.hashHex)?.code, 'insufficient-work');
    assert.equal(calls(), 0, 'rejected before any signature check');
  });

  test('failures of the body are not pinned on the hash: a tampered copy is re-validated, the genuine block accepted', async () => {
    const { t, calls } = countingChain();
    const [a, b] = [entryAt(1), entryAt(2)] as const;
    const genuine = forgeBlock(t.chain, t.chain.tip, { entries: [a, b] });
    const tampered: SealedBlock[] = [
      withBadSignature(genuine),
      sealBlock({ header: genuine.header, signature: genuine.signature, entries: [a, b, b] }),
      sealBlock({ header: genuine.header, signature: genuine.signature, entries: [b, a] }),
      sealBlock({
        header: genuine.header,
        signature: genuine.signature,
        entries: [withBadEntrySignature(a), b],
      }),
    ];
    const codes: BlockErrorCode[] = [];
    for (const block of tampered) {
      assert.equal(block.hashHex, genuine.hashHex);
      const r = await t.submit(block);
      assert.ok(r.status === 'invalid');
      codes.push(r.error.code);
      assert.equal(t.chain.invalidReason(genuine.hashHex), undefined);
    }
    assert.deepEqual(codes, [
      'bad-block-signature',
      'duplicate-entry',
      'bad-merkle-root',
      'bad-entry-signature',
    ]);
    const before = calls();
    await expectInvalid(t, tampered[0]!, 'bad-block-signature');
    assert.ok(calls() > before, 'validated again');
    await expectStatus(t, genuine, 'connected');
  });
});

describe('work is never free: cheap rules first', () => {
  test('target-out-of-range: a target easier than maxTarget fails before every rule but the chain id, and before any signature', async () => {
    const { t, calls } = countingChain();
    const tip = t.chain.tip;
    // Breaks every other rule it can at once: version, Merkle root, both signatures.
    const good = forgeBlock(t.chain, tip, {
      entries: [entryAt(1)],
      header: { target: MAX_TARGET, version: FORMAT_VERSION + 1, merkleRoot: new Uint8Array(32) },
      mine: false,
    });
    const bad = sealBlock({
      header: good.header,
      signature: flipBit(good.signature, 10),
      entries: [withBadEntrySignature(good.entries[0]!)],
    });
    await expectInvalid(t, bad, 'target-out-of-range');
    assert.equal(calls(), 0, 'no signature was checked');
    assert.equal(t.chain.invalidReason(bad.hashHex)?.code, 'target-out-of-range', 'remembered by its hash');
    // Of another network, the same block is that first (its sender is on the wrong network).
    const foreign = forgeBlock(t.chain, tip, {
      header: { target: MAX_TARGET, chainId: chainIdOf(testNetwork({ name: 'elsewhere' })) },
      mine: false,
    });
    await expectInvalid(t, foreign, 'wrong-chain-id');
    assert.equal(calls(), 0);
  });

  test('target-out-of-range: a target harder than minTarget, and the bounds themselves pass', async () => {
    const base = testNetwork();
    const { t, calls } = countingChain({ minTarget: base.maxTarget >> 1n });
    const tip = t.chain.tip;
    const tooHard = forgeBlock(t.chain, tip, { header: { target: base.maxTarget >> 2n }, mine: false });
    await expectInvalid(t, tooHard, 'target-out-of-range');
    assert.equal(calls(), 0);
    // A target exactly at a bound is within it (here off a retarget height: the parent's).
    await expectStatus(t, forgeBlock(t.chain, tip), 'connected');
  });

  test('an orphan with an out-of-range target is rejected, not pooled, and its signature never checked', async () => {
    const { t, calls } = countingChain();
    const orphan = forgeBlock(t.chain, t.chain.tip, {
      header: { target: MAX_TARGET, prevHash: new Uint8Array(32).fill(7), height: 5 },
      mine: false,
    });
    await expectInvalid(t, orphan, 'target-out-of-range');
    assert.equal(t.chain.orphans.size, 0);
    assert.equal(calls(), 0);
  });

  test('a future-stamped block fails on the clock before its body: a bad signature is not even looked at', async () => {
    const { t, calls } = countingChain();
    const ahead = forgeBlock(t.chain, t.chain.tip, { header: { timestamp: TEST_NOW + DRIFT + 1 } });
    await expectInvalid(t, withBadSignature(ahead), 'timestamp-in-future');
    assert.equal(calls(), 0);
  });

  test('a transient rejection is remembered until the block could pass: re-sent earlier, it costs no validation', async () => {
    const { t, calls } = countingChain();
    // The entry is ahead of the clock: found only after the signatures were checked.
    const block = forgeBlock(t.chain, t.chain.tip, {
      entries: [knowledgeEntry(author, TEST_NOW + DRIFT + 5)],
    });
    await expectInvalid(t, block, 'entry-timestamp-in-future');
    const checked = calls();
    assert.ok(checked >= 1);
    for (let i = 0; i < 100; i++) await expectInvalid(t, block, 'entry-timestamp-in-future');
    t.clock.now += 4;
    await expectInvalid(t, block, 'entry-timestamp-in-future');
    assert.equal(calls(), checked, 'not validated again while it cannot pass');
    assert.equal(t.chain.invalidReason(block.hashHex), undefined, 'never pinned as invalid');
    t.clock.now += 1;
    await expectStatus(t, block, 'connected');
  });

  test('the memory of transient rejections is bounded: the oldest is forgotten first', async () => {
    const { t, calls } = countingChain({}, { transientMemory: 2 });
    const blocks = [1, 2, 3].map((n) =>
      forgeBlock(t.chain, t.chain.tip, {
        entries: [knowledgeEntry(author, TEST_NOW + DRIFT + 1000, `f${n}`)],
      }),
    );
    for (const b of blocks) await expectInvalid(t, b, 'entry-timestamp-in-future');
    const checked = calls();
    await expectInvalid(t, blocks[2]!, 'entry-timestamp-in-future');
    await expectInvalid(t, blocks[1]!, 'entry-timestamp-in-future');
    assert.equal(calls(), checked, 'the two newest are remembered');
    await expectInvalid(t, blocks[0]!, 'entry-timestamp-in-future');
    assert.ok(calls() > checked, 'the oldest was forgotten and validated again');
  });
});
