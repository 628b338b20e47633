/**
 * The node store on a real SQLite file: migrations at open (and their agreement with the Prisma
 * CLI), restoring the exact chain state after close and reopen (tip, blocks and their stale
 * reasons, orphans, mempool order), the chain-identity guard, and idempotent writes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createClient } from '@libsql/client';
import { type Hex, toHex } from '../chain/bytes.ts';
import { Chain, type ChainUpdate, type ProcessResult } from '../chain/chain.ts';
import { genesisBlock } from '../chain/genesis.ts';
import { chainIdHex, type NetworkConfig } from '../chain/network-config.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import { SOURCE } from '../mempool/mempool.ts';
import {
  forgeBlock,
  forgeBranch,
  forgeChain,
  knowledgeEntry,
  TEST_NOW,
  testChain,
  testKey,
  testNetwork,
} from '../testing/forge.ts';
import { applyMigrations, readMigrations } from './migrate.ts';
import { NodeStore } from './node-store.ts';

const ROOT = path.join(import.meta.dirname, '../..');
const MIGRATIONS = path.join(ROOT, 'prisma/node/migrations');
/** The migrations this version ships, in order. */
const SHIPPED = [
  '0001_init',
  '0002_config_entries',
  '0003_mempool_origin',
  '0004_model_entries',
  '0005_messaging',
  '0006_block_entries',
  '0007_block_chain_work',
  '0008_outbox_pending_index',
];
const config = testNetwork();
const GENESIS = genesisBlock(config);
const author = testKey(1);
const rival = testKey(2);
const third = testKey(3);
const entry = (tag: string | number) =>
  knowledgeEntry(author, config.genesisTimestamp + 1_000, `store test entry ${tag}`);

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const openStore = (file: string, cfg: NetworkConfig = config) =>
  NodeStore.open({ file, chainIdHex: chainIdHex(cfg), genesisHashHex: genesisBlock(cfg).hashHex });

interface TestNode {
  readonly store: NodeStore;
  readonly chain: Chain;
  /** Processes a block and commits what it changed, as a node does. */
  submit(block: SealedBlock, from?: string): Promise<ProcessResult>;
  commit(): Promise<ChainUpdate>;
}

/** Opens the store, restores a chain from it; a tiny block cache makes reorgs read the store. */
async function openNode(file: string, clock: { now: number }, mempoolMaxEntries?: number): Promise<TestNode> {
  const store = await openStore(file);
  const chain = new Chain({
    config,
    mempoolMaxEntries,
    loadBlock: (h) => store.loadBlock(h),
    entryIndex: store,
    now: () => clock.now,
    recentBlockCache: 2,
  });
  chain.restore(await store.load());
  const commit = async () => {
    const u = chain.takeUpdate();
    await store.apply(u);
    return u;
  };
  return {
    store,
    chain,
    commit,
    async submit(block, from) {
      const r = await chain.processBlock(block, from);
      await commit();
      return r;
    },
  };
}

