/**
 * The mempool under floods: per-peer and per-author quotas, eviction that pushes out the
 * flooder's own entries first, the per-peer admission rate with its penalties, and batched
 * commits (one store transaction for many entries) that survive a reopen.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { toHex } from '../chain/bytes.ts';
import { chainIdHex } from '../chain/network-config.ts';
import { CachedVerifier } from '../chain/signature-cache.ts';
import type { SealedEntry } from '../chain/types.ts';
import { createLogger } from '../log.ts';
import { createNodeMetrics } from '../metrics.ts';
import { ChainService } from '../service/chain-service.ts';
import { NodeStore } from '../store/node-store.ts';
import { knowledgeEntry, TEST_NOW, testChain, testKey, testNetwork } from '../testing/forge.ts';
import { EntryAdmission } from './admission.ts';
import { type AddResult, Mempool, type MempoolOptions, SOURCE } from './mempool.ts';

const NOW = TEST_NOW;
let n = 0;
/** An entry by a key of its own (a throwaway key), or by `key`. */
const entry = (key = testKey(100_000 + n)) =>
  knowledgeEntry(key, NOW - 1000, `e ${String(n++).padStart(6, '0')}`);

function pool(opts: Partial<MempoolOptions> = {}) {
  return new Mempool({
    config: testNetwork(),
    verifier: new CachedVerifier(),
    isIncluded: () => false,
    ...opts,
  });
}
const addFrom = (m: Mempool, source: string, e: SealedEntry) => m.withSource(source, () => m.add(e, NOW));
const quotaOf = (r: AddResult) => (r.status === 'rejected' ? `${r.reason}/${r.quota}` : r.status);

