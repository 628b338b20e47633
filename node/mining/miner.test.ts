import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encodeHeader } from '../chain/block-codec.ts';
import { toHex } from '../chain/bytes.ts';
import { sha256 } from '../chain/hash.ts';
import { meetsTarget } from '../chain/pow.ts';
import type { SealedBlock } from '../chain/types.ts';
import { forgeBlock, testChain, testKey } from '../testing/forge.ts';
import { Miner } from './miner.ts';
import { MiningLoop } from './mining-loop.ts';
import { buildTemplate } from './template.ts';

const miner = new Miner();
after(() => miner.close());

test('the worker finds a nonce whose hash meets the target', async () => {
  const { chain } = testChain();
  const template = buildTemplate(chain, testKey(0).publicKey, Date.now());
  const header = await miner.mine(template.header);
  assert.ok(header, 'a header is found');
  assert.ok(meetsTarget(sha256(encodeHeader(header)), header.target));
  assert.ok(miner.hashes > 0);
});

test('cancel abandons a job promptly and a new job runs afterwards', async () => {
  const { chain } = testChain();
  const template = buildTemplate(chain, testKey(0).publicKey, Date.now());
  // Target 0 is (practically) never met: the job runs until cancelled.
  const hopeless = miner.mine({ ...template.header, target: 0n });
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(miner.busy);
  const started = performance.now();
  miner.cancel();
  assert.equal(await hopeless, null);
  assert.ok(performance.now() - started < 1000, 'cancellation is prompt');
  const next = await miner.mine(template.header);
  assert.ok(next && meetsTarget(sha256(encodeHeader(next)), next.target));
});

test('starting a job replaces the running one', async () => {
  const { chain } = testChain();
  const template = buildTemplate(chain, testKey(0).publicKey, Date.now());
  const first = miner.mine({ ...template.header, target: 0n });
  const second = miner.mine(template.header);
  assert.equal(await first, null);
  assert.ok(await second);
});

test('the mining loop extends the chain and restarts on a new head', async () => {
  const { chain } = testChain();
  const key = testKey(3);
  const submitted: number[] = [];
  const loop = new MiningLoop({
    chain,
    miner,
    key,
    now: () => Date.now(),
    submit: async (block) => {
      const r = await chain.processBlock(block);
      assert.equal(r.status, 'connected');
      submitted.push(block.header.height);
      chain.takeUpdate();
      loop.headChanged();
    },
  });
  loop.start();
  const deadline = Date.now() + 20_000;
  while (chain.tip.height < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await loop.stop();
  assert.ok(chain.tip.height >= 5, `mined to height ${chain.tip.height}`);
  assert.deepEqual(submitted.slice(0, 5), [1, 2, 3, 4, 5], 'each block builds on the previous one');
  assert.ok(chain.tip.header.miner.every((b, i) => b === key.publicKey[i]));
});

test('a new head abandons the running job and mining resumes on the new tip', async () => {
  const { chain } = testChain();
  const results: (string | null)[] = [];
  let calls = 0;
  // The first job is made hopeless so that only headChanged() can end it.
  const sequenced = {
    mine: async (header: Parameters<Miner['mine']>[0]) => {
      const h = await miner.mine(calls++ === 0 ? { ...header, target: 0n } : header);
      results.push(h ? 'found' : null);
      return h;
    },
    cancel: () => miner.cancel(),
  } as unknown as Miner;
  const mined: SealedBlock[] = [];
  const loop = new MiningLoop({
    chain,
    miner: sequenced,
    key: testKey(4),
    now: () => Date.now(),
    submit: async (block) => {
      mined.push(block);
      await chain.processBlock(block);
    },
  });
  loop.start();
  await new Promise((r) => setTimeout(r, 50));
  const external = forgeBlock(chain, chain.tip, { miner: testKey(5), gapMs: 1 });
  assert.equal((await chain.processBlock(external)).status, 'connected');
  loop.headChanged();
  const deadline = Date.now() + 10_000;
  while (mined.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await loop.stop();
  assert.equal(results[0], null, 'the job on the old head was abandoned');
  assert.ok(mined.length > 0);
  assert.equal(toHex(mined[0]!.header.prevHash), external.hashHex, 'the next block builds on the new head');
});

test('a submit that fails stops the loop; stop() resolves instead of rejecting', async () => {
  const { chain } = testChain();
  const stoppedBy: Error[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);
  process.on('unhandledRejection', onUnhandled);
  try {
    let stopping: Promise<void> | undefined;
    const loop = new MiningLoop({
      chain,
      miner,
      key: testKey(6),
      now: () => Date.now(),
      submit: async () => {
        // As the node does: its store-failed handler stops mining while the submit rejects.
        stopping = loop.stop();
        throw new Error('database or disk is full');
      },
      onStopped: (err) => stoppedBy.push(err),
    });
    loop.start();
    const deadline = Date.now() + 10_000;
    while (!stopping && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(stopping, 'a block was mined and submitted');
    await stopping;
    await loop.stop();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      stoppedBy.map((e) => e.message),
      ['database or disk is full'],
    );
    assert.deepEqual(unhandled, [], 'no unhandled rejection');
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});