/** Every row of every table of a SQLite file, blobs as hex, read through a connection of its own. */
async function dumpDatabase(file: string): Promise<Record<string, unknown[]>> {
  const db = createClient({ url: `file:${file}` });
  try {
    const tables = await db.execute(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`);
    const out: Record<string, unknown[]> = {};
    for (const t of tables.rows) {
      const name = String(t.name);
      const rs = await db.execute(`SELECT * FROM "${name}" ORDER BY rowid`);
      out[name] = rs.rows.map((row) =>
        rs.columns.map((_, i) => {
          const v = row[i];
          return v instanceof ArrayBuffer ? toHex(new Uint8Array(v)) : v;
        }),
      );
    }
    return out;
  } finally {
    db.close();
  }
}

const tableCounts = async (store: NodeStore) => ({
  blocks: await (await store.inspect()).block.count(),
  heads: await (await store.inspect()).chainHead.count(),
  orphans: await (await store.inspect()).orphan.count(),
  mempool: await (await store.inspect()).mempoolEntry.count(),
  meta: await (await store.inspect()).storeMeta.count(),
});

const sha256Hex = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const ids = (entries: readonly SealedEntry[]) => entries.map((e) => e.idHex);

test('a fresh store is migrated like `prisma migrate deploy` and loads as just the genesis head', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'nested', 'node.db');
  const store = await openStore(file);
  try {
    const rows = await (await store.inspect()).$queryRawUnsafe<
      { migration_name: string; checksum: string; finished_at: unknown; applied_steps_count: unknown }[]
    >('SELECT migration_name, checksum, finished_at, applied_steps_count FROM _prisma_migrations');
    const fileBytes = await readFile(path.join(MIGRATIONS, '0001_init/migration.sql'));
    assert.deepEqual(
      rows.map((r) => r.migration_name),
      SHIPPED,
    );
    assert.equal(rows[0]!.migration_name, '0001_init');
    assert.equal(rows[0]!.checksum, sha256Hex(fileBytes), 'checksum is the sha256 of the migration file');
    assert.notEqual(rows[0]!.finished_at, null);
    assert.equal(Number(rows[0]!.applied_steps_count), 1);
    // chainId, and the keys saying the (empty) model-entry table and chainWork column are complete.
    assert.deepEqual(await tableCounts(store), { blocks: 0, heads: 0, orphans: 0, mempool: 0, meta: 3 });
    const [page] = await (await store.inspect()).$queryRawUnsafe<{ page_size: unknown }[]>(
      'PRAGMA page_size',
    );
    assert.equal(Number(page!.page_size), 16_384, 'a new store file gets 16 KB pages');
    assert.deepEqual(await (await store.inspect()).storeMeta.findUnique({ where: { key: 'chainId' } }), {
      key: 'chainId',
      value: chainIdHex(config),
    });
    assert.deepEqual(await store.load(), {
      blocks: [],
      headHashHex: GENESIS.hashHex,
      orphans: [],
      mempool: [],
    });
    assert.equal(await store.loadBlock(GENESIS.hashHex), undefined, 'genesis is derived, not stored');
  } finally {
    await store.close();
  }
  // Reopening applies nothing again.
  const again = await openStore(file);
  try {
    const n = await (await again.inspect()).$queryRawUnsafe<{ n: unknown }[]>(
      'SELECT count(*) AS n FROM _prisma_migrations',
    );
    assert.equal(Number(n[0]!.n), SHIPPED.length);
    assert.equal((await again.load()).headHashHex, GENESIS.hashHex);
  } finally {
    await again.close();
  }
});

test('close and reopen restores the exact state: tip, blocks, stale reasons, orphans, mempool order', async (t) => {
  const file = path.join(await tempDir(t), 'node.db');
  // The clock moves between steps, so orphans and blocks carry distinct arrival times.
  const clock = { now: TEST_NOW };
  const tick = () => {
    clock.now += 1_000;
  };
  const node = await openNode(file, clock);
  const { chain } = node;
  const e = Array.from({ length: 14 }, (_, i) => entry(`restore-${i}`));
  for (const x of e.slice(0, 8)) assert.equal(chain.addEntry(x).status, 'added');
  await node.commit();

  const genesis = chain.tip;
  const nodeOf = (b: SealedBlock) => chain.tree.get(b.hashHex)!;
  const A = forgeBranch(chain, genesis, [
    { entries: [e[0]!, e[1]!] },
    { entries: [e[2]!] },
    { entries: [e[3]!, e[4]!] },
    { entries: [e[5]!] },
  ]);
  for (const b of A) {
    tick();
    assert.equal((await node.submit(b)).status, 'connected');
  }
  // B3: a lighter branch off A2, stays on the side.
  const [B3] = forgeBranch(chain, nodeOf(A[1]!), [{ miner: rival, entries: [e[8]!] }]);
  tick();
  assert.equal((await node.submit(B3!)).status, 'side');
  // C2..C5 off A1 outgrow A: A2..A4 are reorged out, their entries return to the mempool.
  const C = forgeBranch(chain, nodeOf(A[0]!), [
    { miner: rival, entries: [e[2]!] },
    { miner: rival, entries: [e[9]!] },
    { miner: rival, entries: [e[6]!] },
    { miner: rival },
  ]);
  for (const b of C.slice(0, 3)) {
    tick();
    assert.equal((await node.submit(b)).status, 'side');
  }
  tick();
  assert.deepEqual(await node.submit(C[3]!), { status: 'reorg', hashHex: C[3]!.hashHex, depth: 3 });
  assert.deepEqual(chain.mempool.ids(), ids([e[7]!, e[3]!, e[4]!, e[5]!]));
  for (const x of [e[10]!, e[11]!]) assert.equal(chain.addEntry(x).status, 'added');
  await node.commit();

  // A comes back (A5 side, then A6 wins): C2..C5 reorged out, A2..A4 and A5 back on the main
  // chain. Processed as one batch with an entry arriving in between, committed once.
  const [A5, A6] = forgeBranch(chain, nodeOf(A[3]!), [{ entries: [e[10]!] }, { entries: [e[11]!] }]);
  tick();
  assert.equal((await chain.processBlock(A5!)).status, 'side');
  assert.equal(chain.addEntry(e[12]!).status, 'added');
  tick();
  assert.deepEqual(await chain.processBlock(A6!), { status: 'reorg', hashHex: A6!.hashHex, depth: 4 });
  await node.commit();
  const mainBlocks = [...A, A5!, A6!];
  assert.equal(chain.tip.hashHex, A6!.hashHex);
  assert.deepEqual(chain.mempool.ids(), ids([e[7]!, e[12]!, e[9]!, e[6]!]));

  // Orphans D9 then D8 (their ancestor D7 withheld), from two peers.
  const [D7, D8, D9] = forgeBranch(chain, chain.tip, [
    { miner: third, entries: [e[7]!] },
    { miner: third, entries: [e[13]!] },
    { miner: third },
  ]);
  tick();
  assert.equal((await node.submit(D9!, 'peer-one')).status, 'orphan');
  tick();
  assert.equal((await node.submit(D8!, 'peer-two')).status, 'orphan');

  const before = {
    tip: chain.tip.hashHex,
    height: chain.tip.height,
    work: chain.tip.chainWork,
    size: chain.tree.size,
    main: Array.from({ length: chain.tip.height + 1 }, (_, h) => chain.tree.mainAt(h)!.hashHex),
    orphans: chain.orphans.all().map((o) => [o.block.hashHex, o.receivedAt, o.from]),
    mempool: chain.mempool.ids(),
  };
  assert.deepEqual(
    before.orphans.map(([h]) => h),
    [D9!.hashHex, D8!.hashHex],
  );
  await node.store.close();

  const reopened = await openNode(file, clock);
  t.after(() => reopened.store.close());
  const r = reopened.chain;
  assert.equal(r.tip.hashHex, before.tip);
  assert.equal(r.tip.height, 6);
  assert.equal(r.tip.chainWork, before.work);
  assert.equal(r.tree.size, before.size);
  assert.deepEqual(
    Array.from({ length: r.tip.height + 1 }, (_, h) => r.tree.mainAt(h)!.hashHex),
    before.main,
  );
  for (const b of [B3!, ...C]) assert.equal(r.tree.get(b.hashHex)?.onMain, false, 'stale blocks are known');
  assert.deepEqual(
    r.orphans.all().map((o) => [o.block.hashHex, o.receivedAt, o.from]),
    before.orphans,
  );
  assert.deepEqual(r.mempool.ids(), before.mempool, 'same mempool entries in the same order');
  assert.equal(r.mainBlockOf(e[2]!.idHex) !== undefined, true);
  assert.equal(r.mainBlockOf(e[9]!.idHex) !== undefined, false);

  // The Block table: exactly the forged blocks (genesis is derived), each with its stale reason.
  const rows = await (await reopened.store.inspect()).block.findMany({
    select: { hash: true, height: true, prevHash: true, staleReason: true },
  });
  const expected = new Map<Hex, string | null>([
    ...mainBlocks.map((b) => [b.hashHex, null] as const),
    [B3!.hashHex, 'side-chain'],
    ...C.map((b) => [b.hashHex, 'reorged-out'] as const),
  ]);
  assert.deepEqual(
    new Map(rows.map((row) => [toHex(row.hash), row.staleReason])),
    expected,
    'main blocks null, B3 side-chain, C2..C5 reorged-out (A2..A5 cleared when they came back)',
  );
  const all = [...mainBlocks, B3!, ...C];
  for (const row of rows) {
    const b = all.find((x) => x.hashHex === toHex(row.hash))!;
    assert.equal(row.height, b.header.height);
    assert.deepEqual(new Uint8Array(row.prevHash), b.header.prevHash);
  }

  // loadBlock hands back byte-identical blocks, and nothing for orphans or unknown hashes.
  for (const b of all) {
    const loaded = await reopened.store.loadBlock(b.hashHex);
    assert.ok(loaded, `block ${b.header.height} loads`);
    assert.deepEqual(loaded.encoded, b.encoded);
    assert.equal(loaded.hashHex, b.hashHex);
    assert.deepEqual(loaded.header, b.header);
    assert.deepEqual(ids(loaded.entries), ids(b.entries));
  }
  assert.equal(await reopened.store.loadBlock(D9!.hashHex), undefined);
  assert.equal(await reopened.store.loadBlock('ab'.repeat(32)), undefined);

  // The orphans still connect when their ancestor arrives after the reopen.
  tick();
  assert.equal((await reopened.submit(D7!)).status, 'connected');
  assert.equal(r.tip.hashHex, D9!.hashHex);
  assert.equal(r.orphans.size, 0);
  assert.deepEqual(r.mempool.ids(), ids([e[12]!, e[9]!, e[6]!]), 'D7 included e7');
  // A deep reorg on the restored chain, whose block cache is empty: the disconnected blocks
  // (A4..A6, D7..D9) come from the store and their entries return to the mempool.
  const E = forgeBranch(
    r,
    r.tree.get(A[2]!.hashHex)!,
    Array.from({ length: 7 }, () => ({ miner: rival })),
  );
  for (const b of E.slice(0, -1)) assert.equal((await reopened.submit(b)).status, 'side');
  assert.deepEqual(await reopened.submit(E.at(-1)!), {
    status: 'reorg',
    hashHex: E.at(-1)!.hashHex,
    depth: 6,
  });
  assert.deepEqual(r.mempool.ids(), ids([e[12]!, e[9]!, e[6]!, e[5]!, e[10]!, e[11]!, e[7]!, e[13]!]));
  const final = {
    tip: r.tip.hashHex,
    mempool: r.mempool.ids(),
    stale: new Map(
      (await (await reopened.store.inspect()).block.findMany()).map((row) => [
        toHex(row.hash),
        row.staleReason,
      ]),
    ),
  };
  assert.equal(await (await reopened.store.inspect()).orphan.count(), 0);
  assert.equal(final.stale.get(D9!.hashHex), 'reorged-out');
  assert.equal(final.stale.get(A[3]!.hashHex), 'reorged-out');
  assert.equal(final.stale.get(A[2]!.hashHex), null);
  assert.equal(final.stale.get(B3!.hashHex), 'side-chain');
  await reopened.store.close();

  const last = await openNode(file, clock);
  t.after(() => last.store.close());
  assert.equal(last.chain.tip.hashHex, final.tip);
  assert.equal(last.chain.tip.height, 10);
  assert.deepEqual(last.chain.mempool.ids(), final.mempool);
  assert.equal(last.chain.orphans.size, 0);
});

test('a 1,000-block reorg loads the blocks it disconnects from the store in well under a second', async (t) => {
  const dir = await tempDir(t);
  const clock = { now: TEST_NOW };
  const node = await openNode(path.join(dir, 'chain.db'), clock);
  const main = forgeChain(node.chain, node.chain.tip, 1_000, { miner: testKey(20) });
  for (const b of main) assert.equal((await node.chain.processBlock(b)).status, 'connected');
  await node.commit();
  const rivalChain = forgeChain(node.chain, node.chain.tree.genesis, 1_001, { miner: testKey(21) });
  for (const b of rivalChain.slice(0, 1_000)) await node.chain.processBlock(b);
  await node.commit();
  // The 1,001st rival block makes the rival chain heavier: every main block is loaded first
  // (the recent cache holds 2). Through Prisma each load took 2.3 ms: 1,000 of them 2.3 s, a
  // day of a field device's own blocks (8,640) 20 s, during which the node answered nobody.
  const t0 = performance.now();
  const r = await node.chain.processBlock(rivalChain.at(-1)!);
  const ms = performance.now() - t0;
  assert.deepEqual(r, { status: 'reorg', hashHex: rivalChain.at(-1)!.hashHex, depth: 1_000 });
  assert.ok(ms < 1_000, `the reorg took ${ms.toFixed(0)} ms`);
  t.diagnostic(`1,000-block reorg in ${ms.toFixed(0)} ms`);
  await node.commit();
  await node.store.close();
});

test('mempool order survives an entry that leaves and returns within one committed update', async (t) => {
  const file = path.join(await tempDir(t), 'node.db');
  const clock = { now: TEST_NOW };
  const node = await openNode(file, clock);
  const { chain } = node;
  const [x, y] = [entry('order-x'), entry('order-y')];
  assert.equal(chain.addEntry(x).status, 'added');
  await node.commit();
  // One batch: x goes into P1, y arrives, a rival branch reorgs P1 out and x comes back.
  const [P1] = forgeBranch(chain, chain.tip, [{ entries: [x] }]);
  const R = forgeBranch(chain, chain.tip, [{ miner: rival }, { miner: rival }]);
  assert.equal((await chain.processBlock(P1!)).status, 'connected');
  assert.equal(chain.addEntry(y).status, 'added');
  for (const b of R) await chain.processBlock(b);
  assert.equal(chain.tip.hashHex, R[1]!.hashHex);
  assert.deepEqual(chain.mempool.ids(), ids([y, x]), 'in memory: y, then x re-admitted');
  await node.commit();
  await node.store.close();
  const reopened = await openNode(file, clock);
  t.after(() => reopened.store.close());
  assert.deepEqual(reopened.chain.mempool.ids(), ids([y, x]));
});

test('entries a reorg returned beyond the mempool bound survive a restart: pool, then hold', async (t) => {
  const file = path.join(await tempDir(t), 'node.db');
  const clock = { now: TEST_NOW };
  const node = await openNode(file, clock, 3);
  const { chain } = node;
  const mined = Array.from({ length: 8 }, (_, i) => entry(`held-${i}`));
  const [P1] = forgeBranch(chain, chain.tip, [{ entries: mined }]);
  assert.equal((await node.submit(P1!)).status, 'connected');
  // A heavier rival without P1: its 8 entries come back to a pool of 3.
  // (Block processing readmits them as `returned`, as ChainService does.)
  const genesis = chain.tree.get(GENESIS.hashHex)!;
  const done = chain.mempool.useSource(SOURCE.returned);
  for (const b of forgeBranch(chain, genesis, [{ miner: rival }, { miner: rival }])) await node.submit(b);
  done();
  assert.equal(chain.mempool.size, 3);
  assert.equal(chain.mempool.returned.size, 5);
  // One of the held ones is mined meanwhile: it leaves the hold and the store.
  const [B3] = forgeBranch(chain, chain.tip, [{ miner: rival, entries: [mined[7]!] }]);
  assert.equal((await node.submit(B3!)).status, 'connected');
  assert.equal(chain.mempool.returned.size, 4);
  const pool = chain.mempool.ids();
  const held = mined.filter((e) => chain.mempool.returned.has(e.idHex));
  assert.equal(held.length, 4);
  await node.store.close();

  const reopened = await openNode(file, clock, 3);
  t.after(() => reopened.store.close());
  assert.deepEqual(reopened.chain.mempool.ids(), pool, 'the pool as it was');
  assert.equal(
    reopened.chain.mempool.returned.size,
    4,
    'the hold as it was: nothing lost, the mined one gone',
  );
  for (const e of held) assert.ok(reopened.chain.mempool.returned.has(e.idHex), e.idHex);
});

test('opening a store with another network config fails clearly and changes nothing', async (t) => {
  const file = path.join(await tempDir(t), 'node.db');
  const clock = { now: TEST_NOW };
  const node = await openNode(file, clock);
  const x = entry('identity');
  node.chain.addEntry(x);
  for (const b of forgeBranch(node.chain, node.chain.tip, [{ entries: [x] }, {}, {}]))
    assert.equal((await node.submit(b)).status, 'connected');
  node.chain.addEntry(entry('identity-pending'));
  await node.commit();
  const state = await node.store.load();
  await node.store.close();
  const rowsBefore = await dumpDatabase(file);

  const other = testNetwork({ name: 'cairn-other' });
  assert.notEqual(chainIdHex(other), chainIdHex(config));
  await assert.rejects(openStore(file, other), (err: Error) => {
    assert.match(err.message, new RegExp(`belongs to chain ${chainIdHex(config)}`));
    assert.match(err.message, new RegExp(`not ${chainIdHex(other)}`));
    assert.ok(err.message.includes(file), 'names the file');
    return true;
  });
  assert.deepEqual(await dumpDatabase(file), rowsBefore, 'not one row changed');

  const again = await openStore(file);
  t.after(() => again.close());
  assert.deepEqual(await again.load(), state);
});

test('applying an update whose blocks are already stored adds no rows and changes no state', async (t) => {
  const file = path.join(await tempDir(t), 'node.db');
  const clock = { now: TEST_NOW };
  const node = await openNode(file, clock);
  const { chain, store } = node;
  const e = Array.from({ length: 6 }, (_, i) => entry(`idem-${i}`));
  for (const x of e) chain.addEntry(x);
  const blocks = forgeBranch(chain, chain.tip, [
    { entries: [e[0]!] },
    { entries: [e[1]!, e[2]!] },
    { entries: [e[3]!] },
    {},
  ]);
  const [side] = forgeBranch(chain, chain.tree.get(GENESIS.hashHex)!, [{ miner: rival }]);
  const orphan = forgeBranch(chain, chain.tip, [{}, {}, {}]);
  for (const b of blocks.slice(0, 3)) await chain.processBlock(b);
  await chain.processBlock(side!);
  await chain.processBlock(orphan[2]!, 'peer');
  const update = chain.takeUpdate();
  assert.equal(update.blocks.length, 4);
  await store.apply(update);
  const counts = await tableCounts(store);
  assert.deepEqual(counts, { blocks: 4, heads: 1, orphans: 1, mempool: 2, meta: 3 });
  const state = await store.load();

  // The same update again: same rows, same state (mempool order included).
  await store.apply(update);
  assert.deepEqual(await tableCounts(store), counts);
  assert.deepEqual(await store.load(), state);

  // A second chain restored from an older snapshot re-processes stored blocks plus one new one:
  // its update carries blocks that are already stored.
  const behind = new Chain({ config, loadBlock: (h) => store.loadBlock(h), now: () => clock.now });
  for (const b of [blocks[0]!, blocks[1]!, blocks[2]!, blocks[3]!, side!])
    assert.notEqual((await behind.processBlock(b)).status, 'invalid');
  const overlap = behind.takeUpdate();
  assert.equal(overlap.blocks.length, 5, 'four stored blocks and one new');
  await store.apply(overlap);
  assert.equal(await (await store.inspect()).block.count(), 5);
  const rows = await (await store.inspect()).block.findMany({ orderBy: { height: 'asc' } });
  assert.deepEqual(
    rows.map((row) => [toHex(row.hash), row.staleReason]),
    [
      [blocks[0]!.hashHex, null],
      [side!.hashHex, 'side-chain'],
      [blocks[1]!.hashHex, null],
      [blocks[2]!.hashHex, null],
      [blocks[3]!.hashHex, null],
    ],
  );
  assert.equal((await store.load()).headHashHex, blocks[3]!.hashHex);
  await store.close();
  const reopened = await openNode(file, clock);
  t.after(() => reopened.store.close());
  assert.equal(reopened.chain.tip.hashHex, blocks[3]!.hashHex);
  assert.equal(reopened.chain.tree.size, 6);
});

test('applyMigrations applies new migrations atomically and refuses edited ones', async (t) => {
  const dir = await tempDir(t);
  const migrations = path.join(dir, 'migrations');
  await cp(MIGRATIONS, migrations, { recursive: true });
  const file = path.join(dir, 'm.db');
  const db = createClient({ url: `file:${file}` });
  t.after(() => db.close());
  const recorded = async () =>
    (
      await db.execute('SELECT migration_name, checksum FROM _prisma_migrations ORDER BY migration_name')
    ).rows.map((r) => [String(r.migration_name), String(r.checksum)]);
  const tables = async () =>
    (await db.execute(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)).rows.map((r) =>
      String(r.name),
    );

  assert.deepEqual(await applyMigrations(db, await readMigrations(migrations)), SHIPPED);
  assert.deepEqual(await applyMigrations(db, await readMigrations(migrations)), []);
  const original = await readFile(path.join(migrations, '0001_init/migration.sql'));
  assert.deepEqual((await recorded())[0], ['0001_init', sha256Hex(original)]);

  // A later migration is applied once and recorded with its checksum.
  const addSql = 'CREATE TABLE "Note" ("id" INTEGER NOT NULL PRIMARY KEY, "text" TEXT NOT NULL);\n';
  await cp(path.join(migrations, '0001_init'), path.join(migrations, '0102_note'), { recursive: true });
  await writeFile(path.join(migrations, '0102_note/migration.sql'), addSql);
  assert.deepEqual(await applyMigrations(db, await readMigrations(migrations)), ['0102_note']);
  assert.ok((await tables()).includes('Note'));

  // A migration that fails halfway leaves nothing behind: no table, no record.
  await cp(path.join(migrations, '0102_note'), path.join(migrations, '0103_broken'), { recursive: true });
  await writeFile(
    path.join(migrations, '0103_broken/migration.sql'),
    'CREATE TABLE "Half" ("id" INTEGER NOT NULL PRIMARY KEY);\nCREATE TABLE "Block" ("x" INTEGER);\n',
  );
  await assert.rejects(applyMigrations(db, await readMigrations(migrations)), /migration 0103_broken failed/);
  assert.equal((await tables()).includes('Half'), false, 'the failed migration was rolled back');
  assert.deepEqual(
    (await recorded()).map(([name]) => name),
    [...SHIPPED, '0102_note'],
  );
  await rm(path.join(migrations, '0103_broken'), { recursive: true });

  // Editing an applied migration is refused, before anything else is applied.
  await writeFile(path.join(migrations, '0001_init/migration.sql'), `${original}\n-- edited\n`);
  await cp(path.join(migrations, '0102_note'), path.join(migrations, '0104_later'), { recursive: true });
  await writeFile(
    path.join(migrations, '0104_later/migration.sql'),
    'CREATE TABLE "Later" ("id" INTEGER);\n',
  );
  await assert.rejects(
    applyMigrations(db, await readMigrations(migrations)),
    /migration 0001_init was changed after it was applied/,
  );
  assert.equal((await tables()).includes('Later'), false);
  assert.deepEqual((await recorded())[0], ['0001_init', sha256Hex(original)]);
});

test('NodeStore.open refuses a store whose recorded migration differs from the shipped one', async (t) => {
  const file = path.join(await tempDir(t), 'node.db');
  await (await openStore(file)).close();
  const db = createClient({ url: `file:${file}` });
  await db.execute(`UPDATE _prisma_migrations SET checksum = '${sha256Hex('something else')}'`);
  db.close();
  await assert.rejects(openStore(file), /migration 0001_init was changed after it was applied/);
});

const execFileAsync = promisify(execFile);
/** Runs the Prisma CLI (the repo's own install, on this Node) against a SQLite file. */
async function prismaCli(args: string[], file: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules/prisma/build/index.js'),
        ...args,
        '--config',
        'prisma/node/prisma.config.ts',
      ],
      { cwd: ROOT, env: { ...process.env, NODE_STORE_URL: `file:${file}` }, timeout: 60_000 },
    );
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('the Prisma CLI agrees: a NodeStore file has nothing pending, and a CLI-deployed file opens as is', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'node.db');
  const clock = { now: TEST_NOW };
  const node = await openNode(file, clock);
  for (const b of forgeBranch(node.chain, node.chain.tip, [{}, {}])) await node.submit(b);
  await node.store.close();

  const status = await prismaCli(['migrate', 'status'], file);
  assert.equal(status.code, 0, status.output);
  assert.match(status.output, /Database schema is up to date/);
  const deploy = await prismaCli(['migrate', 'deploy'], file);
  assert.equal(deploy.code, 0, deploy.output);
  assert.match(deploy.output, /No pending migrations to apply/);

  // The other way round: the CLI migrates an empty file; NodeStore accepts its record (same
  // checksum), applies nothing more, and the schema is the one NodeStore creates.
  const cliFile = path.join(dir, 'cli.db');
  const cliDeploy = await prismaCli(['migrate', 'deploy'], cliFile);
  assert.equal(cliDeploy.code, 0, cliDeploy.output);
  const store = await openStore(cliFile);
  const rows = await (await store.inspect()).$queryRawUnsafe<{ migration_name: string; checksum: string }[]>(
    'SELECT migration_name, checksum FROM _prisma_migrations',
  );
  await store.close();
  assert.deepEqual(
    rows.map((r) => [r.migration_name, r.checksum]),
    await Promise.all(
      SHIPPED.map(async (m) => [m, sha256Hex(await readFile(path.join(MIGRATIONS, m, 'migration.sql')))]),
    ),
  );
  const schemaOf = async (f: string) => {
    const db = createClient({ url: `file:${f}` });
    try {
      return (await db.execute('SELECT type, name, sql FROM sqlite_master ORDER BY name')).rows.map((r) => [
        r.type,
        r.name,
        r.sql,
      ]);
    } finally {
      db.close();
    }
  };
  assert.deepEqual(await schemaOf(cliFile), await schemaOf(file));

  // The check can fail: without the record, the CLI lists the migration as pending.
  const db = createClient({ url: `file:${file}` });
  await db.execute('DELETE FROM _prisma_migrations');
  db.close();
  const pending = await prismaCli(['migrate', 'status'], file);
  assert.notEqual(pending.code, 0);
  assert.match(pending.output, /have not yet been applied:\s*0001_init/);
});

test('one SQLite library in the process: the store writer, the migrator and Prisma resolve the same libsql', () => {
  // Two copies of SQLite on one WAL file do not see each other's locks.
  const req = createRequire(import.meta.url);
  const client = req.resolve('@libsql/client');
  assert.equal(createRequire(req.resolve('@prisma/adapter-libsql')).resolve('@libsql/client'), client);
  assert.equal(createRequire(client).resolve('libsql'), req.resolve('libsql'));
});

test('a closed store is one self-contained file: the .db alone, copied elsewhere, opens with every block', async (t) => {
  const dir = await tempDir(t);
  const clock = { now: config.genesisTimestamp + 60_000 };
  const node = await openNode(path.join(dir, 'a', 'node.db'), clock);
  const blocks = forgeBranch(node.chain, node.chain.tip, [{ entries: [entry('copy-1')] }, {}, {}]);
  for (const b of blocks) assert.equal((await node.submit(b)).status, 'connected');
  await node.store.close();
  await cp(path.join(dir, 'a', 'node.db'), path.join(dir, 'b', 'node.db'));
  const copy = await openNode(path.join(dir, 'b', 'node.db'), clock);
  try {
    assert.equal(copy.chain.tip.hashHex, blocks[2]!.hashHex);
    assert.equal(await copy.store.blockCount(), 3);
  } finally {
    await copy.store.close();
  }
});

test('a store path that a file: URL would read differently is refused', async (t) => {
  const dir = await tempDir(t);
  for (const name of ['a#b', 'a?b', 'a%20b']) {
    await assert.rejects(openStore(path.join(dir, name, 'node.db')), /'#', '\?' and '%' are not supported/);
  }
});

test('readEncodedBlocks returns the stored bytes of the blocks asked for, as Uint8Arrays', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-read-'));
  try {
    const t = testChain();
    const blocks = forgeChain(t.chain, t.chain.tip, 3);
    for (const b of blocks) await t.submit(b);
    const store = await NodeStore.open({
      file: path.join(dir, 'chain.db'),
      chainIdHex: chainIdHex(t.chain.config),
      genesisHashHex: t.chain.genesis.hashHex,
    });
    await store.apply(t.chain.takeUpdate());
    const got = store.readEncodedBlocks([blocks[2]!.hashHex, 'ff'.repeat(32), blocks[0]!.hashHex]);
    await store.close();
    assert.deepEqual([...got.keys()], [blocks[2]!.hashHex, blocks[0]!.hashHex]);
    for (const [h, raw] of got) {
      assert.ok(raw instanceof Uint8Array);
      assert.deepEqual(raw, blocks.find((b) => b.hashHex === h)!.encoded);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('applyMigrations waits for another process’s write lock on every migration, not only the first', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'busy.db');
  const db = createClient({ url: `file:${file}` });
  t.after(() => db.close());
  const all = await readMigrations(MIGRATIONS);
  // Another connection, on a thread of its own (SQLite's busy wait blocks this one), takes the
  // write lock right as the second migration comes up and holds it for 300 ms.
  const taken = new Int32Array(new SharedArrayBuffer(4));
  const holder = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const db = new (require(workerData.libsql))(workerData.file);
     parentPort.on('message', () => {
       db.exec('BEGIN IMMEDIATE');
       Atomics.store(workerData.taken, 0, 1);
       Atomics.notify(workerData.taken, 0);
       setTimeout(() => { db.exec('ROLLBACK'); db.close(); parentPort.close(); }, 300);
     });`,
    { eval: true, workerData: { libsql: createRequire(import.meta.url).resolve('libsql'), file, taken } },
  );
  t.after(() => holder.terminate());
  const timed = {
    *[Symbol.iterator]() {
      for (const [i, m] of all.entries()) {
        if (i === 1) {
          holder.postMessage('lock');
          Atomics.wait(taken, 0, 0, 5_000);
        }
        yield m;
      }
    },
  } as unknown as typeof all;
  const started = performance.now();
  assert.deepEqual(await applyMigrations(db, timed), SHIPPED);
  assert.equal(Atomics.load(taken, 0), 1, 'the lock was held by the other connection');
  assert.ok(performance.now() - started >= 250, 'it waited for the lock');
});

