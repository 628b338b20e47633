/**
 * The orphan ancestor fetcher on its injected interface: it walks down to a known block,
 * blames a sender that does not serve the parent its orphan implies, and stays within its
 * bounds on pending chains, concurrent fetches (one per peer) and depth.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import type { Hex } from '../chain/bytes.ts';
import type { ProcessResult } from '../chain/chain.ts';
import type { SealedBlock } from '../chain/types.ts';
import { BlockValidationError } from '../chain/validation.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { type UnknownBlockDeps, type UnknownBlockOutcome, UnknownBlockSync } from './unknown-block.ts';

const block = (hashHex: Hex) => ({ hashHex }) as SealedBlock;
const hex = (n: number) => n.toString(16).padStart(64, '0');

interface Fake {
  deps: UnknownBlockDeps;
  fetches: { peer: string; hash: Hex }[];
  penalties: { peer: string; action: PeerAction; reason: string }[];
  dropped: string[];
  pokes: number;
  outcomes: UnknownBlockOutcome[];
}

/**
 * Deps over a chain where block n's parent is n-1 and blocks up to `known` are in the tree:
 * submitting n > known+1 gives an orphan waiting for n-1. `serve` decides what a peer answers.
 */
function fake(
  known: number,
  serve: (peer: string, hash: Hex) => Promise<readonly SealedBlock[]> | readonly SealedBlock[] = (_p, h) => [
    block(h),
  ],
  submit?: (b: SealedBlock) => ProcessResult,
): Fake {
  const f: Fake = {
    fetches: [],
    penalties: [],
    dropped: [],
    pokes: 0,
    outcomes: [],
    deps: {
      fetchBlock: async (peer, hash) => {
        f.fetches.push({ peer, hash });
        return serve(peer, hash);
      },
      submit: async ([b]) => {
        if (submit) return [submit(b!)];
        const n = Number.parseInt(b!.hashHex, 16);
        if (n <= known + 1) return [{ status: 'connected', hashHex: b!.hashHex }];
        return [{ status: 'orphan', hashHex: b!.hashHex, missingParent: hex(n - 1), from: undefined }];
      },
      dropOrphansFrom: async (peer) => {
        f.dropped.push(peer);
        return 1;
      },
      penalise: (peer, action, reason) => f.penalties.push({ peer, action, reason }),
      pokeSync: () => {
        f.pokes++;
      },
      count: (o) => f.outcomes.push(o),
    },
  };
  return f;
}

async function settle(u: UnknownBlockSync) {
  for (let i = 0; i < 200 && (u.size > 0 || u.inFlight > 0); i++) await tick();
}

