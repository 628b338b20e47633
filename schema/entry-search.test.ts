import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { IndexWriter } from '../jobs/collector/index-writer.ts';
import { openIndexDb } from '../jobs/index-db/open.ts';
import { createTestIndexDb, TEST_PROVIDERS, type TestIndexDb } from '../jobs/index-db/testing.ts';
import { blockAcceptedReport } from '../jobs/node-reports.ts';
import { createEntry } from '../node/chain/authoring.ts';
import { toHex } from '../node/chain/bytes.ts';
import type { SigningKey } from '../node/chain/signature.ts';
import type { SealedBlock, SealedEntry } from '../node/chain/types.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../node/testing/forge.ts';
import {
  type EntryFilter,
  encodeSearchCursor,
  highlightRanges,
  searchEntries,
  topicCounts,
} from './entry-search.ts';

const ALICE = testKey(1);
const BOB = testKey(2);

let seq = 0;
const note = (key: SigningKey, content: string, metadata: [string, string][] = []): SealedEntry =>
  createEntry(
    { kind: 'knowledge', content, metadata: [...metadata].sort(([a], [b]) => (a < b ? -1 : 1)) },
    key,
    TEST_NOW - 60_000 + seq++,
  );

/** The seeds' kind of text: German with umlauts and ß, plus a little English. */
const BLOCKS: SealedEntry[][] = [
  [
    note(ALICE, 'Die alte Mühle am Bach mahlt wieder.', [
      ['topic', 'mühle'],
      ['source', 'dorf'],
    ]),
    note(BOB, 'Straße nach Köln ist gesperrt.', [['topic', 'verkehr']]),
  ],
  [
    note(ALICE, 'MÜHLE, Mühle, Mühlen: die Muhle-Frage', [['topic', 'mühle']]),
    note(BOB, 'Café crème in der Mühlenstraße', [
      ['topic', 'essen'],
      ['source', 'dorf'],
    ]),
    note(ALICE, 'The water mill grinds grain.', [
      ['topic', 'mühle'],
      ['lang', 'en'],
    ]),
  ],
  [
    note(BOB, 'Die Mühle am Bach braucht ein neues Rad.', [['topic', 'mühle']]),
    note(ALICE, 'Größere Übung für Ärzte: Œuvre und Ægir', [['topic', 'sonstiges']]),
  ],
];

/** A test chain and an index holding BLOCKS, written through the collector's own writer. */
async function indexed(provider: (typeof TEST_PROVIDERS)[number]) {
  const idx = await createTestIndexDb(provider);
  const t = testChain();
  const writer = new IndexWriter(idx.db, { network: testNetwork(), now: () => TEST_NOW });
  let n = 0;
  const add = async (entries: SealedEntry[][]): Promise<SealedBlock[]> => {
    const blocks = forgeBranch(
      t.chain,
      t.chain.tip,
      entries.map((e) => ({ entries: e })),
    );
    for (const b of blocks) {
      assert.equal((await t.submit(b)).status, 'connected');
      await writer.apply(
        `r${n++}`,
        'block.accepted',
        blockAcceptedReport('A', b, t.chain.tree.get(b.hashHex)!),
      );
    }
    return blocks;
  };
  await add(BLOCKS);
  return { idx, add };
}

/** What a result list is compared by: entry, block and rank, in order. */
const keys = async (db: TestIndexDb['db'], f: EntryFilter, first = 100) =>
  (await searchEntries(db, f, { first })).hits.map((h) => `${h.height}:${h.id.slice(0, 8)}:${h.rank}`);

const contentOf = (payload: string) => (JSON.parse(payload) as { content: string }).content;

const QUERIES: [name: string, f: EntryFilter][] = [
  ['no filter', {}],
  ['muhle', { query: 'muhle' }],
  ['Mühle', { query: 'Mühle' }],
  ['MÜHLE', { query: 'MÜHLE' }],
  ['mühle am bach (phrase first)', { query: 'mühle am bach' }],
  ['prefix mühl', { query: 'mühl' }],
  ['strasse (ß)', { query: 'strasse' }],
  ['ärzte', { query: 'ARZTE' }],
  ['oeuvre (ligature)', { query: 'oeuvre' }],
  ['no match', { query: 'xyzzy' }],
  ['only punctuation', { query: '!!' }],
  ['query + author', { query: 'mühle', authorKey: toHex(BOB.publicKey) }],
  ['query + metadata', { query: 'mühle', metadata: [{ key: 'source', value: 'dorf' }] }],
  ['metadata key only', { metadata: [{ key: 'lang' }] }],
  [
    'two metadata',
    {
      metadata: [
        { key: 'topic', value: 'mühle' },
        { key: 'source', value: 'dorf' },
      ],
    },
  ],
  ['height range', { fromHeight: 2, toHeight: 2 }],
  ['query + height', { query: 'mühle', fromHeight: 3 }],
  ['time range', { since: new Date(TEST_NOW - 60_000 + 2), until: new Date(TEST_NOW - 60_000 + 4) }],
  ['kind', { kind: 'model' }],
  ['all blocks', { canonicalOnly: false, query: 'die' }],
];