test('entry ids are looked up in the store index: an old entry is refused again after reopen, and a store from before the index is backfilled', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'chain.db');
  const clock = { now: TEST_NOW };
  const first = await openNode(file, clock);
  const old = [entry('indexed a'), entry('indexed b'), entry('indexed c')];
  const branch = forgeBranch(first.chain, first.chain.tip, [
    { entries: old.slice(0, 2) },
    {},
    { entries: [old[2]!] },
  ]);
  for (const b of branch) assert.equal((await first.submit(b)).status, 'connected');
  const holders = first.store.holders([old[0]!.idHex, old[2]!.idHex, entry('never mined').idHex]);
  assert.deepEqual(
    new Map([...holders].map(([id, hs]) => [id, hs.map((h) => [h.hashHex, h.height])])),
    new Map([
      [old[0]!.idHex, [[branch[0]!.hashHex, 1]]],
      [old[2]!.idHex, [[branch[2]!.hashHex, 3]]],
    ]),
  );
  await first.store.close();

  // A store written before 0006: no BlockEntry table, no record of the migration.
  const db = createClient({ url: `file:${file}` });
  await db.execute('DROP TABLE "BlockEntry"');
  await db.execute(`DELETE FROM _prisma_migrations WHERE migration_name = '0006_block_entries'`);
  db.close();

  const again = await openNode(file, clock);
  t.after(() => again.store.close());
  assert.deepEqual(
    [...again.store.holders(old.map((e) => e.idHex)).keys()].sort(),
    old.map((e) => e.idHex).sort(),
    'the migration indexed the entries of the blocks stored before it',
  );
  assert.equal(again.chain.mainBlockOf(old[1]!.idHex)?.hashHex, branch[0]!.hashHex);
  // The chain holds no in-memory index of stored entries: the refusal comes from the store.
  const dup = forgeBlock(again.chain, again.chain.tip, { entries: [entry('fresh'), old[1]!] });
  const r = await again.submit(dup);
  assert.equal(r.status, 'invalid');
  assert.equal(r.status === 'invalid' && r.error.code, 'entry-already-included');
  // A side chain from genesis may carry it (no ancestor of its holds it); the mempool refuses it.
  const side = forgeBlock(again.chain, again.chain.tree.genesis, { entries: [old[1]!], miner: rival });
  assert.equal((await again.submit(side)).status, 'side');
  const added = again.chain.addEntry(old[1]!);
  assert.equal(added.status === 'rejected' && added.reason, 'already-included');
});

