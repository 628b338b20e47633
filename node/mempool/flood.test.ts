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
    const count = (rs: AddResult[], q: string) => rs.filter((r) => quotaOf(r) === q).length;
    // Its per-peer rate lets 100 through; of the 150 all peers share, a lone peer's burst may
    // take half, leaving a newcomer's share (see fair-share.ts).
    assert.equal(count(results, 'added'), 75);
    assert.equal(count(results, 'mempool-full/share'), 25);
    assert.equal(count(results, 'mempool-full/peer-rate'), 1900);
    assert.equal(committed, 75, 'refused entries never reach the store');
    assert.equal(penalties.length, 190);
    assert.ok(penalties.every((p) => p === 'mallory:high-tolerance'));
    // Another peer has its own budget, within the one all peers share, and is not penalised when
    // it is refused there: it did not cause it. At once it finds what the newcomer's share left
    // (75 - 150/3), and refills go to it first until it has its share (75).
    const honest = await Promise.all(Array.from({ length: 60 }, () => admission.submit(e, 'honest')));
    assert.equal(count(honest, 'added'), 25);
    assert.equal(count(honest, 'mempool-full/share'), 35);
    assert.equal(penalties.length, 190);
    // Entries it was asked for (reconciliation) are refused over the rate without blame.
    const asked = await admission.submitMany([e, e, e], 'mallory', false);
    assert.ok(asked.every((r) => quotaOf(r) === 'mempool-full/peer-rate'));
    assert.equal(penalties.length, 190);
    // The node's own entries are not limited.
    for (let i = 0; i < 200; i++) assert.equal((await admission.submit(e, SOURCE.local)).status, 'added');
    clock.now += 2_000; // 30 tokens refilled, 2,000 / (10,000 / 150) ms each
    const later = await Promise.all(Array.from({ length: 30 }, () => admission.submit(e, 'honest')));
    assert.equal(count(later, 'added'), 30, 'the refill goes to the peer below its share');
    // Mallory, at its share already, may not borrow what the honest peer is still owed.
    assert.equal(quotaOf(await admission.submit(e, 'mallory')), 'mempool-full/share');
    assert.equal(penalties.length, 190);
    clock.now = 22_000;
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

/**
 * The shared admission budget under a flood relayed within the per-peer rate: real admission,
 * chain service, mempool and store; the admission clock moves in 500 ms ticks. Each tick every
 * junk peer relays 40 entries from throwaway keys (800 per 10 s: an honest relay's own global
 * rate, under our per-peer 1,000), then honest peer B sends 2 from honest authors.
 */
