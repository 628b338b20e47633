/**
 * Admin checkpoints make history final: a heavier chain that forks below the latest one is
 * refused (and stays refused after a restart), while reorgs above it still happen.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { NodeStore } from '../store/node-store.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../testing/forge.ts';
import { createEntry } from './authoring.ts';
import { toHex } from './bytes.ts';
import { Chain } from './chain.ts';
import { checkpointPayload, forksBelow, formatCheckpoint, parseCheckpoint } from './checkpoint.ts';
import { chainIdHex } from './network-config.ts';
import type { SealedBlock } from './types.ts';

const admin = testKey(900);
const stranger = testKey(901);
const ADMINS = { admins: [toHex(admin.publicKey)] };
const entryTime = TEST_NOW - 60_000;

test('checkpoint values are exactly "<height>:<64 lowercase hex>"', () => {
  const hash = 'ab'.repeat(32);
  assert.deepEqual(parseCheckpoint(`12:${hash}`), { height: 12, hashHex: hash });
  assert.equal(formatCheckpoint({ height: 12, hashHex: hash as never }), `12:${hash}`);
  for (const bad of [
    `012:${hash}`,
    `0:${hash}`,
    `12:${hash.toUpperCase()}`,
    `12:${hash}0`,
    `12 :${hash}`,
    `4294967296:${hash}`,
    '12',
    '',
  ])
    assert.equal(parseCheckpoint(bad), undefined, bad);
});

/** Main chain of 10 blocks, then block 11 carrying an admin checkpoint of height 6. */
async function checkpointedChain() {
  const t = testChain(ADMINS);
  const main = forgeBranch(
    t.chain,
    t.chain.tip,
    Array.from({ length: 10 }, () => ({})),
  );
  for (const b of main) assert.equal((await t.submit(b)).status, 'connected');
  const cp = { height: 6, hashHex: main[5]!.hashHex };
  const entry = createEntry(checkpointPayload(cp), admin, entryTime);
  assert.equal(t.chain.addEntry(entry).status, 'added');
  const [carrier] = forgeBranch(t.chain, t.chain.tip, [{ entries: [entry] }]);
  assert.equal((await t.submit(carrier!)).status, 'connected');
  const update = t.chain.takeUpdate();
  assert.deepEqual(update.finalized, cp);
  assert.ok(update.events.some((e) => e.type === 'finalized'));
  return { ...t, main: [...main, carrier!], cp };
}

test('a heavier chain forking below the checkpoint is refused; the tip stays', async () => {
  const { chain, submit, main, cp } = await checkpointedChain();
  assert.deepEqual(chain.finalized, cp);
  const fromBlock3 = chain.tree.get(main[2]!.hashHex)!;
  // 12 blocks from height 4 up: far more work than the 11-block main chain.
  const rival = forgeBranch(
    chain,
    fromBlock3,
    Array.from({ length: 12 }, () => ({ miner: stranger, gapMs: 900 })),
  );
  const results = [];
  for (const b of rival) results.push(await submit(b));
  assert.equal(results[0]!.status, 'invalid');
  assert.equal(results[0]!.status === 'invalid' && results[0]!.error.code, 'below-checkpoint');
  assert.ok(results.slice(1).every((r) => r.status === 'invalid' || r.status === 'orphan'));
  assert.equal(chain.tip.hashHex, main.at(-1)!.hashHex);
});

test('a rival that forks above the checkpoint still reorgs the chain', async () => {
  const { chain, submit, main, cp } = await checkpointedChain();
  const fromBlock8 = chain.tree.get(main[7]!.hashHex)!;
  const rival = forgeBranch(
    chain,
    fromBlock8,
    Array.from({ length: 5 }, () => ({ miner: stranger })),
  );
  const results = [];
  for (const b of rival) results.push(await submit(b));
  const reorg = results.find((r) => r.status === 'reorg');
  assert.ok(
    reorg && reorg.status === 'reorg' && reorg.depth === 3,
    JSON.stringify(results.map((r) => r.status)),
  );
  assert.equal(chain.tip.hashHex, rival.at(-1)!.hashHex);
  assert.deepEqual(chain.finalized, cp, 'finality stays when the carrier block is reorged out above it');
});

