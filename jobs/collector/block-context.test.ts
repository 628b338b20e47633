/**
 * The collector judges a block against its indexed parent as nodes do (validateBlockContext):
 * the retarget rule's exact target and the median time past, read along the block's own branch.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toHex } from '../../node/chain/bytes.ts';
import { MAX_TARGET, workForTarget } from '../../node/chain/pow.ts';
import type { SealedBlock } from '../../node/chain/types.ts';
import { forgeBranch, scratchNode, TEST_NOW, testChain } from '../../node/testing/forge.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import { IndexWriter } from './index-writer.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';

/** Targets low enough that a harder one still fits the bounds (and mines in a few hashes). */
const OVER = { minTarget: MAX_TARGET >> 6n };
const s0 = testChain(OVER).chain.config;

async function setup(provider: (typeof TEST_PROVIDERS)[number], n: number, gapMs?: number) {
  const t = testChain(OVER);
  const honest = forgeBranch(
    t.chain,
    t.chain.tip,
    Array.from({ length: n }, () => (gapMs ? { gapMs } : {})),
  );
  for (const b of honest) assert.equal((await t.submit(b)).status, 'connected');
  const idx = await createTestIndexDb(provider);
  const w = new IndexWriter(idx.db, { network: t.chain.config, now: () => TEST_NOW });
  const index = (bs: readonly SealedBlock[]) =>
    Promise.all(
      bs.map((b) =>
        w.apply(
          `h.${b.hashHex}`,
          'block.accepted',
          blockAcceptedReport('A', b, t.chain.tree.get(b.hashHex)!),
        ),
      ),
    );
  for (const b of honest) await index([b]);
  /** A report for a block the chain refused: its total work as the forger would claim it. */
  const forgedReport = (b: SealedBlock, parentHex: string) => {
    const parent = t.chain.tree.get(parentHex)!;
    return {
      ...blockAcceptedReport('X', b, scratchNode(b, parent)),
      totalWork: (parent.chainWork + workForTarget(b.header.target)).toString(),
    };
  };
  const canonical = async () =>
    (await idx.db.block.findMany({ where: { canonical: true }, orderBy: { height: 'asc' } })).map(
      (r) => r.hash,
    );
  return { t, honest, w, db: idx.db, drop: idx.drop, forgedReport, canonical };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => assert.fail('indexed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof ReportRefused, String(err));
  return err.code;
}

for (const provider of TEST_PROVIDERS) {
  describe(`block context (${provider})`, () => {
    test('a harder target than the retarget rule allows is refused as bad-difficulty', async () => {
      const s = await setup(provider, 3);
      try {
        const genesis = s.t.chain.tree.get(toHex(s.honest[0]!.header.prevHash))!;
        const [evil] = forgeBranch(s.t.chain, genesis, [{ header: { target: MAX_TARGET >> 6n } }]);
        // Nodes refuse it; before the fix the index took it, being heavier than the 3 honest blocks.
        const verdict = await testChain(OVER).submit(evil!);
        assert.equal(verdict.status, 'invalid');
        const before = await s.canonical();
        assert.equal(
          await refusal(s.w.apply('forged', 'block.accepted', s.forgedReport(evil!, genesis.hashHex))),
          'bad-difficulty',
        );
        assert.deepEqual(await s.canonical(), before);
        assert.deepEqual(
          before,
          s.honest.map((b) => b.hashHex),
        );
        assert.equal(await s.db.block.count({ where: { hash: evil!.hashHex } }), 0);
      } finally {
        await s.drop();
      }
    });

    test('across a retarget: the honest block at height 10 is indexed, a wrong target there refused', async () => {
      // Blocks at a fifth of the block time: the retarget at 10 makes the target harder.
      const s = await setup(provider, 9, s0.blockTimeMs / 5);
      try {
        const parent = s.t.chain.tip;
        const [good] = forgeBranch(s.t.chain, parent, [{}]);
        // The parent's target, as if no retarget were due: easier than the rule asks.
        const [bad] = forgeBranch(s.t.chain, parent, [{ header: { target: parent.header.target } }]);
        assert.notEqual(good!.header.target, parent.header.target, 'height 10 retargets');
        assert.equal(
          await refusal(s.w.apply('bad', 'block.accepted', s.forgedReport(bad!, parent.hashHex))),
          'bad-difficulty',
        );
        assert.equal((await s.t.submit(good!)).status, 'connected');
        const r = await s.w.apply(
          'good',
          'block.accepted',
          blockAcceptedReport('A', good!, s.t.chain.tree.get(good!.hashHex)!),
        );
        assert.equal(r.duplicate, false);
        assert.equal((await s.canonical()).at(-1), good!.hashHex);
      } finally {
        await s.drop();
      }
    });

    test('a timestamp at or below the median time past is refused', async () => {
      const s = await setup(provider, 4);
      try {
        const parent = s.t.chain.tip;
        const early = s.honest[1]!.header.timestamp;
        const [old] = forgeBranch(s.t.chain, parent, [{ header: { timestamp: early } }]);
        assert.equal(
          await refusal(s.w.apply('old', 'block.accepted', s.forgedReport(old!, parent.hashHex))),
          'timestamp-too-early',
        );
      } finally {
        await s.drop();
      }
    });

    test('an ancestor missing from the index holds the report', async () => {
      const s = await setup(provider, 3);
      try {
        await s.db.block.delete({ where: { hash: s.honest[0]!.hashHex } });
        const [next] = forgeBranch(s.t.chain, s.t.chain.tip, [{}]);
        assert.equal((await s.t.submit(next!)).status, 'connected');
        const err = await s.w
          .apply(
            'next',
            'block.accepted',
            blockAcceptedReport('A', next!, s.t.chain.tree.get(next!.hashHex)!),
          )
          .then(
            () => assert.fail('indexed'),
            (e: unknown) => e,
          );
        assert.ok(err instanceof ReportHeld, String(err));
        assert.equal(err.code, 'unknown-parent');
        assert.equal(err.waitingFor, s.honest[0]!.hashHex);
      } finally {
        await s.drop();
      }
    });
  });
}