async function relayedFlood(junkPeers: readonly { name: string; perTick: number }[], junkTotal: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-fair-'));
  const t = testChain();
  const store = await NodeStore.open({
    file: path.join(dir, 'chain.db'),
    chainIdHex: chainIdHex(t.chain.config),
    genesisHashHex: t.chain.genesis.hashHex,
  });
  try {
    const service = new ChainService(
      t.chain,
      store,
      new CachedVerifier(),
      undefined,
      createNodeMetrics(),
      createLogger('silent'),
    );
    const clock = { now: 0 };
    const penalties = new Map<string, number>();
    const outcomes = new Map<string, number>();
    const admission = new EntryAdmission(
      {
        commit: (items) => service.submitEntries(items),
        penalise: (peer) => penalties.set(peer, (penalties.get(peer) ?? 0) + 1),
        observe: (o) => outcomes.set(o, (outcomes.get(o) ?? 0) + 1),
      },
      { now: () => clock.now },
    );
    const honestAuthors = Array.from({ length: 10 }, (_, i) => testKey(300 + i));
    const honest: { id: string; result: Promise<AddResult> }[] = [];
    const junkOutcomes = new Map<string, number>();
    let junkSent = 0;
    let tick = 0;
    while (junkSent < junkTotal) {
      const pending: Promise<unknown>[] = [];
      for (const p of junkPeers) {
        for (let i = 0; i < p.perTick && junkSent < junkTotal; i++, junkSent++) {
          pending.push(
            admission.submit(entry(), p.name).then((r) => {
              const q = `${p.name} ${quotaOf(r)}`;
              junkOutcomes.set(q, (junkOutcomes.get(q) ?? 0) + 1);
            }),
          );
        }
      }
      for (let i = 0; i < 2; i++) {
        const e = entry(honestAuthors[(tick * 2 + i) % honestAuthors.length]);
        const result = admission.submit(e, 'honest-b');
        honest.push({ id: e.idHex, result });
        pending.push(result);
      }
      await admission.flush();
      await Promise.all(pending);
      clock.now += 500;
      tick++;
    }
    const honestResults = await Promise.all(honest.map((h) => h.result));
    const refusedHonest = honestResults.filter((r) => r.status !== 'added').map(quotaOf);
    const stored = (await store.load()).mempool.map((e) => e.idHex);
    return {
      honest,
      refusedHonest,
      penalties,
      outcomes,
      junkOutcomes,
      stored,
      mempool: t.chain.mempool,
      tick,
    };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

describe('fair share of the admission budget', () => {
  test("20,000 junk entries relayed by one honest peer do not stop another peer's entries", async () => {
    const run = await relayedFlood([{ name: 'relay-a', perTick: 40 }], 20_000);
    assert.equal(run.tick, 500);
    assert.deepEqual(
      run.refusedHonest,
      [],
      `B's refusals: ${run.refusedHonest.length} (${[...new Set(run.refusedHonest)]})`,
    );
    assert.equal(run.honest.length, 1_000);
    const stored = new Set(run.stored);
    assert.ok(
      run.honest.every((h) => stored.has(h.id) && run.mempool.has(h.id)),
      "every one of B's entries is in the mempool and the store",
    );
    // The relay is not at fault (its rate is within ours): refused for its share, never penalised.
    assert.equal(run.penalties.size, 0);
    assert.ok((run.outcomes.get('full:share') ?? 0) > 0, JSON.stringify(Object.fromEntries(run.outcomes)));
    // Every refusal is counted by its code: all 21,000 outcomes are accounted for.
    const counted = [...run.outcomes.values()].reduce((a, b) => a + b, 0);
    assert.equal(counted, 21_000, JSON.stringify(Object.fromEntries(run.outcomes)));
    // A still gets what B leaves: over 250 s it is admitted far beyond one period's budget,
    // up to its mempool quota (2,500), and the rest is refused there, before any signature.
    assert.equal(run.mempool.heldBy('relay-a'), 2_500);
    assert.equal(run.junkOutcomes.get('relay-a added'), 2_500);
  });

  test('several flooding peers share what is left; the one over its per-peer rate is penalised', async () => {
    const run = await relayedFlood(
      [
        { name: 'relay-a1', perTick: 40 },
        { name: 'relay-a2', perTick: 40 },
        // 2,000 per 10 s: twice our per-peer rate, its own fault.
        { name: 'mallory', perTick: 100 },
      ],
      20_000,
    );
    assert.deepEqual(
      run.refusedHonest,
      [],
      `B's refusals: ${run.refusedHonest.length} (${[...new Set(run.refusedHonest)]})`,
    );
    assert.ok(run.honest.length >= 100, `${run.honest.length}`);
    const stored = new Set(run.stored);
    assert.ok(run.honest.every((h) => stored.has(h.id)));
    assert.deepEqual([...run.penalties.keys()], ['mallory']);
    assert.ok((run.outcomes.get('full:peer-rate') ?? 0) > 0);
    assert.ok((run.outcomes.get('full:share') ?? 0) > 0);
    // Each junk peer got entries in: its share, not nothing (max-min, not first come).
    for (const p of ['relay-a1', 'relay-a2', 'mallory'])
      assert.ok(
        (run.junkOutcomes.get(`${p} added`) ?? 0) > 100,
        JSON.stringify(Object.fromEntries(run.junkOutcomes)),
      );
  });
});