describe('entry search on both providers', () => {
  const dbs: Record<string, Awaited<ReturnType<typeof indexed>>> = {};
  before(async () => {
    for (const p of TEST_PROVIDERS) dbs[p] = await indexed(p);
  });
  after(async () => {
    for (const d of Object.values(dbs)) await d.idx.drop();
  });

  test('the same queries return the same entries in the same order on SQLite and PostgreSQL', async () => {
    for (const [name, f] of QUERIES) {
      const [a, b] = await Promise.all(TEST_PROVIDERS.map((p) => keys(dbs[p]!.idx.db, f)));
      assert.deepEqual(b, a, `${name}: providers disagree`);
    }
  });

  for (const p of TEST_PROVIDERS) {
    test(`${p}: umlauts, ß and case fold; phrases rank first; a query that matches nothing is empty`, async () => {
      const db = dbs[p]!.idx.db;
      const hits = async (f: EntryFilter) =>
        (await searchEntries(db, f, { first: 100 })).hits.map((h) => contentOf(h.payload));
      const muhle = await hits({ query: 'muhle' });
      assert.deepEqual(await hits({ query: 'Mühle' }), muhle);
      assert.deepEqual(await hits({ query: 'MÜHLE' }), muhle);
      // Four entries hold the word (the prefix also finds "Mühlenstraße"); the one saying it four times first.
      assert.equal(muhle.length, 4);
      assert.equal(muhle[0], 'MÜHLE, Mühle, Mühlen: die Muhle-Frage');
      const phrase = await hits({ query: 'mühle am bach' });
      assert.deepEqual(phrase, [
        'Die Mühle am Bach braucht ein neues Rad.',
        'Die alte Mühle am Bach mahlt wieder.',
      ]);
      assert.deepEqual(await hits({ query: 'strasse' }), ['Straße nach Köln ist gesperrt.']);
      assert.deepEqual(await hits({ query: 'koln' }), ['Straße nach Köln ist gesperrt.']);
      assert.deepEqual(await hits({ query: 'aegir' }), ['Größere Übung für Ärzte: Œuvre und Ægir']);
      assert.deepEqual(await hits({ query: 'xyzzy' }), []);
      assert.deepEqual(await hits({ query: 'mühle xyzzy' }), [], 'every word must occur');
    });

    test(`${p}: filters combine`, async () => {
      const db = dbs[p]!.idx.db;
      const hits = async (f: EntryFilter) =>
        (await searchEntries(db, f, { first: 100 })).hits.map((h) => contentOf(h.payload));
      assert.equal((await hits({})).length, 7);
      assert.deepEqual(await hits({ query: 'mühle', authorKey: toHex(BOB.publicKey) }), [
        'Die Mühle am Bach braucht ein neues Rad.',
        'Café crème in der Mühlenstraße',
      ]);
      assert.deepEqual(await hits({ query: 'mühle', metadata: [{ key: 'source', value: 'dorf' }] }), [
        'Café crème in der Mühlenstraße',
        'Die alte Mühle am Bach mahlt wieder.',
      ]);
      assert.deepEqual(
        await hits({
          metadata: [
            { key: 'topic', value: 'mühle' },
            { key: 'source', value: 'dorf' },
          ],
        }),
        ['Die alte Mühle am Bach mahlt wieder.'],
      );
      assert.deepEqual(await hits({ query: 'mühle', fromHeight: 3, toHeight: 3 }), [
        'Die Mühle am Bach braucht ein neues Rad.',
      ]);
      assert.deepEqual(await hits({ kind: 'model' }), []);
      assert.deepEqual(
        await hits({ query: 'mühle', authorKey: toHex(BOB.publicKey), fromHeight: 1, toHeight: 1 }),
        [],
      );
      assert.deepEqual(await topicCounts(db, 'topic', { first: 3 }), [
        { value: 'mühle', count: 4 },
        { value: 'essen', count: 1 },
        { value: 'sonstiges', count: 1 },
      ]);
    });
  }

  for (const p of TEST_PROVIDERS) {
    test(`${p}: a page is one statement, the first one too (head and window edge inside it)`, async () => {
      const db = dbs[p]!.idx.db;
      const raw = db.$queryRawUnsafe;
      let statements = 0;
      db.$queryRawUnsafe = ((...a: Parameters<typeof raw>) => {
        statements++;
        return raw.apply(db, a);
      }) as typeof raw;
      try {
        const one = await searchEntries(db, { query: 'mühle' }, { first: 1 });
        const two = await searchEntries(
          db,
          { query: 'mühle' },
          { first: 1, after: encodeSearchCursor(one.hits[0]!) },
        );
        await searchEntries(db, { authorKey: toHex(BOB.publicKey) }, { first: 1 });
        assert.equal(statements, 3);
        assert.equal(two.hits.length, 1);
      } finally {
        db.$queryRawUnsafe = raw;
      }
    });
  }

  test('a full-text search ranks the newest blocks holding the window of matches, alike on both', async () => {
    const ranked = async (p: string, window: number) =>
      (await searchEntries(dbs[p]!.idx.db, { query: 'mühle' }, { first: 100, window })).hits.map(
        (h) => `${h.height}:${contentOf(h.payload)}`,
      );
    for (const p of TEST_PROVIDERS) {
      // Matches at heights 3, 2, 2, 1: a window of 2 reaches height 2 and takes all of it.
      const two = await ranked(p, 2);
      assert.deepEqual(two.map((x) => Number(x.split(':')[0])).sort(), [2, 2, 3], p);
      assert.equal((await ranked(p, 1)).length, 1, p);
      assert.equal((await ranked(p, 1000)).length, 4, p);
    }
    assert.deepEqual(await ranked('postgresql', 2), await ranked('sqlite', 2));
  });

  for (const p of TEST_PROVIDERS) {
    test(`${p}: pages are stable while new entries arrive`, async () => {
      const { idx, add } = dbs[p]!;
      const f: EntryFilter = { query: 'mühle' };
      const before = await keys(idx.db, f);
      const seen: string[] = [];
      let after: string | undefined;
      let arrivals = 0;
      for (;;) {
        const page = await searchEntries(idx.db, f, { first: 1, after });
        seen.push(...page.hits.map((h) => `${h.height}:${h.id.slice(0, 8)}:${h.rank}`));
        if (!page.hasNextPage) break;
        after = encodeSearchCursor(page.hits.at(-1)!);
        // New matching entries, one that outranks everything and one that ranks lowest.
        await add([
          [note(ALICE, `Mühle Mühle Mühle Mühle Mühle ${arrivals}`), note(BOB, `Mühlenrad ${arrivals}`)],
        ]);
        arrivals++;
      }
      assert.ok(arrivals >= 2);
      assert.equal(new Set(seen).size, seen.length, 'no entry twice');
      // Every entry there before is there once, in the order it had; newcomers only where they rank.
      assert.deepEqual(
        seen.filter((k) => before.includes(k)),
        before,
      );
      assert.deepEqual(
        seen,
        (await keys(idx.db, f)).filter((k) => seen.includes(k)),
      );
    });
  }
});

