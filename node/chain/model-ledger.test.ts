/**
 * Issue 16, item 2: a `model` entry is valid only from a coordinator and only if it extends the
 * model head at its block's parent (round = head + 1, parent = head), on a real Chain, in blocks
 * and at mempool admission, across reorgs and a store reopen (real SQLite through Prisma).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import Database from 'libsql';
import { buildTemplate } from '../mining/template.ts';
import { NodeStore } from '../store/node-store.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../testing/forge.ts';
import { createEntry } from './authoring.ts';
import { toHex } from './bytes.ts';
import { Chain, type ProcessResult } from './chain.ts';
import { isModelHeadCode } from './model-ledger.ts';
import { chainIdHex, type NetworkConfig } from './network-config.ts';
import type { SigningKey } from './signature.ts';
import type { ModelPayload, SealedEntry } from './types.ts';

const coordinator = testKey(700);
const trainer = testKey(701);
const miner = testKey(702);
const at = TEST_NOW - 60_000;
const codeOf = (r: ProcessResult) => (r.status === 'invalid' ? r.error.code : r.status);
const hash = (n: number) => new Uint8Array(32).fill(n);

function model(
  round: number,
  parent: Uint8Array | null,
  by: SigningKey = coordinator,
  h = round,
): SealedEntry {
  const payload: ModelPayload = {
    kind: 'model',
    modelHash: hash(h),
    parentHash: parent,
    round,
    metrics: [['accuracy', 0.9]],
    epsilon: round,
  };
  return createEntry(payload, by, at);
}

const ROSTER: Partial<NetworkConfig> = {
  membership: 'roster',
  admins: [toHex(testKey(703).publicKey)],
  members: [
    {
      publicKey: toHex(coordinator.publicKey),
      name: 'coordinator',
      role: 'hub',
      capabilities: ['coordinate', 'train', 'submit'],
    },
    {
      publicKey: toHex(trainer.publicKey),
      name: 'trainer',
      role: 'submind',
      capabilities: ['train', 'submit'],
    },
    { publicKey: toHex(miner.publicKey), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] },
  ],
};

describe('the model head rule', () => {
  test('versions chain 1, 2, …; a wrong round, a wrong parent or round 2^32−1 is invalid', async () => {
    const t = testChain();
    const { chain } = t;
    const block = (e: SealedEntry) => forgeBranch(chain, chain.tip, [{ miner, entries: [e] }])[0]!;
    assert.equal(chain.tipModel?.round, undefined, 'no version yet');
    // The first version: round 1, no parent; anything else is not the first.
    assert.equal(codeOf(await t.submit(block(model(2, null)))), 'model-round-not-next');
    assert.equal(codeOf(await t.submit(block(model(1, hash(9))))), 'model-parent-not-head');
    assert.equal(codeOf(await t.submit(block(model(1, null)))), 'connected');
    assert.equal(chain.tipModel?.round, 1);
    // Round 2 must name version 1 as its parent.
    for (const [e, code] of [
      [model(1, null, coordinator, 11), 'model-round-not-next'],
      [model(3, hash(1)), 'model-round-not-next'],
      [model(2, null), 'model-parent-not-head'],
      [model(2, hash(7)), 'model-parent-not-head'],
      // The defect: such a head could never be followed (round 2^32 has no encoding).
      [model(2 ** 32 - 1, hash(1)), 'model-round-not-next'],
    ] as const) {
      const b = block(e);
      const r = await t.submit(b);
      assert.equal(codeOf(r), code, `round ${e.payload.kind === 'model' && e.payload.round}`);
      // Invalid for good (the hash commits to the entries), not a tampered copy.
      assert.equal(chain.invalidReason(b.hashHex)?.code, code);
      assert.equal(chain.tipModel?.round, 1, 'the head stays');
    }
    assert.equal(codeOf(await t.submit(block(model(2, hash(1))))), 'connected');
    assert.equal(toHex(chain.tipModel!.modelHash), toHex(hash(2)));
  });

  test('one block may carry a version and its successor, never two versions of one round', async () => {
    const t = testChain();
    const { chain } = t;
    const forge = (entries: SealedEntry[]) => forgeBranch(chain, chain.tip, [{ miner, entries }])[0]!;
    const rival = model(1, null, coordinator, 21);
    assert.equal(codeOf(await t.submit(forge([model(1, null), rival]))), 'model-round-not-next');
    assert.equal(codeOf(await t.submit(forge([model(2, hash(1)), model(1, null)]))), 'model-round-not-next');
    assert.equal(codeOf(await t.submit(forge([model(1, null), model(2, hash(1))]))), 'connected');
    assert.equal(chain.tipModel?.round, 2);
  });

  test('roster mode: a model entry by a member without `coordinate` is invalid, whatever its round', async () => {
    const t = testChain(ROSTER);
    const { chain } = t;
    const block = (e: SealedEntry) => forgeBranch(chain, chain.tip, [{ miner, entries: [e] }])[0]!;
    assert.equal(codeOf(await t.submit(block(model(1, null, trainer)))), 'author-lacks-coordinate');
    const r = chain.addEntry(model(1, null, trainer));
    assert.equal(r.status === 'rejected' && r.reason, 'author-lacks-coordinate');
    assert.equal(codeOf(await t.submit(block(model(1, null)))), 'connected');
    assert.equal(codeOf(await t.submit(block(model(2, hash(1), trainer)))), 'author-lacks-coordinate');
    assert.equal(codeOf(await t.submit(block(model(2 ** 32 - 1, hash(1))))), 'model-round-not-next');
  });

  test('the mempool admits only entries extending the tip’s head; the template mines one per round', async () => {
    const t = testChain();
    const { chain } = t;
    for (const [e, code] of [
      [model(2, null), 'model-round-not-next'],
      [model(2 ** 32 - 1, null), 'model-round-not-next'],
      [model(1, hash(5)), 'model-parent-not-head'],
    ] as const) {
      const r = chain.addEntry(e);
      assert.equal(r.status === 'rejected' && r.reason, code);
      // A relayer at another tip may honestly differ: gossip ignores these without blame.
      assert.ok(isModelHeadCode(code));
    }
    const mine = model(1, null);
    const rival = model(1, null, coordinator, 31);
    assert.equal(chain.addEntry(mine).status, 'added');
    assert.equal(chain.addEntry(rival).status, 'added', 'two coordinators may race');
    const tpl = buildTemplate(chain, miner.publicKey, TEST_NOW);
    assert.deepEqual(
      tpl.entries.map((e) => e.idHex),
      [mine.idHex],
      'only the first of the two is mined',
    );
    const [b] = forgeBranch(chain, chain.tip, [{ miner, entries: tpl.entries }]);
    assert.equal(codeOf(await t.submit(b!)), 'connected');
    // The rival can never be mined on this chain now: it leaves the pool (and the store).
    assert.ok(!chain.mempool.all().some((e) => e.idHex === rival.idHex));
    const update = chain.takeUpdate();
    assert.equal(update.mempool.get(rival.idHex), null);
  });

  test('each block is judged against its own parent’s head; a reorg moves the head', async () => {
    const t = testChain();
    const { chain } = t;
    const g = chain.tip;
    const [a1, a2] = forgeBranch(chain, g, [
      { miner, entries: [model(1, null)] },
      { miner, entries: [model(2, hash(1))] },
    ]);
    for (const b of [a1!, a2!]) assert.equal(codeOf(await t.submit(b)), 'connected');
    assert.equal(chain.tipModel?.round, 2);
    // A side branch from genesis has no version yet: its own round 1 is valid there, round 3 is not.
    const [b1, b2, b3] = forgeBranch(chain, g, [
      { miner, entries: [model(1, null, coordinator, 41)] },
      { miner },
      { miner, entries: [model(2, hash(41), coordinator, 42)] },
    ]);
    const bad = forgeBranch(chain, g, [{ miner, entries: [model(3, hash(2))] }])[0]!;
    assert.equal(codeOf(await t.submit(bad)), 'model-round-not-next');
    assert.equal(codeOf(await t.submit(b1!)), 'side');
    assert.equal(codeOf(await t.submit(b2!)), 'side');
    assert.equal(codeOf(await t.submit(b3!)), 'reorg');
    assert.equal(toHex(chain.tipModel!.modelHash), toHex(hash(42)));
    // A's version 2 came back to the pool with the reorg and does not extend B's head: it is not kept.
    assert.ok(!chain.mempool.all().some((e) => e.payload.kind === 'model'));
  });
});

describe('the model head survives a restart', () => {
  const config = testNetwork();
  async function open(dir: string) {
    let store: NodeStore | undefined;
    const chain = new Chain({ config, loadBlock: (h) => store!.loadBlock(h), now: () => TEST_NOW });
    store = await NodeStore.open({
      file: path.join(dir, 'chain.db'),
      chainIdHex: chainIdHex(config),
      genesisHashHex: chain.genesis.hashHex,
    });
    chain.restore(await store.load());
    return { chain, store };
  }

  test('the lineage behind the head (what a coordinator falls back on) is the same after a reopen', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-model-lineage-'));
    try {
      const first = await open(dir);
      const blocks = forgeBranch(first.chain, first.chain.tip, [
        { miner, entries: [model(1, null)] },
        { miner },
        { miner, entries: [model(2, hash(1)), model(3, hash(2))] },
      ]);
      for (const b of blocks) assert.equal(codeOf(await first.chain.processBlock(b)), 'connected');
      const rounds = (c: Chain, limit: number) => c.models.lineage(c.tree.tip, limit).map((p) => p.round);
      assert.deepEqual(rounds(first.chain, 8), [3, 2, 1]);
      assert.deepEqual(rounds(first.chain, 2), [3, 2]);
      assert.deepEqual(rounds(first.chain, 0), []);
      await first.store.apply(first.chain.takeUpdate());
      await first.store.close();
      const second = await open(dir);
      assert.deepEqual(rounds(second.chain, 8), [3, 2, 1]);
      assert.deepEqual(second.chain.models.lineage(second.chain.tree.genesis, 8), []);
      await second.store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a reopened store rebuilds the head at every block; one from before the table is backfilled', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-model-head-'));
    try {
      const first = await open(dir);
      const blocks = forgeBranch(first.chain, first.chain.tip, [
        { miner, entries: [model(1, null)] },
        { miner },
        {
          miner,
          entries: [
            createEntry({ kind: 'knowledge', content: 'k', metadata: [] }, miner, at),
            model(2, hash(1)),
          ],
        },
      ]);
      for (const b of blocks) assert.equal(codeOf(await first.chain.processBlock(b)), 'connected');
      await first.store.apply(first.chain.takeUpdate());
      const next = forgeBranch(first.chain, first.chain.tip, [{ miner, entries: [model(3, hash(2))] }])[0]!;
      const stale = forgeBranch(first.chain, first.chain.tip, [
        { miner, entries: [model(2, hash(1), coordinator, 52)] },
      ])[0]!;
      const fork = forgeBranch(first.chain, first.chain.tree.mainAt(1)!, [
        { miner, entries: [model(2, hash(1), coordinator, 53)] },
      ])[0]!;
      await first.store.close();

      const second = await open(dir);
      assert.equal(second.chain.tipModel?.round, 2);
      assert.equal(codeOf(await second.chain.processBlock(stale)), 'model-round-not-next');
      // Block 1's head is version 1: a side block on it carrying another version 2 is valid there.
      assert.equal(codeOf(await second.chain.processBlock(fork)), 'side');
      assert.equal(second.chain.models.at(second.chain.tree.genesis), undefined);
      await second.store.apply(second.chain.takeUpdate());
      await second.store.close();

      // A store written before model entries were kept apart: no rows, no completion key.
      const db = new Database(path.join(dir, 'chain.db'));
      db.exec(`DELETE FROM "ModelEntry"; DELETE FROM "StoreMeta" WHERE "key" = 'modelEntries'`);
      db.close();
      const third = await open(dir);
      assert.equal(third.chain.tipModel?.round, 2, 'backfilled from the stored blocks');
      assert.equal(codeOf(await third.chain.processBlock(next)), 'connected');
      assert.equal(third.chain.tipModel?.round, 3);
      await third.store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
