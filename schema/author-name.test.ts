/**
 * The `entries` author filter by member name (issue 18): a name is every key the roster gave it
 * (genesis config, `member.add` certificates), resolved in the index (table MemberName, written
 * by the collector, back-filled by migration 0011), on both providers, for `entries` and
 * `newEntry` alike.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { collect, gql, publishUntil, startTestGateway, wsClient } from '../gateway/testing.ts';
import { IndexWriter } from '../jobs/collector/index-writer.ts';
import { TOPICS, toEvent } from '../jobs/events.ts';
import { openIndexDb } from '../jobs/index-db/open.ts';
import { createTestLocation, TEST_PROVIDERS } from '../jobs/index-db/testing.ts';
import { blockAcceptedReport } from '../jobs/node-reports.ts';
import { nodeIdOfKey } from '../jobs/report-envelope.ts';
import { createEntry } from '../node/chain/authoring.ts';
import { toHex } from '../node/chain/bytes.ts';
import { chainIdOf, type NetworkConfig } from '../node/chain/network-config.ts';
import type { SigningKey } from '../node/chain/signature.ts';
import type { SealedBlock, SealedEntry } from '../node/chain/types.ts';
import { signCertificate } from '../node/membership/certificate.ts';
import { MEMBER_ADD } from '../node/membership/roster-state.ts';
import { forgeBlock, forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../node/testing/forge.ts';
import { type EntryFilter, searchEntries } from './entry-search.ts';

const ADMIN = testKey(800);
const ALICE = testKey(801); // "Kim" in the genesis config
const CAROL = testKey(802); // "Lee" in the genesis config
const BOB = testKey(803); // "Kim" too: a second device, added by certificate
const DAVE = testKey(804); // "Dave" on the canonical chain, "Kim" only on a side chain
const hex = (k: SigningKey) => toHex(k.publicKey);
const CAPS = ['mine', 'submit'] as const;

const ROSTER: Partial<NetworkConfig> = {
  membership: 'roster',
  admins: [hex(ADMIN)],
  members: [
    // Upper case in the config: keys are matched as the roster lower-cases them.
    { publicKey: hex(ALICE).toUpperCase(), name: 'Kim', role: 'submind', capabilities: [...CAPS] },
    { publicKey: hex(CAROL), name: 'Lee', role: 'submind', capabilities: [...CAPS] },
  ],
};
const CONFIG = testNetwork(ROSTER);
const REPORTER = nodeIdOfKey(ALICE.publicKey);

let seq = 0;
const at = () => TEST_NOW - 60_000 + seq++;
const note = (key: SigningKey, content: string): SealedEntry =>
  createEntry({ kind: 'knowledge', content, metadata: [] }, key, at());
const addMember = (key: SigningKey, name: string): SealedEntry => {
  const cert = signCertificate(
    {
      chainId: chainIdOf(CONFIG),
      subject: key.publicKey,
      name,
      role: 'submind',
      capabilities: [...CAPS],
      issuedAtMs: CONFIG.genesisTimestamp,
      expiresAtMs: TEST_NOW + 86_400_000,
    },
    ADMIN,
  );
  return createEntry({ kind: 'config', changes: [[MEMBER_ADD, toHex(cert.encoded)]] }, ADMIN, at());
};

/**
 * Canonical: b1 (Alice's and Carol's notes, Bob added as "Kim", Dave as "Dave"), b2 (Bob's and
 * Dave's notes). A side block s1 at height 1, lighter than b1's chain, adds Dave as "Kim".
 */