test('a checkpoint must name a block of the chain that carries it', async () => {
  const t = testChain(ADMINS);
  const main = forgeBranch(
    t.chain,
    t.chain.tip,
    Array.from({ length: 4 }, () => ({})),
  );
  for (const b of main) await t.submit(b);
  const wrong = createEntry(
    checkpointPayload({ height: 2, hashHex: 'cd'.repeat(32) as never }),
    admin,
    entryTime,
  );
  const r = t.chain.addEntry(wrong);
  assert.equal(r.status === 'rejected' && r.reason, 'checkpoint-not-in-chain');
  const [block] = forgeBranch(t.chain, t.chain.tip, [{ entries: [wrong] }]);
  const res = await t.submit(block!);
  assert.equal(res.status === 'invalid' && res.error.code, 'checkpoint-not-in-chain');
  const ahead = createEntry(checkpointPayload({ height: 9, hashHex: main[0]!.hashHex }), admin, entryTime);
  assert.equal(t.chain.addEntry(ahead).status, 'rejected', 'a height the chain has not reached');
  const malformed = createEntry({ kind: 'config', changes: [['checkpoint', '2:xyz']] }, admin, entryTime);
  const m = t.chain.addEntry(malformed);
  assert.equal(m.status === 'rejected' && m.reason, 'bad-checkpoint');
  const byStranger = createEntry(
    checkpointPayload({ height: 2, hashHex: main[1]!.hashHex }),
    stranger,
    entryTime,
  );
  const s = t.chain.addEntry(byStranger);
  assert.equal(s.status === 'rejected' && s.reason, 'unauthorized-config');
});

test('forksBelow: at or under the checkpoint only the final block counts', async () => {
  const { chain, main, cp } = await checkpointedChain();
  const mainAt = (h: number) => chain.tree.mainAt(h);
  assert.equal(forksBelow(chain.tip, chain.tip.height + 1, cp, mainAt), false);
  assert.equal(forksBelow(chain.tree.get(main[4]!.hashHex)!, 6, cp, mainAt), true);
  assert.equal(forksBelow(chain.tree.get(main[6]!.hashHex)!, 8, cp, mainAt), false);
  assert.equal(forksBelow(chain.tree.get(main[6]!.hashHex)!, 8, undefined, mainAt), false);
});

