import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createEntry } from '../chain/authoring.ts';
import type { Hex } from '../chain/bytes.ts';
import { toHex } from '../chain/bytes.ts';
import { entryIdOf, sealEntry } from '../chain/entry-codec.ts';
import { sign } from '../chain/signature.ts';
import { CachedVerifier } from '../chain/signature-cache.ts';
import { FORMAT_VERSION, type SealedEntry } from '../chain/types.ts';
import { forgeBlock, knowledgeEntry, TEST_NOW, testChain, testKey, testNetwork } from '../testing/forge.ts';
import {
  type AddResult,
  BLOCK_ENVELOPE_RESERVE,
  Mempool,
  type MempoolOptions,
  maxMineableEntryBytes,
  templateEntryBudget,
} from './mempool.ts';

const NOW = TEST_NOW;
const author = testKey(1);
const admin = testKey(9);
const DRIFT = testNetwork().maxFutureDriftMs;

let counter = 0;
/** Entries of equal encoded size (fixed-width content), so byte budgets are easy to reason about. */
const entry = (ts = NOW - 1_000) => knowledgeEntry(author, ts, `entry ${String(counter++).padStart(6, '0')}`);

function pool(opts: Partial<MempoolOptions> = {}) {
  const included = new Set<Hex>();
  const mempool = new Mempool({
    config: testNetwork({ admins: [toHex(admin.publicKey)] }),
    verifier: new CachedVerifier(),
    isIncluded: (id) => included.has(id),
    ...opts,
  });
  return { mempool, included };
}

function expectAdded(r: AddResult): readonly SealedEntry[] {
  assert.equal(r.status, 'added', r.status === 'rejected' ? r.message : undefined);
  return r.status === 'added' ? r.evicted : [];
}

function expectRejected(r: AddResult, reason: string) {
  assert.equal(r.status, 'rejected');
  assert.equal(r.status === 'rejected' && r.reason, reason);
}

const ids = (entries: readonly SealedEntry[]) => entries.map((e) => e.idHex);

describe('admission', () => {
  test('accepts a valid entry and accounts for its bytes', () => {
    const { mempool } = pool();
    const e = entry();
    assert.deepEqual(expectAdded(mempool.add(e, NOW)), []);
    assert.equal(mempool.size, 1);
    assert.equal(mempool.bytes, e.encoded.length);
    assert.equal(mempool.has(e.idHex), true);
    assert.equal(mempool.get(e.idHex), e);
    assert.deepEqual(mempool.all(), [e]);
  });

  test('the same entry twice is a duplicate and changes nothing', () => {
    const { mempool } = pool();
    const e = entry();
    expectAdded(mempool.add(e, NOW));
    assert.deepEqual(mempool.add(e, NOW), { status: 'duplicate' });
    // A re-decoded copy (a different object, same id) is a duplicate too.
    assert.deepEqual(mempool.add({ ...e }, NOW), { status: 'duplicate' });
    assert.equal(mempool.size, 1);
    assert.equal(mempool.bytes, e.encoded.length);
  });

  test('a bad signature is rejected with bad-entry-signature', () => {
    const { mempool } = pool();
    const e = entry();
    const sig = e.signature.slice();
    sig[5]! ^= 0x01;
    expectRejected(mempool.add(sealEntry({ ...e, signature: sig }), NOW), 'bad-entry-signature');
    // Signed by someone else than the author it names.
    const forged = sealEntry({ ...e, signature: sign(e.id, testKey(4)) });
    expectRejected(mempool.add(forged, NOW), 'bad-entry-signature');
    assert.equal(mempool.size, 0);
    expectAdded(mempool.add(e, NOW));
  });

  test('a timestamp beyond the allowed drift is rejected with entry-timestamp-in-future', () => {
    const { mempool } = pool();
    expectRejected(mempool.add(entry(NOW + DRIFT + 1), NOW), 'entry-timestamp-in-future');
    expectAdded(mempool.add(entry(NOW + DRIFT), NOW));
    const later = entry(NOW + DRIFT + 1);
    expectRejected(mempool.add(later, NOW), 'entry-timestamp-in-future');
    expectAdded(mempool.add(later, NOW + 1));
  });

  test('a config entry not signed by an admin is rejected with unauthorized-config', () => {
    const { mempool } = pool();
    const change = { kind: 'config', changes: [['retention', '30d']] } as const;
    expectRejected(mempool.add(createEntry(change, author, NOW), NOW), 'unauthorized-config');
    expectAdded(mempool.add(createEntry(change, admin, NOW), NOW));
  });

  test('an entry of an unknown version is rejected with unsupported-entry-version', () => {
    const { mempool } = pool();
    const unsigned = {
      version: FORMAT_VERSION + 1,
      author: author.publicKey,
      timestamp: NOW,
      payload: { kind: 'knowledge', content: 'v2', metadata: [] } as const,
    };
    const e = sealEntry({ ...unsigned, signature: sign(entryIdOf(unsigned), author) });
    expectRejected(mempool.add(e, NOW), 'unsupported-entry-version');
  });

  test('an entry already in the chain is rejected with already-included', () => {
    const { mempool, included } = pool();
    const e = entry();
    included.add(e.idHex);
    expectRejected(mempool.add(e, NOW), 'already-included');
    assert.equal(mempool.size, 0);
  });

  test('an entry larger than the byte limit or than any block template can hold is rejected with entry-too-large', () => {
    const e = entry();
    const size = e.encoded.length;
    expectRejected(pool({ maxBytes: size - 1 }).mempool.add(e, NOW), 'entry-too-large');
    expectAdded(pool({ maxBytes: size }).mempool.add(e, NOW));
    const withBlockBytes = (maxBlockBytes: number) =>
      new Mempool({
        config: testNetwork({ maxBlockBytes }),
        verifier: new CachedVerifier(),
        isIncluded: () => false,
      });
    // Smaller than a block, but the envelope reserve leaves no template room for it.
    const tooTight = testNetwork({ maxBlockBytes: size + 100 });
    assert.ok(maxMineableEntryBytes(tooTight) < size);
    expectRejected(withBlockBytes(size + 100).add(e, NOW), 'entry-too-large');
    // Exactly mineable: admitted, and a template selects it.
    const roomy = withBlockBytes(size + BLOCK_ENVELOPE_RESERVE + 4);
    expectAdded(roomy.add(e, NOW));
    assert.deepEqual(
      roomy.select(
        10,
        templateEntryBudget(testNetwork({ maxBlockBytes: size + BLOCK_ENVELOPE_RESERVE + 4 })),
      ),
      [e],
    );
  });
});

