/**
 * A failed commit never leaves memory ahead of disk: once the store refuses a commit (here a
 * real SQLite file capped with max_page_count, which fails exactly as a full disk does:
 * SQLITE_FULL), the service accepts nothing more, and reopening the store lands on the head it
 * last committed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { signBlock } from '../chain/authoring.ts';
import { Chain } from '../chain/chain.ts';
import { chainIdHex } from '../chain/network-config.ts';
import { verifyNative } from '../chain/signature.ts';
import { CachedVerifier } from '../chain/signature-cache.ts';
import { VerifyPool } from '../chain/verify-pool.ts';
import { createLogger } from '../log.ts';
import { createNodeMetrics } from '../metrics.ts';
import { NodeStore } from '../store/node-store.ts';
import {
  forgeBranch,
  knowledgeEntry,
  TEST_NOW,
  testKey,
  testNetwork,
  unmineHeader,
} from '../testing/forge.ts';
import { ChainService, StorageFailedError } from './chain-service.ts';

const config = testNetwork();

async function openService(
  file: string,
  maxBytes?: number,
  pool?: VerifyPool,
  verifier = new CachedVerifier(),
) {
  let store: NodeStore | undefined;
  const chain = new Chain({ config, loadBlock: (h) => store!.loadBlock(h), now: () => TEST_NOW, verifier });
  store = await NodeStore.open({
    file,
    chainIdHex: chainIdHex(config),
    genesisHashHex: chain.genesis.hashHex,
    maxBytes,
  });
  chain.restore(await store.load());
  const metrics = createNodeMetrics();
  const service = new ChainService(chain, store, verifier, pool, metrics, createLogger('silent'));
  return { chain, store, service, metrics, verifier };
}

/** Blocks of 20 entries with 2 KB of content each: about 40 KB a block. */
function bulkyBlocks(chain: Chain, n: number) {
  const author = testKey(5);
  let k = 0;
  return forgeBranch(
    chain,
    chain.tip,
    Array.from({ length: n }, () => ({
      entries: Array.from({ length: 20 }, () =>
        knowledgeEntry(author, TEST_NOW - 60_000, `${k++}:${'z'.repeat(2000)}`),
      ),
    })),
  );
}

test('after a failed commit nothing more is committed, and the store reopens at the last committed head', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-storage-fail-'));
  const file = path.join(dir, 'chain.db');
  try {
    const { chain, store, service, metrics } = await openService(file, 1 << 20);
    const blocks = bulkyBlocks(chain, 40);
    // Two small batches fit; the 30-block batch (~1.2 MB) cannot.
    const first = await service.submitBlocks(blocks.slice(0, 5), 'sync');
    assert.ok(first.every((r) => r.status === 'connected'));
    const committed = { height: chain.tip.height, hash: chain.tip.hashHex };
    let failed: unknown;
    const events: unknown[] = [];
    service.on('storage-failed', (f) => events.push(f));
    await service.submitBlocks(blocks.slice(5, 35), 'sync').catch((err) => {
      failed = err;
    });
    assert.ok(failed instanceof StorageFailedError, `expected StorageFailedError, got ${failed}`);
    assert.match(failed.failure.reason, /full|SQLITE_FULL/i);
    assert.equal(failed.failure.committedHeight, committed.height);
    assert.equal(service.committedHead.hashHex, committed.hash);
    assert.equal(events.length, 1);
    assert.equal(
      (await metrics.registry.getSingleMetricAsString('cairn_storage_failed')).trim().split('\n').at(-1),
      'cairn_storage_failed 1',
    );
    // The chain in memory went ahead (the failed batch connected there); a small block on top of
    // it would fit in the file, and committing it would store a block whose parents never were.
    assert.ok(chain.tip.height > committed.height);
    await assert.rejects(service.submitBlocks(blocks.slice(35, 36), 'gossip'), StorageFailedError);
    await assert.rejects(
      service.submitEntry(knowledgeEntry(testKey(6), TEST_NOW - 1000, 'later')),
      StorageFailedError,
    );
    await assert.rejects(service.maintenance(), StorageFailedError);
    await store.close();

    // Space is back: the reopened store is at the last committed head, and sync goes on from it.
    const again = await openService(file);
    assert.equal(again.chain.tip.hashHex, committed.hash);
    assert.equal(await again.store.blockCount(), committed.height);
    const rest = await again.service.submitBlocks(blocks.slice(5), 'sync');
    assert.ok(rest.every((r) => r.status === 'connected'));
    assert.equal(again.chain.tip.height, 40);
    await again.store.close();
    const third = await openService(file);
    assert.equal(third.chain.tip.height, 40);
    await third.store.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('work is never free: preverify checks no signature of a block without proof of work, nor after it', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-preverify-'));
  const pool = new VerifyPool(1);
  try {
    const { chain, store, service, verifier } = await openService(
      path.join(dir, 'chain.db'),
      undefined,
      pool,
    );
    const blocks = bulkyBlocks(chain, 6);
    const bad = blocks[3]!;
    const unworked = signBlock(unmineHeader(bad.header), bad.entries, testKey(0));
    const batch = [...blocks.slice(0, 3), unworked, ...blocks.slice(4)];
    await service.preverify(batch);
    assert.deepEqual(
      batch.map((b) => verifier.hasCheckedBlock(b)),
      [true, true, true, false, false, false],
      'signatures checked up to the first block whose header fails, none after',
    );
    await store.close();
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('admitted entries have their signatures checked on the worker pool, not on the main thread', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-entry-pool-'));
  const pool = new VerifyPool(2);
  let mainThread = 0;
  const verifier = new CachedVerifier(1000, (s, m, p) => {
    mainThread++;
    return verifyNative(s, m, p);
  });
  try {
    const { chain, store, service } = await openService(
      path.join(dir, 'chain.db'),
      undefined,
      pool,
      verifier,
    );
    const entries = Array.from({ length: 40 }, (_, i) =>
      knowledgeEntry(testKey(100 + i), TEST_NOW - 1000, `e${i}`),
    );
    const sig = entries[7]!.signature.slice();
    sig[0]! ^= 1;
    const forged = { ...entries[7]!, signature: sig };
    const batch = [...entries.slice(0, 7), forged, ...entries.slice(8)].map((entry) => ({
      entry,
      source: 'peer-a',
    }));
    const results = await service.submitEntries(batch);
    assert.deepEqual(
      results.map((r) => (r.status === 'rejected' ? r.reason : r.status)),
      batch.map((_, i) => (i === 7 ? 'bad-entry-signature' : 'added')),
    );
    assert.equal(mainThread, 1, 'only the forged signature is checked (again) on the main thread');
    assert.equal(chain.mempool.size, 39);
    // Duplicates cost no signature check anywhere: not even sent to the pool.
    const copies = entries.slice(0, 5).map((e) => ({ entry: { ...e }, source: 'peer-a' }));
    const again = await service.submitEntries(copies);
    assert.ok(again.every((r) => r.status === 'duplicate'));
    assert.ok(
      copies.every(({ entry }) => !verifier.hasCheckedHolder(entry)),
      'duplicates not verified',
    );
    await store.close();
  } finally {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  }
});