/** A chain over a real store in `dir`, rebuilt from it as a node does on start. */
async function openStored(dir: string) {
  const config = testNetwork(ADMINS);
  let store: NodeStore | undefined;
  const chain = new Chain({ config, loadBlock: (h) => store!.loadBlock(h), now: () => TEST_NOW });
  store = await NodeStore.open({
    file: path.join(dir, 'chain.db'),
    chainIdHex: chainIdHex(config),
    genesisHashHex: chain.genesis.hashHex,
  });
  chain.restore(await store.load());
  const submit = async (b: SealedBlock) => {
    const r = await chain.processBlock(b);
    await store!.apply(chain.takeUpdate());
    return r;
  };
  return { chain, store, submit };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-checkpoint-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('finality survives a restart: the reopened store refuses the same rival', () =>
  withDir(async (dir) => {
    const first = await openStored(dir);
    const main = forgeBranch(
      first.chain,
      first.chain.tip,
      Array.from({ length: 6 }, () => ({})),
    );
    for (const b of main) await first.submit(b);
    const entry = createEntry(checkpointPayload({ height: 4, hashHex: main[3]!.hashHex }), admin, entryTime);
    first.chain.addEntry(entry);
    const [carrier] = forgeBranch(first.chain, first.chain.tip, [{ entries: [entry] }]);
    assert.equal((await first.submit(carrier!)).status, 'connected');
    const rival: SealedBlock[] = forgeBranch(
      first.chain,
      first.chain.tree.get(main[1]!.hashHex)!,
      Array.from({ length: 9 }, () => ({ miner: stranger })),
    );
    await first.store.close();

    const second = await openStored(dir);
    assert.deepEqual(second.chain.finalized, { height: 4, hashHex: main[3]!.hashHex });
    const r = await second.chain.processBlock(rival[0]!);
    assert.equal(r.status === 'invalid' && r.error.code, 'below-checkpoint');
    assert.equal(second.chain.tip.hashHex, carrier!.hashHex);
    await second.store.close();
  }));

test('finality is derived again from the stored main chain, not only from its recorded value', () =>
  withDir(async (dir) => {
    const first = await openStored(dir);
    const main = forgeBranch(
      first.chain,
      first.chain.tip,
      Array.from({ length: 6 }, () => ({})),
    );
    for (const b of main) await first.submit(b);
    const cp = { height: 4, hashHex: main[3]!.hashHex };
    const entry = createEntry(checkpointPayload(cp), admin, entryTime);
    first.chain.addEntry(entry);
    const [carrier] = forgeBranch(first.chain, first.chain.tip, [{ entries: [entry] }]);
    assert.equal((await first.submit(carrier!)).status, 'connected');
    const rival = forgeBranch(
      first.chain,
      first.chain.tree.get(main[1]!.hashHex)!,
      Array.from({ length: 9 }, () => ({ miner: stranger })),
    );
    // A store written before the finalized value was recorded (or that lost the row) still
    // holds the block that carries the checkpoint on its main chain.
    await (await first.store.inspect()).storeMeta.delete({ where: { key: 'finalized' } });
    await first.store.close();

    const second = await openStored(dir);
    assert.deepEqual(second.chain.finalized, cp);
    const r = await second.submit(rival[0]!);
    assert.equal(r.status === 'invalid' && r.error.code, 'below-checkpoint');
    await second.store.close();
    // The derived value is written back, so the next open finds it recorded.
    const third = await openStored(dir);
    const row = await (await third.store.inspect()).storeMeta.findUnique({ where: { key: 'finalized' } });
    assert.equal(row?.value, formatCheckpoint(cp));
    await third.store.close();
  }));

test('a checkpoint carried by a stored side-chain block becomes final when that chain wins after a restart', () =>
  withDir(async (dir) => {
    const first = await openStored(dir);
    const main = forgeBranch(
      first.chain,
      first.chain.tip,
      Array.from({ length: 6 }, () => ({})),
    );
    for (const b of main) await first.submit(b);
    // A side chain from block 4 whose first block carries a checkpoint of block 3 (its ancestor).
    const cp = { height: 3, hashHex: main[2]!.hashHex };
    const entry = createEntry(checkpointPayload(cp), admin, entryTime);
    const side = forgeBranch(first.chain, first.chain.tree.get(main[3]!.hashHex)!, [
      { entries: [entry], miner: stranger },
      { miner: stranger },
      { miner: stranger },
      { miner: stranger },
    ]);
    assert.equal((await first.submit(side[0]!)).status, 'side');
    assert.equal(first.chain.finalized, undefined);
    await first.store.close();

    const second = await openStored(dir);
    assert.equal(second.chain.finalized, undefined, 'a side-chain checkpoint is not final yet');
    const results = [];
    for (const b of side.slice(1)) results.push((await second.submit(b)).status);
    assert.deepEqual(results, ['side', 'reorg', 'connected']);
    assert.deepEqual(second.chain.finalized, cp, 'the carrier joined the main chain');
    // And so a heavier chain forking below it is refused.
    const rival = forgeBranch(
      second.chain,
      second.chain.tree.get(main[0]!.hashHex)!,
      Array.from({ length: 12 }, () => ({ miner: testKey(902) })),
    );
    const r = await second.submit(rival[0]!);
    assert.equal(r.status === 'invalid' && r.error.code, 'below-checkpoint');
    await second.store.close();
  }));

test('every stored carrier counts on reopening, however many blocks carry checkpoints', () =>
  withDir(async (dir) => {
    const first = await openStored(dir);
    const main = forgeBranch(
      first.chain,
      first.chain.tip,
      Array.from({ length: 6 }, () => ({})),
    );
    for (const b of main) await first.submit(b);
    const cp = { height: 4, hashHex: main[3]!.hashHex };
    const [carrier] = forgeBranch(first.chain, first.chain.tip, [
      { entries: [createEntry(checkpointPayload(cp), admin, entryTime)] },
    ]);
    assert.equal((await first.submit(carrier!)).status, 'connected');
    // 1,100 later blocks each carry a lower checkpoint (of height 2): more carriers than the
    // chain keeps in memory for blocks off the main chain.
    const low = { height: 2, hashHex: main[1]!.hashHex };
    const later = forgeBranch(
      first.chain,
      first.chain.tip,
      Array.from({ length: 1_100 }, (_, i) => ({
        entries: [createEntry(checkpointPayload(low), admin, entryTime - i - 1)],
      })),
    );
    for (const b of later) await first.chain.processBlock(b);
    await first.store.apply(first.chain.takeUpdate());
    assert.equal(first.chain.tip.hashHex, later.at(-1)!.hashHex);
    await (await first.store.inspect()).storeMeta.delete({ where: { key: 'finalized' } });
    await first.store.close();

    const second = await openStored(dir);
    assert.deepEqual(second.chain.finalized, cp);
    await second.store.close();
  }));