describe('unknown-block fetcher', () => {
  test('walks down from the missing parent to a known block, asking the orphan’s sender', async () => {
    const f = fake(10);
    const u = new UnknownBlockSync(f.deps);
    u.onOrphan('peer-a', hex(14));
    await settle(u);
    assert.deepEqual(
      f.fetches.map((x) => [x.peer, Number.parseInt(x.hash, 16)]),
      [
        ['peer-a', 14],
        ['peer-a', 13],
        ['peer-a', 12],
        ['peer-a', 11],
      ],
    );
    assert.deepEqual(f.outcomes, ['resolved']);
    assert.deepEqual(f.penalties, []);
  });

  test('a sender that does not serve the parent its orphan implies is penalised and its orphans dropped', async () => {
    const f = fake(10, () => []);
    const u = new UnknownBlockSync(f.deps);
    u.onOrphan('liar', hex(12));
    await settle(u);
    assert.deepEqual(
      f.penalties.map((p) => [p.peer, p.action]),
      [['liar', 'mid-tolerance']],
    );
    assert.deepEqual(f.dropped, ['liar']);
    assert.deepEqual(f.outcomes, ['unserved']);
  });

  test('when the first sender does not serve the parent, the next sender of an orphan waiting for it is asked', async () => {
    const f = fake(10, (peer, h) => (peer === 'liar' ? [] : [block(h)]));
    const u = new UnknownBlockSync(f.deps);
    u.onOrphan('liar', hex(12));
    u.onOrphan('honest', hex(12));
    u.onOrphan('honest', hex(12));
    await settle(u);
    assert.deepEqual(
      f.fetches.map((x) => x.peer),
      ['liar', 'honest', 'honest'],
    );
    assert.deepEqual(f.outcomes, ['unserved', 'resolved']);
    assert.deepEqual(
      f.penalties.map((p) => p.peer),
      ['liar'],
    );
  });

  test('serving another block than the one asked for counts as not serving it', async () => {
    const f = fake(10, () => [block(hex(999))]);
    const u = new UnknownBlockSync(f.deps);
    u.onOrphan('liar', hex(12));
    await settle(u);
    assert.deepEqual(f.outcomes, ['unserved']);
    assert.deepEqual(f.dropped, ['liar']);
  });

  test('an invalid ancestor costs low tolerance; a junk side chain too; the orphans go', async () => {
    const invalid = fake(10, undefined, (b) => ({
      status: 'invalid',
      hashHex: b.hashHex,
      error: new BlockValidationError('bad-difficulty', 'test'),
    }));
    const u1 = new UnknownBlockSync(invalid.deps);
    u1.onOrphan('bad', hex(12));
    await settle(u1);
    assert.deepEqual(
      invalid.penalties.map((p) => p.action),
      ['low-tolerance'],
    );
    assert.deepEqual(invalid.dropped, ['bad']);

    const junk = fake(10, undefined, (b) => ({
      status: 'ignored',
      hashHex: b.hashHex,
      reason: 'low-work-side-chain',
      junk: true,
    }));
    const u2 = new UnknownBlockSync(junk.deps);
    u2.onOrphan('forker', hex(12));
    await settle(u2);
    assert.deepEqual(
      junk.penalties.map((p) => p.action),
      ['low-tolerance'],
    );
    assert.deepEqual(junk.dropped, ['forker']);
  });

  test('a failed request costs as much as an unserved parent and hands over to range sync', async () => {
    // Attack review #11: at −1 per timed-out request, 100 orphans never connecting cost 4 points.
    const f = fake(10, () => Promise.reject(new Error('timeout')));
    const u = new UnknownBlockSync(f.deps);
    u.onOrphan('slow', hex(12));
    await settle(u);
    assert.deepEqual(
      f.penalties.map((p) => p.action),
      ['mid-tolerance'],
    );
    assert.equal(f.pokes, 1);
    assert.deepEqual(f.dropped, []);
  });

  test('depth is bounded: past maxDepth fetches range sync is poked instead', async () => {
    const f = fake(0);
    const u = new UnknownBlockSync(f.deps, { maxDepth: 5 });
    u.onOrphan('peer', hex(100));
    await settle(u);
    assert.equal(f.fetches.length, 5);
    assert.equal(f.pokes, 1);
    assert.deepEqual(f.outcomes, ['too-deep']);
    assert.deepEqual(f.penalties, []);
  });

  test('concurrency is bounded (2 by default), one fetch per peer, and the pending set is bounded', async () => {
    const gates: (() => void)[] = [];
    const f = fake(
      0,
      (_p, h) =>
        new Promise((resolve) => {
          gates.push(() => resolve([block(h)]));
        }),
      (b) => ({ status: 'connected', hashHex: b.hashHex }),
    );
    const u = new UnknownBlockSync(f.deps, { maxPending: 4 });
    u.onOrphan('a', hex(1));
    u.onOrphan('a', hex(2));
    u.onOrphan('b', hex(3));
    u.onOrphan('c', hex(4));
    u.onOrphan('c', hex(4));
    await tick();
    assert.equal(u.inFlight, 2, 'two at once');
    assert.deepEqual(
      f.fetches.map((x) => x.peer),
      ['a', 'b'],
      "a's second waits for its first",
    );
    assert.equal(u.size, 4, 'the duplicate was not queued twice');
    u.onOrphan('d', hex(5));
    assert.equal(u.size, 4);
    assert.deepEqual(f.outcomes, ['queue-full']);
    assert.equal(f.pokes, 1, 'range sync gets the overflow');
    while (u.size > 0) {
      for (const open of gates.splice(0)) open();
      await tick();
      await tick();
      assert.ok(u.inFlight <= 2);
    }
    assert.deepEqual(f.fetches.map((x) => x.peer).sort(), ['a', 'a', 'b', 'c']);
  });

  test('expired orphans cost each sender once per batch; far-ahead blocks poke range sync at most once a second', () => {
    const f = fake(0);
    let now = 0;
    const u = new UnknownBlockSync(f.deps, { now: () => now });
    u.onOrphansExpired(['a', 'a', 'b', undefined, 'a']);
    assert.deepEqual(
      f.penalties.map((p) => [p.peer, p.action]),
      [
        ['a', 'mid-tolerance'],
        ['b', 'mid-tolerance'],
      ],
    );
    for (let i = 0; i < 100; i++) u.onFarAhead();
    assert.equal(f.pokes, 1);
    now = 999;
    u.onFarAhead();
    assert.equal(f.pokes, 1);
    now = 1000;
    u.onFarAhead();
    assert.equal(f.pokes, 2);
  });
});
