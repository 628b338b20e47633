import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BlockNode } from '../node/chain/block-tree.ts';
import { forgeBlock, knowledgeEntry, TEST_NOW, testChain, testKey } from '../node/testing/forge.ts';
import { blockAcceptedReport, blocksToReport } from './node-reports.ts';
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

test('a block report carries what the browser needs to check the signature, and passes its own validation', async () => {
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
  assert.equal(JSON.parse(parsed.entries[0]!.payload).content, 'hello');
  assert.equal(parsed.totalWork, node.chainWork.toString());
  // A tampered report fails validation at the collector's boundary.
  assert.equal(BlockAcceptedReport.safeParse({ ...report, signature: 'zz' }).success, false);
});