async function indexed(db: Awaited<ReturnType<typeof openIndexDb>>) {
  const t = testChain(ROSTER);
  const writer = new IndexWriter(db, { network: CONFIG, now: () => TEST_NOW });
  let n = 0;
  const report = async (b: SealedBlock) => {
    await t.submit(b);
    await writer.apply(
      `r${n++}`,
      'block.accepted',
      blockAcceptedReport(REPORTER, b, t.chain.tree.get(b.hashHex)!),
    );
  };
  const genesis = t.chain.tip;
  const [b1] = forgeBranch(t.chain, genesis, [
    {
      miner: ALICE,
      entries: [
        note(ALICE, 'Mühle eins'),
        note(CAROL, 'Mühle zwei'),
        addMember(BOB, 'Kim'),
        addMember(DAVE, 'Dave'),
      ],
    },
  ]);
  await report(b1!);
  const [b2] = forgeBranch(t.chain, t.chain.tip, [
    { miner: ALICE, entries: [note(BOB, 'Mühle drei'), note(DAVE, 'Mühle vier')] },
  ]);
  await report(b2!);
  const s1 = forgeBlock(t.chain, genesis, {
    miner: CAROL,
    gapMs: CONFIG.blockTimeMs + 1,
    entries: [addMember(DAVE, 'Kim'), note(CAROL, 'Mühle fünf')],
  });
  await report(s1);
  const newBlock = async (entries: SealedEntry[]) => {
    const [b] = forgeBranch(t.chain, t.chain.tip, [{ miner: ALICE, entries }]);
    await report(b!);
    return b!;
  };
  return { b1: b1!, b2: b2!, s1, newBlock };
}

const contents = async (db: Awaited<ReturnType<typeof openIndexDb>>, f: EntryFilter) =>
  (await searchEntries(db, f, { first: 100 })).hits.map((h) => JSON.parse(h.payload).content as string);

for (const provider of TEST_PROVIDERS) {
  describe(`${provider}: author by member name`, () => {
    let db: Awaited<ReturnType<typeof openIndexDb>>;
    let destroy: () => Promise<void>;
    let location: Awaited<ReturnType<typeof createTestLocation>>['location'];
    before(async () => {
      ({ location, destroy } = await createTestLocation(provider));
      db = await openIndexDb(location);
      await indexed(db);
    });
    after(async () => {
      await db.$disconnect();
      await destroy();
    });

    test('a name matches the entries of every key that carried it, with and without a query', async () => {
      const kim = ['Mühle drei', 'Mühle eins'];
      assert.deepEqual(await contents(db, { authorName: 'Kim' }), kim);
      assert.deepEqual(await contents(db, { authorName: 'Kim', query: 'muhle' }), kim);
      assert.deepEqual(await contents(db, { authorName: 'Lee', query: 'mühle' }), ['Mühle zwei']);
      assert.deepEqual(await contents(db, { authorName: 'Dave' }), ['Mühle vier']);
      // Names are matched as carried; an unknown one matches nothing.
      assert.deepEqual(await contents(db, { authorName: 'kim' }), []);
      assert.deepEqual(await contents(db, { authorName: 'Nobody', query: 'mühle' }), []);
    });

    test('a name a side chain gave counts only when side chains do', async () => {
      // Dave was "Kim" only in s1: canonical searches leave his entries out, searches of all
      // blocks take them in (and s1's own entries by the genesis "Lee" stay out of "Kim").
      const all = await contents(db, { authorName: 'Kim', query: 'mühle', canonicalOnly: false });
      // drei and vier share a block, rank and height: their order is their entry ids'.
      assert.deepEqual(all.slice(0, 2).sort(), ['Mühle drei', 'Mühle vier']);
      assert.deepEqual(all.slice(2), ['Mühle eins']);
    });

    test('migration 0011 back-fills the names of an index written before it', async () => {
      const rows = async (d: typeof db) =>
        (
          await d.memberName.findMany({ orderBy: [{ name: 'asc' }, { key: 'asc' }, { blockHash: 'asc' }] })
        ).map((r) => `${r.name}:${r.key.slice(0, 8)}:${r.blockHash.slice(0, 8)}`);
      const written = await rows(db);
      // Genesis "Kim" and "Lee", Bob's "Kim" and Dave's "Dave" in b1, Dave's "Kim" in s1.
      assert.equal(written.length, 5);
      // The back-fill reads the genesis roster from the indexed network config (node.stats writes it).
      await db.networkConfig.create({
        data: {
          chainId: toHex(chainIdOf(CONFIG)),
          genesisHash: '00'.repeat(32),
          config: JSON.stringify(CONFIG, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)),
          updatedAt: new Date(TEST_NOW),
        },
      });
      // As before 0011: no table, no record of the migration.
      await db.$executeRawUnsafe(
        `DELETE FROM "_prisma_migrations" WHERE "migration_name" = '0011_member_names'`,
      );
      await db.$executeRawUnsafe('DROP TABLE "MemberName"');
      const reopened = await openIndexDb(location);
      try {
        assert.deepEqual(await rows(reopened), written);
        assert.deepEqual(await contents(reopened, { authorName: 'Kim', query: 'mühle' }), [
          'Mühle drei',
          'Mühle eins',
        ]);
      } finally {
        await reopened.$disconnect();
      }
    });
  });
}

