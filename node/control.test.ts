/**
 * The in-process NodeControl over a real CairnNode (not mining, no peers): what it refuses and
 * how (a ControlError whose code says whether retrying could help), and the read answers the
 * HTTP API serves (entry location, block ranges).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BLOCKS_DEFAULT_WINDOW, ControlError, type NodeControl, nodeControl } from './control.ts';
import { createLogger } from './log.ts';
import { CairnNode } from './node.ts';
import { testNetwork } from './testing/forge.ts';

let dataDir: string;
let node: CairnNode;
let control: NodeControl;

before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-control-'));
  node = await CairnNode.start({
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mine: false,
    mdns: false,
    role: 'submind',
    capabilities: [],
    network: testNetwork(),
    reconcileIntervalMs: 0,
    logger: createLogger('silent'),
  });
  control = nodeControl(node);
});

after(async () => {
  await node?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

const isControlError = (code: ControlError['code'], message: RegExp) => (err: unknown) =>
  err instanceof ControlError && err.code === code && message.test(err.message);

test('an entry the codec cannot seal is an invalid request, not a failure worth retrying', async () => {
  // The admin payload schema lets 32 pairs and any keys through; the entry codec takes 16, unique.
  const tooMany = Array.from({ length: 17 }, (_, i) => [`k${String(i).padStart(2, '0')}`, 'v'] as const);
  await assert.rejects(control.submit('hello', tooMany), isControlError('invalid', /at most 16 pairs/));
  await assert.rejects(
    control.submit('hello', [
      ['k', 'a'],
      ['k', 'b'],
    ]),
    isControlError('invalid', /sorted and unique/),
  );
  assert.equal(node.chain.mempool.size, 0);
});

test('a submitted entry is located in the mempool; an unknown id nowhere', async () => {
  const out = await control.submit('where am I', [['topic', 'test']]);
  assert.deepEqual(
    { ...out, id: undefined },
    { id: undefined, status: 'added', accepted: true, reason: null },
  );
  assert.deepEqual(control.locateEntry(out.id), { id: out.id, status: 'mempool' });
  assert.deepEqual(control.mempool().ids, [out.id]);
  assert.equal(control.locateEntry('00'.repeat(32)), undefined);
});

test('blocks() clips the range to the chain', () => {
  const genesis = node.chain.tree.mainAt(0)!;
  const only = { height: 0, hash: genesis.hashHex, entries: genesis.entryIds.length };
  const brief = (r: { blocks: { height: number; hash: string; entries: number }[] }) =>
    r.blocks.map(({ height, hash, entries }) => ({ height, hash, entries }));
  assert.equal(node.chain.tip.height, 0);
  assert.ok(BLOCKS_DEFAULT_WINDOW > 0);
  assert.deepEqual(brief(control.blocks({})), [only]);
  assert.deepEqual(brief(control.blocks({ from: -5, to: 10 })), [only]);
  assert.deepEqual(control.blocks({ from: 1 }).blocks, []);
  assert.deepEqual(control.blocks({ from: 0, to: -1 }).blocks, []);
});

test('reconcile without peers is unavailable; a malformed peer id is invalid', async () => {
  await assert.rejects(control.reconcile(), isControlError('unavailable', /no connected peer/));
  await assert.rejects(control.reconcile('not-a-peer'), isControlError('invalid', /not a peer id/));
});