describe('bounds and eviction', () => {
  test('maxEntries: the earliest-arrived entries are evicted and returned', () => {
    const { mempool } = pool({ maxEntries: 3 });
    const es = Array.from({ length: 5 }, () => entry());
    for (const e of es.slice(0, 3)) assert.deepEqual(expectAdded(mempool.add(e, NOW)), []);
    assert.deepEqual(ids(expectAdded(mempool.add(es[3]!, NOW))), [es[0]!.idHex]);
    assert.deepEqual(ids(expectAdded(mempool.add(es[4]!, NOW))), [es[1]!.idHex]);
    assert.deepEqual(mempool.ids(), ids(es.slice(2)));
    assert.equal(mempool.size, 3);
    assert.equal(
      mempool.bytes,
      es.slice(2).reduce((n, e) => n + e.encoded.length, 0),
    );
  });

  test('maxBytes: as many of the earliest entries as needed are evicted to make room', () => {
    const small = Array.from({ length: 4 }, () => entry());
    const size = small[0]!.encoded.length;
    assert.ok(small.every((e) => e.encoded.length === size));
    const { mempool } = pool({ maxBytes: 4 * size });
    for (const e of small) assert.deepEqual(expectAdded(mempool.add(e, NOW)), []);
    assert.equal(mempool.bytes, 4 * size);

    // One that needs more than two entries' room pushes out the three oldest.
    const big = knowledgeEntry(author, NOW, 'x'.repeat(2 * size + 10));
    assert.ok(big.encoded.length > 2 * size && big.encoded.length <= 3 * size);
    assert.deepEqual(ids(expectAdded(mempool.add(big, NOW))), ids(small.slice(0, 3)));
    assert.deepEqual(mempool.ids(), [small[3]!.idHex, big.idHex]);
    assert.equal(mempool.bytes, size + big.encoded.length);
    assert.ok(mempool.bytes <= mempool.maxBytes);
  });

  test('an entry exactly the byte limit empties the pool for itself', () => {
    const es = [entry(), entry()];
    const { mempool } = pool({ maxBytes: es[0]!.encoded.length });
    expectAdded(mempool.add(es[0]!, NOW));
    assert.deepEqual(ids(expectAdded(mempool.add(es[1]!, NOW))), [es[0]!.idHex]);
    assert.deepEqual(mempool.ids(), [es[1]!.idHex]);
  });
});