describe('GraphQL: author by name in entries and newEntry', () => {
  let gw: Awaited<ReturnType<typeof startTestGateway>>;
  let destroy: () => Promise<void>;
  let newBlock: (entries: SealedEntry[]) => Promise<SealedBlock>;
  before(async () => {
    const loc = await createTestLocation('sqlite');
    destroy = loc.destroy;
    gw = await startTestGateway({ seed: false, location: loc.location });
    ({ newBlock } = await indexed(gw.db));
  });
  after(async () => {
    await gw.close();
    await destroy();
  });

  const ENTRIES = `query ($author: String!) { entries(filter: { author: $author }) { edges { node { content } } } }`;

  test('entries: a name, an unknown name (empty), a malformed node id (refused)', async () => {
    const ok = await gql(gw.url, ENTRIES, { author: 'Kim' });
    assert.equal(ok.body.errors, undefined);
    assert.deepEqual(
      ok.body.data.entries.edges.map((e: { node: { content: string } }) => e.node.content),
      ['Mühle drei', 'Mühle eins'],
    );
    for (const name of ["Kim's tablet", 'Qmara']) {
      const none = await gql(gw.url, ENTRIES, { author: name });
      assert.equal(none.body.errors, undefined, name);
      assert.deepEqual(none.body.data.entries.edges, [], name);
    }
    for (const bad of ['12D3KooWnotapeerid', `${hex(BOB).slice(0, 63)}`, `Qm${'x'.repeat(44)}`]) {
      const r = await gql(gw.url, ENTRIES, { author: bad });
      assert.equal(r.body.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT', bad);
      assert.match(r.body.errors[0].message, /"author" must be/);
    }
  });

  test('newEntry by name: a device that joins under the name later is followed too', async () => {
    const client = wsClient(gw.wsUrl);
    const sub = collect<{ newEntry: { content: string } }>(
      client,
      'subscription { newEntry(filter: { author: "Kim" }) { content } }',
    );
    try {
      const eve = testKey(805);
      // Eve joins as "Kim" after the subscription started; she writes in the next block.
      const joined = await newBlock([addMember(eve, 'Kim'), note(ALICE, 'Alice schreibt')]);
      const written = await newBlock([note(eve, 'Eve schreibt'), note(CAROL, 'Carol schreibt')]);
      const got = () => sub.results.map((r) => r.data?.newEntry.content);
      for (const [b, want] of [
        [joined, 'Alice schreibt'],
        [written, 'Eve schreibt'],
      ] as const) {
        const row = await gw.db.block.findUniqueOrThrow({ where: { hash: b.hashHex } });
        await publishUntil(
          () => void gw.server.pubsub.publish(TOPICS.newBlock, toEvent(row)),
          () => got().includes(want),
          want,
        );
      }
      // Carol's entry shares Eve's block: give it the time to show up if it wrongly would.
      await new Promise((r) => setTimeout(r, 300));
      // publishUntil may deliver a block twice; what matters is which entries came.
      assert.deepEqual([...new Set(got())], ['Alice schreibt', 'Eve schreibt']);
    } finally {
      sub.dispose();
      await client.dispose();
    }
  });
});