test('a store from before chainWork was kept fills it in at its first open, given the genesis target', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'chain.db');
  const clock = { now: TEST_NOW };
  const first = await openNode(file, clock);
  const branch = forgeBranch(first.chain, first.chain.tip, [{}, {}, {}]);
  for (const b of branch) assert.equal((await first.submit(b)).status, 'connected');
  const side = forgeBlock(first.chain, first.chain.tree.mainAt(1)!, { miner: rival });
  assert.equal((await first.submit(side)).status, 'side');
  const work = new Map([...branch, side].map((b) => [b.hashHex, first.chain.tree.get(b.hashHex)!.chainWork]));
  await first.store.close();

  // As 0006 left it: no chainWork column, no key saying it is filled in.
  const db = createClient({ url: `file:${file}` });
  await db.execute('ALTER TABLE "Block" DROP COLUMN "chainWork"');
  await db.execute(`DELETE FROM _prisma_migrations WHERE migration_name = '0007_block_chain_work'`);
  await db.execute(`DELETE FROM "StoreMeta" WHERE "key" = 'chainWork'`);
  db.close();

  await assert.rejects(openStore(file), /needs the genesis target to fill in chainWork/);
  const store = await NodeStore.open({
    file,
    chainIdHex: chainIdHex(config),
    genesisHashHex: GENESIS.hashHex,
    genesisTarget: GENESIS.header.target,
  });
  t.after(() => store.close());
  for (const [hash, w] of work) assert.equal(store.storedHeader(hash)?.chainWork, w, hash);
  assert.equal(store.mainHeader(3)?.hashHex, branch[2]!.hashHex);
  assert.equal(store.storedHeader(side.hashHex)?.onMain, false);
});
