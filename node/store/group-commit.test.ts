/**
 * Group commit on a real node store's writer connection: a burst of concurrent writes shares one
 * transaction, every write is committed (visible to another connection) when its promise
 * resolves, and one write that breaks a constraint fails alone, all of its statements undone.
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

const insertKey = () =>
  store.writes.connection.prepare(
    `INSERT INTO "MessageKey" ("identity","record","updatedAt") VALUES (?,?,0)`,
  );
const key = (identity: string) => {
  const st = insertKey();
  return () => st.run([identity, new Uint8Array([1])]).changes;
};
/** Prisma reads on its own connection: what any other reader of the file sees. */
const stored = async (prefix: string) =>
  (await store.inspect()).messageKey.count({ where: { identity: { startsWith: prefix } } });

test('200 concurrent writes commit in one transaction, each stored when it resolves', async () => {
  const group = new GroupCommit(store.writes.connection);
  const ids = Array.from({ length: 200 }, (_, i) => `burst-${i}`);
  await Promise.all(
    ids.map(async (id) => {
      assert.equal(await group.commit(key(id)), 1, 'the write hands back its result');
      // Resolved means committed: the row is there for a reader on another connection now.
      assert.ok(await (await store.inspect()).messageKey.findUnique({ where: { identity: id } }), id);
    }),
  );
  assert.equal(await stored('burst-'), 200);
  // Asked for in one turn of the event loop: one transaction, so one fsync.
  assert.equal(group.transactions, 1);
});

test('a write that breaks a constraint fails alone, none of its statements kept; the others commit', async () => {
  await (await store.inspect()).messageKey.create({
    data: { identity: 'taken', record: Buffer.from([1]), updatedAt: 0n },
  });
  const group = new GroupCommit(store.writes.connection);
  const both = (first: string, second: string) => {
    const st = insertKey();
    return () => {
      st.run([first, new Uint8Array([1])]);
      st.run([second, new Uint8Array([1])]);
    };
  };
  const results = await Promise.allSettled([
    group.commit(key('lone-0')),
    group.commit(key('lone-1')),
    group.commit(both('half-0', 'taken')),
    group.commit(key('lone-2')),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'fulfilled', 'rejected', 'fulfilled'],
  );
  assert.match(String((results[2] as PromiseRejectedResult).reason), /UNIQUE/);
  assert.equal(group.transactions, 1);
  assert.equal(await stored('lone-'), 3);
  assert.equal(await stored('half-'), 0, 'the failed write’s first statement was rolled back with it');

  // Alone in its transaction, the same write leaves nothing either.
  await assert.rejects(group.commit(both('half-1', 'taken')), /UNIQUE/);
  assert.equal(await stored('half-'), 0);
  assert.equal(store.writes.connection.inTransaction, false, 'no transaction left open');
});

test('a batch stays within its bound of writes', async () => {
  const group = new GroupCommit(store.writes.connection, 10);
  await Promise.all(Array.from({ length: 41 }, (_, i) => group.commit(key(`bounded-${i}`))));
  assert.equal(group.transactions, 5);
  assert.equal(await stored('bounded-'), 41);
});

test('writes of later turns commit in later transactions, never inside the chain’s own', async () => {
  const group = new GroupCommit(store.writes.connection);
  await group.commit(key('turn-0'));
  await group.commit(key('turn-1'));
  assert.equal(group.transactions, 2);
  // The chain commits synchronously on the same connection while a group write waits.
  const waiting = group.commit(key('turn-2'));
  const before = store.commits;
  await store.apply({
    blocks: [],
    head: undefined,
    finalized: undefined,
    stale: new Map(),
    orphans: new Map(),
    mempool: new Map(),
    events: [],
  });
  assert.equal(store.commits, before + 1);
  await waiting;
  assert.equal(await stored('turn-'), 3);
});
