import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BlockNode } from '../node/chain/block-tree.ts';
import { fromHex } from '../node/chain/bytes.ts';
import { decodeEntry } from '../node/chain/entry-codec.ts';
import { forgeBlock, knowledgeEntry, TEST_NOW, testChain, testKey } from '../node/testing/forge.ts';
import { BlockReportLedger, blockAcceptedReport, blocksToReport } from './node-reports.ts';
import { BlockAcceptedReport } from './payloads.ts';

test('blocksToReport walks back to the last reported block and returns the path lowest first', () => {
  const mk = (h: number, parent?: BlockNode): BlockNode =>
    ({ hashHex: `h${h}`, height: h, parent }) as unknown as BlockNode;
  let tip = mk(0);
  for (let h = 1; h <= 10; h++) tip = mk(h, tip);
  const reported = new Set(['h0', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
  assert.deepEqual(
    blocksToReport(tip, (h) => reported.has(h), 100).map((n) => n.height),
    [7, 8, 9, 10],
  );
  // Nothing reported yet: at most `backfill` blocks below the tip.
  assert.deepEqual(
    blocksToReport(tip, () => false, 3).map((n) => n.height),
    [8, 9, 10],
  );
  assert.deepEqual(
    blocksToReport(tip, (h) => h === 'h10', 100),
    [],
  );
});

test('a block report carries the header and entry encodings the collector checks, and passes its own validation', async () => {
  const t = testChain();
  const key = testKey(1);
  const block = forgeBlock(t.chain, t.chain.tip, {
    miner: key,
    entries: [knowledgeEntry(key, TEST_NOW - 1000, 'hello')],
  });
  const r = await t.submit(block);
  assert.equal(r.status, 'connected');
  const node = t.chain.tip;
  const report = blockAcceptedReport('12D3KooWtest', block, node);
  const parsed = BlockAcceptedReport.parse(report);
  assert.equal(parsed.hash, block.hashHex);
  assert.equal(parsed.header.length, block.headerBytes.length * 2);
  assert.equal(parsed.entries.length, 1);
  const entry = decodeEntry(fromHex(parsed.entries[0]!));
  assert.equal(entry.payload.kind === 'knowledge' && entry.payload.content, 'hello');
  assert.equal(entry.idHex, block.entries[0]!.idHex);
  assert.equal(parsed.totalWork, node.chainWork.toString());
  // A tampered report fails validation at the collector's boundary.
  assert.equal(BlockAcceptedReport.safeParse({ ...report, signature: 'zz' }).success, false);
});

test('a block that leaves the main chain and comes back is reported again under new ids', () => {
  const ledger = new BlockReportLedger('n1');
  assert.equal(ledger.isReported('aa'), false);
  const first = ledger.accepted('aa');
  assert.equal(ledger.isReported('aa'), true);
  // Reorged out: the orphan report, and the block counts as not reported any more.
  const out1 = ledger.orphaned('aa', 'reorged-out');
  assert.equal(ledger.isReported('aa'), false);
  // Back on the main chain, out again, back again: every report has an id of its own.
  const second = ledger.accepted('aa');
  const out2 = ledger.orphaned('aa', 'reorged-out');
  const third = ledger.accepted('aa');
  const ids = [first, out1, second, out2, third];
  assert.equal(new Set(ids).size, ids.length, ids.join(' '));
  assert.equal(first, 'block.n1.aa');
  assert.equal(out1, 'orphan.n1.aa.reorged-out');
  // Blocks that never were on the main chain keep plain, repeatable ids (re-sends dedupe).
  assert.equal(ledger.orphaned('bb', 'side-chain'), 'orphan.n1.bb.side-chain');
  assert.equal(ledger.orphaned('bb', 'side-chain'), 'orphan.n1.bb.side-chain');
});

test('the ledger forgets the oldest blocks beyond its capacity', () => {
  const ledger = new BlockReportLedger('n1', 3);
  for (const h of ['a', 'b', 'c', 'd']) ledger.accepted(h);
  assert.deepEqual(
    ['a', 'b', 'c', 'd'].map((h) => ledger.isReported(h)),
    [false, true, true, true],
  );
});