describe('inclusion, re-admission and selection', () => {
  test('removeMany drops included entries and returns those it held', () => {
    const { mempool } = pool();
    const es = Array.from({ length: 4 }, () => entry());
    for (const e of es) expectAdded(mempool.add(e, NOW));
    const stranger = entry();
    const removed = mempool.removeMany([es[1]!.idHex, stranger.idHex, es[3]!.idHex]);
    assert.deepEqual(ids(removed), [es[1]!.idHex, es[3]!.idHex]);
    assert.deepEqual(mempool.ids(), [es[0]!.idHex, es[2]!.idHex]);
    assert.equal(mempool.bytes, es[0]!.encoded.length + es[2]!.encoded.length);
    assert.deepEqual(mempool.removeMany([es[1]!.idHex]), []);
  });

  test('readmit puts entries back, skipping ones included in the chain or already present', () => {
    const { mempool, included } = pool();
    const [a, b, c, d] = [entry(), entry(), entry(), entry()] as const;
    expectAdded(mempool.add(d, NOW));
    included.add(b.idHex);
    const readmitted = mempool.readmit([a, b, c, d], NOW);
    assert.deepEqual(ids(readmitted), [a.idHex, c.idHex]);
    assert.deepEqual(mempool.ids(), [d.idHex, a.idHex, c.idHex]);
    // Still validated: a corrupted copy does not come back.
    const sig = c.signature.slice();
    sig[0]! ^= 1;
    const { mempool: other } = pool();
    assert.deepEqual(other.readmit([sealEntry({ ...c, signature: sig })], NOW), []);
  });

  test('select keeps arrival order within the count and byte budget (4 bytes framing each)', () => {
    const { mempool } = pool();
    const es = Array.from({ length: 6 }, () => entry());
    for (const e of es) expectAdded(mempool.add(e, NOW));
    const size = es[0]!.encoded.length + 4;
    assert.deepEqual(ids(mempool.select(3, 1 << 20)), ids(es.slice(0, 3)));
    assert.deepEqual(ids(mempool.select(100, 2 * size)), ids(es.slice(0, 2)));
    assert.deepEqual(ids(mempool.select(100, 3 * size - 1)), ids(es.slice(0, 2)));
    assert.deepEqual(mempool.select(0, 1 << 20), []);
    assert.deepEqual(mempool.select(10, size - 1), []);
    assert.deepEqual(ids(mempool.select(10, 1 << 20)), ids(es));
    assert.equal(mempool.size, 6, 'selection does not remove');
  });

  test('select skips an entry that does not fit and takes later smaller ones', () => {
    const { mempool } = pool();
    const a = entry();
    const big = knowledgeEntry(author, NOW, 'y'.repeat(500));
    const c = entry();
    for (const e of [a, big, c]) expectAdded(mempool.add(e, NOW));
    const budget = a.encoded.length + c.encoded.length + 8;
    const chosen = mempool.select(10, budget);
    assert.deepEqual(ids(chosen), [a.idHex, c.idHex]);
    assert.ok(chosen.reduce((n, e) => n + e.encoded.length + 4, 0) <= budget);
  });

  test('restore reloads persisted entries without those already included', () => {
    const { mempool, included } = pool({ maxEntries: 2 });
    const [a, b, c] = [entry(), entry(), entry()] as const;
    included.add(a.idHex);
    mempool.restore([a, b, c, b]);
    assert.deepEqual(mempool.ids(), [b.idHex, c.idHex]);
  });

  test('restored local and returned entries keep their protection; restored peer entries do not', () => {
    const { mempool } = pool({ maxEntries: 3, maxPerAuthor: 10 });
    const [local, returned, peer] = [entry(), entry(), entry()] as const;
    mempool.restore(
      [local, returned, peer],
      new Map([
        [local.idHex, 'local'],
        [returned.idHex, 'returned'],
      ]),
    );
    assert.deepEqual(
      [local, returned, peer].map((e) => mempool.originOf(e.idHex)),
      ['local', 'returned', 'peer'],
    );
    // Peers' entries push out the restored peer entry, then each other's, never the other two.
    const first = entry();
    assert.deepEqual(ids(expectAdded(mempool.withSource('mallory', () => mempool.add(first, NOW)))), [
      peer.idHex,
    ]);
    for (let i = 0; i < 5; i++)
      expectAdded(mempool.withSource(`mallory-${i}`, () => mempool.add(entry(), NOW)));
    assert.ok(mempool.has(local.idHex) && mempool.has(returned.idHex));
    assert.equal(mempool.size, 3);
  });
});

describe('through the chain', () => {
  test('an added entry leaves the mempool when a block includes it', async () => {
    const t = testChain();
    const { chain } = t;
    const [e, other] = [entry(), entry()] as const;
    assert.deepEqual(chain.addEntry(e), { status: 'added', evicted: [] });
    assert.deepEqual(chain.addEntry(e), { status: 'duplicate' });
    assert.equal(chain.addEntry(other).status, 'added');
    const added = chain.takeUpdate();
    assert.deepEqual([...added.mempool.keys()], [e.idHex, other.idHex]);

    assert.equal((await t.submit(forgeBlock(chain, chain.tip, { entries: [e] }))).status, 'connected');
    assert.deepEqual(chain.mempool.ids(), [other.idHex]);
    const u = chain.takeUpdate();
    assert.deepEqual([...u.mempool], [[e.idHex, null]]);
    expectRejected(chain.addEntry(e), 'already-included');
  });

  test('the chain reports mempool evictions caused by addEntry', () => {
    const t = testChain({}, { mempoolMaxEntries: 1 });
    const [a, b] = [entry(), entry()] as const;
    t.chain.addEntry(a);
    t.chain.takeUpdate();
    assert.deepEqual(ids(expectAdded(t.chain.addEntry(b))), [a.idHex]);
    assert.deepEqual(
      [...t.chain.takeUpdate().mempool],
      [
        [a.idHex, null],
        [b.idHex, b],
      ],
    );
  });

  test('a rejected entry records nothing', () => {
    const t = testChain();
    expectRejected(t.chain.addEntry(entry(NOW + DRIFT + 1)), 'entry-timestamp-in-future');
    assert.equal(t.chain.takeUpdate().mempool.size, 0);
  });
});