for (const p of TEST_PROVIDERS) {
  test(`${p}: entries indexed before the search migration are back-filled at open`, async () => {
    const { idx } = await indexed(p);
    try {
      // As a row written before 0009: no search text (the FTS5 row goes with it by trigger).
      await idx.db.entry.updateMany({ data: { searchText: null } });
      assert.deepEqual(await keys(idx.db, { query: 'muhle' }), []);
      const reopened = await openIndexDb(idx.location);
      try {
        assert.equal((await keys(reopened, { query: 'muhle' })).length, 4);
        assert.equal(await reopened.entry.count({ where: { searchText: null } }), 0);
      } finally {
        await reopened.$disconnect();
      }
    } finally {
      await idx.drop();
    }
  });
}

test('highlights mark the original words, umlauts and all', () => {
  const c = 'MÜHLE, Mühle, Mühlen: die Muhle-Frage';
  const marked = highlightRanges(c, ['muhle']).map((r) => c.slice(r.start, r.end));
  assert.deepEqual(marked, ['MÜHLE', 'Mühle', 'Mühlen', 'Muhle']);
  const d = 'Die Mühle am Bach';
  assert.deepEqual(
    highlightRanges(d, ['am', 'bach']).map((r) => d.slice(r.start, r.end)),
    ['am', 'Bach'],
  );
  assert.deepEqual(highlightRanges(d, []), []);
});
