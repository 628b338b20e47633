/**
 * The index honours admin checkpoints as nodes do (node/chain/checkpoint.ts): once a block that
 * carries one is canonical, no chain that forks at or below it moves `canonical` flags, however
 * heavy; reorgs above it still do, and finality stays after the carrier is reorged out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry } from '../../node/chain/authoring.ts';
import type { BlockNode } from '../../node/chain/block-tree.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { checkpointPayload } from '../../node/chain/checkpoint.ts';
import { workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import {
  forgeBlock,
  forgeBranch,
  scratchNode,
  TEST_NOW,
  type TestChain,
  testChain,
  testKey,
  testNetwork,
} from '../../node/testing/forge.ts';
import type { IndexDb } from '../index-db/open.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import { IndexWriter } from './index-writer.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';

const admin = testKey(900);
const stranger = testKey(901);
const ADMINS = { admins: [toHex(admin.publicKey)] };

/** A chain holding `blocks` (in order), for the reports of another branch than `t`'s. */
async function chainOf(blocks: readonly SealedBlock[]): Promise<TestChain> {
  const t = testChain(ADMINS);
  for (const b of blocks) assert.equal((await t.submit(b)).status, 'connected');
  return t;
}

/**
 * Main chain: 10 blocks, then block 11 carrying a checkpoint of block 6. Rival: 12 blocks from
 * block 3 (heights 4..15), more work than main once past height 11.
 */
async function fixture() {
  const t = testChain(ADMINS);
  const main = forgeBranch(
    t.chain,
    t.chain.tip,
    Array.from({ length: 10 }, () => ({})),
  );
  for (const b of main) assert.equal((await t.submit(b)).status, 'connected');
  const cp = { height: 6, hashHex: main[5]!.hashHex };
  const entry = createEntry(checkpointPayload(cp), admin, TEST_NOW - 60_000);
  assert.equal(t.chain.addEntry(entry).status, 'added');
  const [carrier] = forgeBranch(t.chain, t.chain.tip, [{ entries: [entry] }]);
  assert.equal((await t.submit(carrier!)).status, 'connected');
  const r = await chainOf(main.slice(0, 3));
  const rival = forgeBranch(
    r.chain,
    r.chain.tip,
    Array.from({ length: 12 }, () => ({ miner: stranger })),
  );
  for (const b of rival) assert.equal((await r.submit(b)).status, 'connected');
  const report = (c: TestChain, b: SealedBlock) => blockAcceptedReport('A', b, c.chain.tree.get(b.hashHex)!);
  return { t, r, main, carrier: carrier!, rival, cp, entry, report };
}

const canonical = async (db: IndexDb) =>
  (await db.block.findMany({ where: { canonical: true }, orderBy: { height: 'asc' } })).map((b) => b.hash);

/** Applies a report and says how it went: written, or the code it was refused or held with. */
async function outcome(w: IndexWriter, id: string, report: ReturnType<typeof blockAcceptedReport>) {
  try {
    await w.apply(id, 'block.accepted', report);
    return 'written';
  } catch (err) {
    if (err instanceof ReportRefused || err instanceof ReportHeld) return err.code;
    throw err;
  }
}

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: a heavier chain forking below an indexed checkpoint never takes canonical`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, { network: testNetwork(ADMINS), now: () => TEST_NOW });
      const { t, r, main, carrier, rival, report } = await fixture();
      for (const b of main) assert.equal(await outcome(w, `m.${b.hashHex}`, report(t, b)), 'written');
      // Before the checkpoint, the rival's first blocks are an ordinary lighter side chain.
      for (const b of rival.slice(0, 5))
        assert.equal(await outcome(w, `r.${b.hashHex}`, report(r, b)), 'written');
      assert.equal(await outcome(w, 'carrier', report(t, carrier)), 'written');
      const honest = [...main, carrier].map((b) => b.hashHex);
      assert.deepEqual(await canonical(db), honest);

      const later = [];
      for (const b of rival.slice(5)) later.push(await outcome(w, `r.${b.hashHex}`, report(r, b)));
      assert.deepEqual(later, ['below-checkpoint', ...Array(6).fill('unknown-parent')]);
      assert.deepEqual(await canonical(db), honest, 'the rival (height 15) moved no canonical flag');
      assert.equal(await db.block.count(), 11 + 5);
    } finally {
      await drop();
    }
  });

  test(`${provider}: reorgs above the checkpoint still happen, and finality outlives its carrier`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, { network: testNetwork(ADMINS), now: () => TEST_NOW });
      const { t, r, main, carrier, rival, report } = await fixture();
      for (const b of [...main, carrier]) await w.apply(`m.${b.hashHex}`, 'block.accepted', report(t, b));
      // A rival from block 8 (above the checkpoint at 6) with 5 blocks outweighs the 11.
      const above = await chainOf(main.slice(0, 8));
      const fork = forgeBranch(
        above.chain,
        above.chain.tip,
        Array.from({ length: 5 }, () => ({ miner: stranger })),
      );
      for (const b of fork) assert.equal((await above.submit(b)).status, 'connected');
      for (const b of fork) assert.equal(await outcome(w, `f.${b.hashHex}`, report(above, b)), 'written');
      assert.deepEqual(
        await canonical(db),
        [...main.slice(0, 8), ...fork].map((b) => b.hashHex),
        'the carrier was reorged out',
      );
      // The checkpoint stays final: a chain forking below it is refused still.
      assert.equal(await outcome(w, 'r.0', report(r, rival[0]!)), 'below-checkpoint');
    } finally {
      await drop();
    }
  });

  test(`${provider}: a checkpoint naming a block that is not its chain's is refused`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, { network: testNetwork(ADMINS), now: () => TEST_NOW });
      const { t, main, rival, report } = await fixture();
      for (const b of main) await w.apply(`m.${b.hashHex}`, 'block.accepted', report(t, b));
      // Block 11 of main carrying a checkpoint of the rival's block at height 6.
      const wrong = createEntry(
        checkpointPayload({ height: 6, hashHex: rival[2]!.hashHex }),
        admin,
        TEST_NOW - 1,
      );
      const tip = t.chain.tree.get(main[9]!.hashHex)!;
      const bad = forgeBlock(t.chain, tip, { entries: [wrong] });
      const node: BlockNode = {
        ...scratchNode(bad, tip),
        chainWork: tip.chainWork + workForTarget(bad.header.target),
      };
      assert.equal(await outcome(w, 'bad', blockAcceptedReport('A', bad, node)), 'checkpoint-not-in-chain');
      assert.equal(await db.block.count(), 10);
    } finally {
      await drop();
    }
  });
}