describe('quotas', () => {
  test("a stranger's throwaway keys fill its own share and push out nobody else's entries", () => {
    const m = pool({ maxEntries: 100, maxPerPeer: 25 });
    const locals = Array.from({ length: 50 }, () => entry());
    for (const e of locals) assert.equal(m.add(e, NOW).status, 'added');
    const honest = Array.from({ length: 20 }, () => entry());
    for (const e of honest) assert.equal(addFrom(m, 'honest-peer', e).status, 'added');
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 1000; i++) {
      const q = quotaOf(addFrom(m, 'mallory', entry()));
      outcomes.set(q, (outcomes.get(q) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(outcomes), { added: 25, 'mempool-full/peer': 975 });
    assert.equal(m.size, 95);
    assert.equal(m.heldBy('mallory'), 25);
    for (const e of [...locals, ...honest]) assert.ok(m.has(e.idHex), 'an honest entry was pushed out');
  });

  test('when full, room is made from the peer holding most, never from local entries', () => {
    const m = pool({ maxEntries: 10, maxPerPeer: 6 });
    const locals = Array.from({ length: 3 }, () => entry());
    for (const e of locals) m.add(e, NOW);
    const b = [entry()];
    addFrom(m, 'b', b[0]!);
    const a = Array.from({ length: 6 }, () => entry());
    for (const e of a) addFrom(m, 'a', e);
    assert.equal(m.size, 10);
    // A new local entry evicts a's oldest (a holds most), not a local or b's.
    const r = m.add(entry(), NOW);
    assert.deepEqual(r.status === 'added' && r.evicted.map((e) => e.idHex), [a[0]!.idHex]);
    // A peer's entry when full evicts from the heaviest peer too (here a, itself over b).
    const r2 = addFrom(m, 'b', entry());
    assert.deepEqual(r2.status === 'added' && r2.evicted.map((e) => e.idHex), [a[1]!.idHex]);
    for (const e of [...locals, ...b]) assert.ok(m.has(e.idHex));
    // A pool of local entries only: a peer's entry is refused rather than pushing one out.
    const full = pool({ maxEntries: 3 });
    for (let i = 0; i < 3; i++) full.add(entry(), NOW);
    assert.equal(quotaOf(addFrom(full, 'a', entry())), 'mempool-full/pool');
    assert.equal(full.size, 3);
  });

  test('peers together hold at most maxPerAuthor entries of one author', () => {
    const m = pool({ maxEntries: 100, maxPerAuthor: 10 });
    const key = testKey(7);
    let added = 0;
    for (let i = 0; i < 30; i++) if (addFrom(m, i % 2 ? 'a' : 'b', entry(key)).status === 'added') added++;
    assert.equal(added, 10);
    assert.equal(quotaOf(addFrom(m, 'c', entry(key))), 'mempool-full/author');
    // The author's own node (local) is not limited by what peers relayed.
    assert.equal(m.add(entry(key), NOW).status, 'added');
    // An evicted or mined entry frees the author's share.
    m.removeMany(m.ids().slice(0, 1));
    assert.equal(addFrom(m, 'c', entry(key)).status, 'added');
  });
});

describe('admission', () => {
  test('over the per-peer rate entries are refused before any check, and every 10 cost a penalty', async () => {
    const penalties: string[] = [];
    let committed = 0;
    const clock = { now: 0 };
    const admission = new EntryAdmission(
      {
        commit: async (items) => {
          committed += items.length;
          return items.map(() => ({ status: 'added', evicted: [] }) as AddResult);
        },
        penalise: (peer, action) => penalties.push(`${peer}:${action}`),
      },
      {
        peerRate: { limit: 100, periodMs: 10_000 },
        globalRate: { limit: 150, periodMs: 10_000 },
        now: () => clock.now,
      },
    );
    const e = entry();
    const results = await Promise.all(Array.from({ length: 2000 }, () => admission.submit(e, 'mallory')));
    assert.equal(results.filter((r) => r.status === 'added').length, 100);
    assert.equal(results.filter((r) => quotaOf(r) === 'mempool-full/peer-rate').length, 1900);
    assert.equal(committed, 100, 'refused entries never reach the store');
    assert.equal(penalties.length, 190);
    assert.ok(penalties.every((p) => p === 'mallory:high-tolerance'));
    // Another peer has its own budget, within the one all peers share (150), and is not
    // penalised when that runs out: it did not cause it.
    const honest = await Promise.all(Array.from({ length: 60 }, () => admission.submit(e, 'honest')));
    assert.equal(honest.filter((r) => r.status === 'added').length, 50);
    assert.equal(honest.filter((r) => quotaOf(r) === 'mempool-full/rate').length, 10);
    assert.equal(penalties.length, 190);
    // Entries it was asked for (reconciliation) are refused over the rate without blame.
    const asked = await admission.submitMany([e, e, e], 'mallory', false);
    assert.ok(asked.every((r) => quotaOf(r) === 'mempool-full/peer-rate'));
    assert.equal(penalties.length, 190);
    // The node's own entries are not limited.
    for (let i = 0; i < 200; i++) assert.equal((await admission.submit(e, SOURCE.local)).status, 'added');
    clock.now = 20_000;
    assert.equal((await admission.submit(e, 'mallory')).status, 'added', 'the rate refills');
  });

  test('flush commits what waits at once, without waiting for the batch timer', async () => {
    const committed: number[] = [];
    const admission = new EntryAdmission(
      {
        commit: async (items) => {
          committed.push(items.length);
          return items.map(() => ({ status: 'added', evicted: [] }) as AddResult);
        },
        penalise: () => {},
      },
      { maxWaitMs: 60_000 },
    );
    const results = Array.from({ length: 3 }, () => admission.submit(entry(), 'peer'));
    await admission.flush();
    assert.deepEqual(committed, [3]);
    assert.ok((await Promise.all(results)).every((r) => r.status === 'added'));
    await admission.flush();
    assert.deepEqual(committed, [3], 'nothing left to commit');
  });

  test('a committed batch is answered a slice per event-loop turn, so relaying it never holds the loop', async () => {
    const admission = new EntryAdmission({
      commit: async (items) => items.map(() => ({ status: 'added', evicted: [] }) as AddResult),
      penalise: () => {},
    });
    // Counts turns of the event loop while the batch is answered.
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const perTurn = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 256 }, () =>
        admission.submit(entry(), 'peer').then(() => perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1)),
      ),
    );
    ticking = false;
    assert.equal(admission.batches, 1);
    assert.equal(
      [...perTurn.values()].reduce((a, b) => a + b),
      256,
    );
    assert.ok(
      Math.max(...perTurn.values()) <= admission.resolvePerTurn,
      `answers per turn: ${[...perTurn.values()]}`,
    );
  });

  test('entries arriving together are committed in one store transaction each batch, and survive a reopen', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-admission-'));
    try {
      const t = testChain();
      const file = path.join(dir, 'chain.db');
      const storeOpts = {
        file,
        chainIdHex: chainIdHex(t.chain.config),
        genesisHashHex: t.chain.genesis.hashHex,
      };
      const store = await NodeStore.open(storeOpts);
      const service = new ChainService(
        t.chain,
        store,
        new CachedVerifier(),
        undefined,
        createNodeMetrics(),
        createLogger('silent'),
      );
      const admission = new EntryAdmission({
        commit: (items) => service.submitEntries(items),
        penalise: () => {},
      });
      const entries = Array.from({ length: 600 }, () => entry());
      const before = store.commits;
      const results = await Promise.all(entries.map((e, i) => admission.submit(e, `peer-${i % 6}`)));
      assert.ok(results.every((r) => r.status === 'added'));
      // 600 entries in batches of at most 256: 3 transactions (one per entry before).
      assert.equal(store.commits - before, 3);
      assert.equal(admission.batches, 3);
      // One by one, as before: one transaction each.
      const single = store.commits;
      for (const e of Array.from({ length: 5 }, () => entry())) await service.submitEntry(e);
      assert.equal(store.commits - single, 5);
      await store.close();
      const reopened = await NodeStore.open(storeOpts);
      const state = await reopened.load();
      await reopened.close();
      assert.equal(state.mempool.length, 605);
      assert.deepEqual(
        state.mempool.slice(0, 600).map((e) => toHex(e.id)),
        entries.map((e) => e.idHex),
        'stored in arrival order',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
