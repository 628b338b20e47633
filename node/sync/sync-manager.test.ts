/**
 * The sync manager against a peer whose status lies: the lie is blamed, penalised, not used
 * again until a fresh status after a back-off, and a repeat liar is penalised until banned.
 * The peers are fakes answering from forged chains (as the node's handlers do); the local node
 * imports through `processBlock`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import pino from 'pino';
import type { Hex } from '../chain/bytes.ts';
import type { SealedBlock } from '../chain/types.ts';
import { createNodeMetrics } from '../metrics.ts';
import type { Status } from '../p2p/messages.ts';
import { type PeerAction, PeerScores } from '../p2p/peer-scores.ts';
import { forgeChain, type TestChain, testChain, testKey } from '../testing/forge.ts';
import { PeerBook } from './peer-book.ts';
import { PresyncBudget } from './presync-budget.ts';
import type { RangeSyncDeps } from './range-sync.ts';
import { SyncManager, type SyncManagerOptions } from './sync-manager.ts';

const silent = pino({ level: 'silent' });
const forger = testChain();
let BLOCKS: SealedBlock[] = [];
let liar: PeerId;
let honest: PeerId;
before(async () => {
  BLOCKS = forgeChain(forger.chain, forger.chain.tip, 40);
  for (const b of BLOCKS) assert.equal((await forger.submit(b)).status, 'connected');
  liar = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  honest = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
});

const statusOf = (t: TestChain): Status => ({
  chainId: t.chain.chainId,
  genesisHash: t.chain.genesis.hash,
  headHash: t.chain.tip.hash,
  headHeight: t.chain.tip.height,
  totalWork: t.chain.tip.chainWork,
  role: 'submind',
  capabilities: [],
});

/** A node at genesis, a liar claiming 2^32-1 blocks that serves none, and (optionally) an honest peer. */
function setup() {
  let clock = 1_000_000;
  const local = testChain();
  const book = new PeerBook(30_000, { baseMs: 1_000 });
  const scores = new PeerScores();
  const metrics = createNodeMetrics();
  const penalties: { peer: string; action: PeerAction; reason: string; verdict: string }[] = [];
  const calls = { liarAncestor: 0, liarRanges: 0, honestRanges: 0 };
  const lie: Status = {
    ...statusOf(forger),
    headHeight: 2 ** 32 - 1,
    headHash: randomBytes(32),
    totalWork: forger.chain.tip.chainWork << 40n,
  };
  const deps: RangeSyncDeps = {
    chain: local.chain,
    requestAncestor: async (p) => {
      if (p.equals(liar)) calls.liarAncestor++;
      return { height: 0, hash: local.chain.genesis.hash };
    },
    requestRange: async (p, start, count) => {
      if (p.equals(liar)) {
        calls.liarRanges++;
        return [];
      }
      calls.honestRanges++;
      const hashes: Hex[] = [];
      for (let h = start; h < start + count; h++) {
        const n = forger.chain.tree.mainAt(h);
        if (n) hashes.push(n.hashHex);
      }
      return forger.chain.getBlocks(hashes);
    },
    requestHashesAt: async () => [],
    // A node at genesis never pre-syncs (no fork can start below its tip).
    requestHeaders: async () => assert.fail('no pre-sync from genesis'),
    submit: async (blocks, from) => {
      const out = [];
      for (const b of blocks) out.push(await local.submit(b, from));
      return out;
    },
    penalise: (p, action, reason) => {
      const verdict = scores.apply(p.toString(), action, reason, clock);
      penalties.push({ peer: p.toString(), action, reason, verdict });
    },
    log: silent,
  };
  const manager = new SyncManager(local.chain, book, deps, metrics, silent, { now: () => clock });
  return {
    local,
    deps,
    book,
    scores,
    metrics,
    penalties,
    calls,
    lie,
    manager,
    now: () => clock,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

describe('a lying status is disproved and not trusted again', () => {
  test('the liar is blamed and penalised; the same status does not start the next sync', async () => {
    const s = setup();
    s.book.setStatus(liar, s.lie, s.now());
    const first = await s.manager.syncNow();
    assert.equal(first?.kind, 'aborted');
    assert.ok(first?.kind === 'aborted');
    assert.equal(first.blame, liar.toString());
    assert.equal(first.disproved, 'lie');
    assert.deepEqual(
      s.penalties.map((p) => [p.action, p.reason]),
      [['mid-tolerance', 'range 1+128: 0 blocks for a range of 128']],
    );
    assert.equal(s.calls.liarAncestor, 1);
    const metric = (await s.metrics.syncDisproved.get()).values;
    assert.deepEqual(
      metric.map((v) => [v.labels.kind, v.value]),
      [['lie', 1]],
    );

    // Milliseconds later, and with the same status sent again during the back-off: no sync.
    s.advance(5);
    assert.equal(await s.manager.syncNow(), undefined);
    s.book.setStatus(liar, s.lie, s.now());
    s.advance(5);
    assert.equal(await s.manager.syncNow(), undefined);
    assert.equal(s.calls.liarAncestor, 1, 'the disproved status started no second sync');
    // Once the back-off is over, the status received during it is believed again (once).
    s.advance(1_000);
    const second = await s.manager.syncNow();
    assert.equal(second?.kind === 'aborted' && second.disproved, 'lie');
    assert.equal(s.calls.liarAncestor, 2);
    assert.deepEqual(
      s.penalties.slice(1).map((p) => p.action),
      ['mid-tolerance', 'low-tolerance'],
      'a repeat liar pays for the lie itself as well',
    );
    assert.match(s.penalties[2]!.reason, /^status disproved 2 times: .*0 blocks for a range of 128/);
  });

  test('a repeat liar is penalised every time until banned, with a growing back-off', async () => {
    const s = setup();
    const syncStarts: number[] = [];
    const started = s.now();
    while (!s.scores.isBanned(liar.toString(), s.now())) {
      assert.ok(s.now() - started < 120_000, `not banned after ${syncStarts.length} lies`);
      // A persistent liar repeats its status every 250 ms.
      s.book.setStatus(liar, s.lie, s.now());
      const before = s.calls.liarAncestor;
      await s.manager.syncNow();
      if (s.calls.liarAncestor > before) syncStarts.push(s.now() - started);
      s.advance(250);
    }
    assert.ok(syncStarts.length <= 5, `${syncStarts.length} syncs before the ban`);
    assert.equal(s.penalties.at(-1)!.verdict, 'ban');
    const gaps = syncStarts.slice(1).map((t, i) => t - syncStarts[i]!);
    for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! > gaps[i - 1]!, `back-offs ${gaps}`);
    assert.ok(gaps[0]! >= 1_000, 'never within milliseconds');
  });

  test('after a liar is disproved, the next sync is from the honest peer, at once', async () => {
    const s = setup();
    s.book.setStatus(liar, s.lie, s.now());
    s.book.setStatus(honest, statusOf(forger), s.now());
    assert.equal((await s.manager.syncNow())?.kind, 'aborted');
    s.advance(1);
    assert.deepEqual(await s.manager.syncNow(), { kind: 'synced', imported: 40, tip: 40 });
    assert.equal(s.local.chain.tip.hashHex, BLOCKS.at(-1)!.hashHex);
    assert.equal(s.calls.liarAncestor, 1);
    assert.deepEqual(
      s.penalties.map((p) => p.peer),
      [liar.toString()],
    );
  });

  test('a peer that claimed a head it did not serve is disproved too (synced, head missing)', async () => {
    const s = setup();
    const claim = {
      ...statusOf(forger),
      headHash: randomBytes(32),
      totalWork: forger.chain.tip.chainWork + 1n,
    };
    s.book.setStatus(honest, claim, s.now());
    assert.deepEqual(await s.manager.syncNow(), { kind: 'synced', imported: 40, tip: 40 });
    assert.equal(s.book.disproof(honest)?.count, 1);
    // One lie, one penalty (a repeat costs more).
    assert.deepEqual(
      s.penalties.map((p) => p.reason),
      ['status named a head it did not serve'],
    );
  });

  test('an honest peer that moved to a sibling head of the same work is not called a liar', async () => {
    const s = setup();
    // Its status named a head it then reorged away from; it served a chain with all the work.
    const claim = { ...statusOf(forger), headHash: randomBytes(32) };
    s.book.setStatus(honest, claim, s.now());
    assert.deepEqual(await s.manager.syncNow(), { kind: 'synced', imported: 40, tip: 40 });
    assert.equal(s.book.disproof(honest), undefined);
    assert.deepEqual(s.penalties, []);
  });

  test('a status claiming more work for a head we hold is disproved, and the honest peer syncs next', async () => {
    const s = setup();
    // Our own genesis with 2^200 work: nothing to download, so the sync "succeeds" at once.
    const claim: Status = { ...statusOf(s.local), totalWork: 1n << 200n };
    s.book.setStatus(liar, claim, s.now());
    s.book.setStatus(honest, statusOf(forger), s.now());
    assert.deepEqual(await s.manager.syncNow(), { kind: 'synced', imported: 0, tip: 0 });
    assert.equal(s.book.disproof(liar)?.count, 1, 'the work it claimed is not at its head');
    s.advance(1);
    assert.deepEqual(await s.manager.syncNow(), { kind: 'synced', imported: 40, tip: 40 });
    assert.equal(s.local.chain.tip.hashHex, BLOCKS.at(-1)!.hashHex);
    // Told again after the back-off, the same lie costs it.
    s.advance(2_000);
    s.book.setStatus(liar, claim, s.now());
    await s.manager.syncNow();
    assert.equal(s.book.disproof(liar)?.count, 2);
    assert.equal(s.penalties.at(-1)?.action, 'low-tolerance');
  });
});

describe('a peer too slow to follow', () => {
  test('a target trickling its batches is penalised and dropped; the next sync follows another peer', async () => {
    const s = setup();
    const progress = { graceMs: 10_000, minBytesPerSec: 128 * 1024 };
    let clock = 0;
    let slowRanges = 0;
    const base = s.deps;
    const deps: RangeSyncDeps = {
      ...base,
      // Both peers hold the forged chain: our tip is the fork point.
      requestAncestor: async () => ({ height: s.local.chain.tip.height, hash: s.local.chain.tip.hash }),
      // `liar` plays a peer with a true status that answers each batch in 19 s.
      requestRange: async (p, start, count) => {
        if (p.equals(liar)) {
          slowRanges++;
          clock += 19_000;
        }
        return base.requestRange(honest, start, count);
      },
    };
    const manager = new SyncManager(s.local.chain, s.book, deps, s.metrics, silent, {
      now: s.now,
      clock: () => clock,
      progress,
      batchSize: 16,
      requestsPerPeer: 1,
    });
    s.book.setStatus(liar, statusOf(forger), s.now());
    const first = await manager.syncNow();
    assert.equal(first?.kind, 'aborted');
    assert.equal(first?.kind === 'aborted' && first.disproved, 'unserved');
    assert.equal(slowRanges, 1, 'asked for nothing after its late answer');
    assert.deepEqual(
      s.penalties.map((p) => [p.peer, p.action]),
      [[liar.toString(), 'high-tolerance']],
    );
    // Its status waits for a back-off; an honest peer is followed at once.
    s.advance(1);
    assert.equal(await manager.syncNow(), undefined, 'the slow peer does not start the next sync');
    s.book.setStatus(honest, statusOf(forger), s.now());
    assert.deepEqual(await manager.syncNow(), { kind: 'synced', imported: 40 - 16, tip: 40 });
    assert.equal(slowRanges, 1);
  });
});

describe('claims of deep forks do not starve a chain that connects (attack review #11, finding 4)', () => {
  /**
   * A node holding 20 of the 40 blocks, an honest peer holding all 40 (its chain connects at our
   * tip), and fresh ids claiming far more work on a fork from genesis whose pre-sync reaches the
   * cap (5 headers here) before the work.
   */
  async function deepClaims(
    liars: number,
    withHonest = true,
    managerOpts: (ids: PeerId[]) => SyncManagerOptions = () => ({}),
  ) {
    const local = testChain();
    for (const b of BLOCKS.slice(0, 20)) assert.equal((await local.submit(b)).status, 'connected');
    const fork = forgeChain(forger.chain, forger.chain.tree.mainAt(0)!, 30, { miner: testKey(7) });
    const ids = await Promise.all(
      Array.from({ length: liars }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))),
    );
    const isLiar = (p: PeerId) => ids.some((id) => id.equals(p));
    const log: string[] = [];
    /** The liar (index into ids) each pre-sync read headers from. */
    const presynced: number[] = [];
    const metrics = createNodeMetrics();
    const book = new PeerBook(30_000, { baseMs: 1_000 });
    let clock = 1_000_000;
    const deps: RangeSyncDeps = {
      chain: local.chain,
      requestAncestor: async (p) => {
        log.push(`ancestor ${isLiar(p) ? 'liar' : 'honest'}`);
        return isLiar(p)
          ? { height: 0, hash: local.chain.genesis.hash }
          : { height: local.chain.tip.height, hash: local.chain.tip.hash };
      },
      requestHeaders: async (p, start, count) => {
        assert.ok(isLiar(p), 'the honest chain connects: no pre-sync');
        log.push('headers liar');
        presynced.push(ids.findIndex((id) => id.equals(p)));
        return fork.slice(start - 1, start - 1 + count).map((b) => ({
          header: b.header,
          hash: b.hash,
          hashHex: b.hashHex,
        }));
      },
      requestRange: async (p, start, count) => {
        assert.ok(!isLiar(p), 'no block is asked of an unproven claim');
        const hashes: Hex[] = [];
        for (let h = start; h < start + count; h++) {
          const n = forger.chain.tree.mainAt(h);
          if (n) hashes.push(n.hashHex);
        }
        return forger.chain.getBlocks(hashes);
      },
      requestHashesAt: async () => [],
      submit: async (blocks, from) => {
        const out = [];
        for (const b of blocks) out.push(await local.submit(b, from));
        return out;
      },
      penalise: () => {},
      log: silent,
    };
    const manager = new SyncManager(local.chain, book, deps, metrics, silent, {
      now: () => clock,
      maxPresyncHeaders: 5,
      ...managerOpts(ids),
    });
    const lie: Status = {
      ...statusOf(forger),
      headHeight: 2 ** 32 - 1,
      headHash: randomBytes(32),
      totalWork: forger.chain.tip.chainWork << 40n,
    };
    for (const id of ids) book.setStatus(id, lie, clock);
    if (withHonest) book.setStatus(honest, statusOf(forger), clock);
    return {
      local,
      manager,
      metrics,
      log,
      ids,
      book,
      lie,
      presynced,
      get clock() {
        return clock;
      },
      advance(ms: number) {
        clock += ms;
      },
    };
  }

  test('after a capped pre-sync, the next sync is from the peer whose chain connects', async () => {
    const s = await deepClaims(6);
    const first = await s.manager.syncNow();
    assert.ok(first?.kind === 'aborted');
    assert.equal(first.presync, 'too-long');
    // Five more fresh ids claim more work than the honest peer: the slot goes to it all the same.
    assert.deepEqual(await s.manager.syncNow(), { kind: 'synced', imported: 20, tip: 40 });
    assert.equal(s.local.chain.tip.hashHex, BLOCKS.at(-1)!.hashHex);
    assert.equal(s.log.filter((l) => l === 'headers liar').length, 1, 'one pre-sync in all');
    const turns = (await s.metrics.syncTurns.get()).values;
    assert.deepEqual(turns.map((v) => [v.labels.turn, v.value]).sort(), [
      ['best', 1],
      ['connecting', 1],
    ]);
  });

  test('with no chain that connects, the best claim is followed; a deep claim is asked once', async () => {
    const s = await deepClaims(3, false);
    const outcomes = [await s.manager.syncNow(), await s.manager.syncNow(), await s.manager.syncNow()];
    assert.deepEqual(
      outcomes.map((o) => o?.kind === 'aborted' && o.presync),
      ['too-long', 'too-long', 'too-long'],
      'each turn falls back to the best claim, which is pre-synced',
    );
    // Sync 1 asks A; turn 2 asks B and C at once (both deep), then B again as the best claim;
    // turn 3 does not ask C again (its deep claim is remembered), only as the best claim.
    assert.equal(s.log.filter((l) => l === 'ancestor liar').length, 5);
    assert.equal(s.log.filter((l) => l === 'headers liar').length, 3);
  });

  test('fresh ids of one address group get its pre-syncs per period, then another group gets the slot', async () => {
    // Five ids of host A claim the most work, one of host B a little less; all deep forks.
    let hostB: PeerId | undefined;
    const s = await deepClaims(6, false, (ids) => {
      hostB = ids[5];
      return {
        groupOf: (p) => (p.equals(hostB!) ? 'host-b' : 'host-a'),
        presyncBudget: new PresyncBudget({
          node: { limit: 4, periodMs: 600_000 },
          group: { limit: 2, periodMs: 600_000 },
          now: () => s.clock,
        }),
      };
    });
    s.book.setStatus(hostB!, { ...s.lie, totalWork: s.lie.totalWork >> 1n }, s.clock);
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await s.manager.syncNow());
    const groups = s.presynced.map((i) => (i === 5 ? 'B' : 'A'));
    // Before the budget: A, A, A (a fresh id of A's was always the best claim), B never.
    assert.deepEqual(groups, ['A', 'A', 'B'], `pre-syncs went to ${groups.join(', ')}`);
    assert.equal(outcomes[3], undefined, "A's claims wait for its next pre-sync; B's is disproved");
    // A deep claim of A's that was not known deep yet is refused before any header is read.
    s.book.setStatus(s.ids[4]!, { ...s.lie, headHash: randomBytes(32) }, s.clock);
    const refused = await s.manager.syncNow();
    assert.ok(refused?.kind === 'aborted' && refused.presyncRefused === 'group', JSON.stringify(refused));
    assert.equal(s.presynced.length, 3, 'no header read');
    assert.equal(refused.blame, undefined, 'nobody blamed for our budget');
    const counted = (await s.metrics.presyncs.get()).values.find((v) => v.labels.outcome === 'refused-group');
    assert.equal(counted?.value, 1);
    assert.equal(await s.manager.syncNow(), undefined, 'and it waits, not asked again');
  });

  test('the node-wide pre-sync budget bounds what all groups together start', async () => {
    const s = await deepClaims(4, false, () => ({
      presyncBudget: new PresyncBudget({
        node: { limit: 2, periodMs: 600_000 },
        group: { limit: 2, periodMs: 600_000 },
        now: () => s.clock,
      }),
    }));
    const outcomes = [];
    for (let i = 0; i < 4; i++) outcomes.push(await s.manager.syncNow());
    // Each id its own group: only the node's budget holds them to 2 (before it: 4).
    assert.equal(s.presynced.length, 2, `${s.presynced.length} pre-syncs`);
    assert.deepEqual(
      outcomes.map((o) => o?.kind === 'aborted' && (o.presync ?? o.presyncRefused)),
      ['too-long', 'too-long', false, false],
    );
  });

  test("a disproved claimant's repeat pre-syncs are paid by its score, not the budget", async () => {
    const s = await deepClaims(2, false, () => ({
      presyncBudget: new PresyncBudget({
        node: { limit: 1, periodMs: 600_000 },
        group: { limit: 1, periodMs: 600_000 },
        now: () => s.clock,
      }),
    }));
    const first = await s.manager.syncNow();
    assert.ok(first?.kind === 'aborted' && first.presync === 'too-long');
    const liar = s.presynced[0]!;
    // The other id's claim is refused: the node's one pre-sync is spent.
    const second = await s.manager.syncNow();
    assert.ok(second?.kind === 'aborted' && second.presyncRefused === 'node', JSON.stringify(second));
    // The first liar repeats its claim after its back-off: pre-synced again, and penalised for it.
    s.advance(5_000);
    s.book.setStatus(s.ids[liar]!, s.lie, s.clock);
    const repeat = await s.manager.syncNow();
    assert.ok(repeat?.kind === 'aborted' && repeat.presync === 'too-long', JSON.stringify(repeat));
    assert.deepEqual(s.presynced, [liar, liar]);
  });
});
