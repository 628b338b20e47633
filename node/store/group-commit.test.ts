/**
 * Group commit on a real node store (SQLite through Prisma): a burst of concurrent writes shares
 * a few transactions, every write is on disk when its promise resolves, and one write that breaks
 * a constraint fails alone.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { genesisBlock } from '../chain/genesis.ts';
import { chainIdHex } from '../chain/network-config.ts';
import { testNetwork } from '../testing/forge.ts';
import { GroupCommit } from './group-commit.ts';
import { NodeStore } from './node-store.ts';

const config = testNetwork();
let dir: string;
let store: NodeStore;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'cairn-group-commit-'));
  store = await NodeStore.open({
    file: path.join(dir, 'node.db'),
    chainIdHex: chainIdHex(config),
    genesisHashHex: genesisBlock(config).hashHex,
  });
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const key = (identity: string) => () => [
  store.prisma.messageKey.create({ data: { identity, record: Buffer.from([1]), updatedAt: 0n } }),
];

test('200 concurrent writes commit in a handful of transactions, each stored when it resolves', async () => {
  const group = new GroupCommit(store.prisma);
  const ids = Array.from({ length: 200 }, (_, i) => `burst-${i}`);
  await Promise.all(
    ids.map(async (id) => {
      await group.commit(key(id));
      // Resolved means committed: the row is there for any reader now.
      assert.ok(await store.prisma.messageKey.findUnique({ where: { identity: id } }), id);
    }),
  );
  assert.equal(await store.prisma.messageKey.count({ where: { identity: { startsWith: 'burst-' } } }), 200);
  // The first write commits alone; everything queued behind it goes in the next one or two.
  assert.ok(group.transactions <= 5, `${group.transactions} transactions for 200 writes`);
});

test('a write that breaks a constraint fails alone; the others in its batch commit', async () => {
  await store.prisma.messageKey.create({
    data: { identity: 'taken', record: Buffer.from([1]), updatedAt: 0n },
  });
  const group = new GroupCommit(store.prisma);
  const first = group.commit(key('lone-0'));
  const results = await Promise.allSettled([
    first,
    group.commit(key('lone-1')),
    group.commit(key('taken')),
    group.commit(key('lone-2')),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
  );
  assert.equal(await store.prisma.messageKey.count({ where: { identity: { startsWith: 'lone-' } } }), 3);
});

test('a batch stays within its bound of operations', async () => {
  const group = new GroupCommit(store.prisma, 10);
  await Promise.all(Array.from({ length: 41 }, (_, i) => group.commit(key(`bounded-${i}`))));
  // One alone, then 40 in batches of at most 10.
  assert.ok(group.transactions >= 5, `${group.transactions} transactions`);
  assert.equal(await store.prisma.messageKey.count({ where: { identity: { startsWith: 'bounded-' } } }), 41);
});
