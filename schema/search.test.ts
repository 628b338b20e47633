import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  collect,
  gql,
  publishUntil,
  startTestGateway,
  type TestGateway,
  wsClient,
} from '../gateway/testing.ts';
import { IndexWriter } from '../jobs/collector/index-writer.ts';
import { TOPICS, toEvent } from '../jobs/events.ts';
import { blockAcceptedReport } from '../jobs/node-reports.ts';
import { nodeIdOfKey } from '../jobs/report-envelope.ts';
import { createEntry } from '../node/chain/authoring.ts';
import type { SigningKey } from '../node/chain/signature.ts';
import type { SealedBlock, SealedEntry } from '../node/chain/types.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../node/testing/forge.ts';

const ALICE = testKey(1);
const BOB = testKey(2);
let seq = 0;
const note = (key: SigningKey, content: string, topic: string): SealedEntry =>
  createEntry({ kind: 'knowledge', content, metadata: [['topic', topic]] }, key, TEST_NOW - 60_000 + seq++);

let gw: TestGateway;
let add: (entries: SealedEntry[][]) => Promise<SealedBlock[]>;

before(async () => {
  gw = await startTestGateway({ seed: false });
  const t = testChain();
  const writer = new IndexWriter(gw.db, { network: testNetwork(), now: () => TEST_NOW });
  let n = 0;
  add = async (entries) => {
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
  await add([
    [note(ALICE, 'Die alte Mühle am Bach.', 'mühle'), note(BOB, 'Mühlen & <b>Räder</b>', 'mühle')],
    [note(BOB, 'Straße nach Köln', 'verkehr')],
  ]);
});
after(() => gw.close());

const ENTRIES = `query ($filter: EntryFilter, $first: Int, $after: String) {
  entries(filter: $filter, first: $first, after: $after) {
    edges { cursor node { content authorNodeId highlights { start end } metadata { key value } block { height } } }
    pageInfo { hasNextPage endCursor }
  }
}`;

test('entries: full-text with an author given as node id, highlights, metadata and block', async () => {
  const r = await gql(gw.url, ENTRIES, { filter: { query: 'MUHLE', author: nodeIdOfKey(BOB.publicKey) } });
  assert.equal(r.body.errors, undefined);
  const edges = r.body.data.entries.edges;
  assert.equal(edges.length, 1);
  const e = edges[0].node;
  assert.equal(e.content, 'Mühlen & <b>Räder</b>');
  assert.equal(e.authorNodeId, nodeIdOfKey(BOB.publicKey));
  assert.deepEqual(e.highlights, [{ start: 0, end: 6 }]);
  assert.deepEqual(e.metadata, [{ key: 'topic', value: 'mühle' }]);
  assert.equal(e.block.height, 1);
});

test('entries: pages forward by cursor, at most 100 a page, bad input refused', async () => {
  const one = await gql(gw.url, ENTRIES, { first: 1 });
  assert.equal(one.body.data.entries.edges.length, 1);
  assert.equal(one.body.data.entries.pageInfo.hasNextPage, true);
  const rest = await gql(gw.url, ENTRIES, { first: 10, after: one.body.data.entries.pageInfo.endCursor });
  assert.deepEqual(
    [...one.body.data.entries.edges, ...rest.body.data.entries.edges].map(
      (x: { node: { content: string } }) => x.node.content,
    ),
    ['Straße nach Köln', 'Die alte Mühle am Bach.', 'Mühlen & <b>Räder</b>'],
  );
  for (const [vars, pattern] of [
    [{ first: 101 }, /between 0 and 100/],
    [{ after: 'not-a-cursor' }, /invalid cursor/],
    [{ filter: { author: '12D3KooWnobody' } }, /"author" must be/],
    [{ filter: { query: 'a b c d e f g h i' } }, /at most 8 words/],
  ] as const) {
    const r = await gql(gw.url, ENTRIES, vars as Record<string, unknown>);
    assert.match(r.body.errors?.[0]?.message ?? '', pattern, JSON.stringify(vars));
    assert.equal(r.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
  }
  // Refusals are counted (a Prometheus counter per reason).
  const metrics = await (await fetch(gw.url.replace(/\/graphql$/, '/metrics'))).text();
  assert.match(metrics, /cairn_gateway_search_refused_total\{reason="page-too-large"\} [1-9]/);
});

test('entries: concurrent identical searches run the query once (response cache flights)', async () => {
  const raw = gw.db.$queryRawUnsafe;
  let statements = 0;
  gw.db.$queryRawUnsafe = ((...a: Parameters<typeof raw>) => {
    statements++;
    return raw.apply(gw.db, a);
  }) as typeof raw;
  try {
    const vars = { filter: { query: 'köln strasse' } };
    const answers = await Promise.all(Array.from({ length: 5 }, () => gql(gw.url, ENTRIES, vars)));
    for (const a of answers) assert.equal(a.body.data.entries.edges[0].node.content, 'Straße nach Köln');
    assert.equal(statements, 1);
  } finally {
    gw.db.$queryRawUnsafe = raw;
  }
});

test('topics: metadata values by count', async () => {
  const r = await gql(gw.url, '{ topics(key: "topic") { value count } }');
  assert.deepEqual(r.body.data.topics, [
    { value: 'mühle', count: 2 },
    { value: 'verkehr', count: 1 },
  ]);
});

test('newEntry: entries of each new block that match the filter, re-read from the index', async () => {
  const client = wsClient(gw.wsUrl);
  const sub = collect<{ newEntry: { content: string; highlights: { start: number }[] } }>(
    client,
    'subscription { newEntry(filter: { query: "mühle", metadata: [{ key: "topic", value: "mühle" }] }) { content highlights { start } } }',
  );
  try {
    const [block] = await add([
      [
        note(ALICE, 'Neue Mühle', 'mühle'),
        note(ALICE, 'Mühle, falsches Thema', 'x'),
        note(BOB, 'Brot', 'mühle'),
      ],
    ]);
    const row = await gw.db.block.findUniqueOrThrow({ where: { hash: block!.hashHex } });
    await publishUntil(
      () => void gw.server.pubsub.publish(TOPICS.newBlock, toEvent(row)),
      () => sub.results.length > 0,
      'a newEntry result',
    );
    assert.deepEqual(sub.results[0]!.data!.newEntry, { content: 'Neue Mühle', highlights: [{ start: 5 }] });
    // A forged event naming no indexed block yields nothing.
    await gw.server.pubsub.publish(TOPICS.newBlock, { ...toEvent(row), hash: 'ab'.repeat(32) });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(sub.results.every((r) => r.data?.newEntry.content === 'Neue Mühle'));
  } finally {
    sub.dispose();
    await client.dispose();
  }
});
