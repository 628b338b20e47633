import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createGateway, type Gateway } from '../gateway/gateway.ts';
import { blockHash, type GqlBody, seedIndex, testNamespace } from '../gateway/testing.ts';
import { sha256Hex } from '../gateway/tokens.ts';
import { AdminClient } from '../jobs/admin-client.ts';
import { createTestIndexDb, TEST_PROVIDERS, type TestIndexDb } from '../jobs/index-db/testing.ts';
import { createCairnPubSub } from '../jobs/pubsub.ts';

for (const provider of TEST_PROVIDERS) {
  describe(`queries against a seeded ${provider} index`, () => {
    let idx: TestIndexDb;
    let gateway: Gateway;
    let closeBus: () => Promise<void>;
    let admin: AdminClient;

    const q = async (query: string, variables?: Record<string, unknown>): Promise<GqlBody> => {
      const r = await gateway.fetch(
        new Request('http://gateway/graphql', {
          method: 'POST',
          // A viewer: node addresses and peers are never anonymous (gateway/production.test.ts).
          headers: { 'content-type': 'application/json', authorization: 'Bearer viewer' },
          body: JSON.stringify({ query, variables }),
        }),
      );
      return (await r.json()) as GqlBody;
    };

    before(async () => {
      idx = await createTestIndexDb(provider);
      await seedIndex(idx.db, { blocks: 150, entriesPerBlock: 2, stats: 5, nodes: 3, orphans: 5 });
      const ns = testNamespace();
      const bus = createCairnPubSub(undefined, ns);
      closeBus = bus.close;
      admin = new AdminClient(undefined, ns);
      gateway = createGateway({
        db: idx.db,
        pubsub: bus.pubsub,
        admin,
        cacheTtlMs: 0,
        tokens: [{ name: 'viewer', role: 'viewer', sha256: sha256Hex('viewer') }],
        tokenRateLimit: null,
      });
    });
    after(async () => {
      await gateway.close();
      await Promise.all([closeBus(), admin.close()]);
      await idx.drop();
    });

    test('_meta reports the canonical head', async () => {
      const r = await q('{ _meta { height headHash nodes updatedAt } }');
      assert.deepEqual(r.data._meta.height, 149);
      assert.equal(r.data._meta.headHash, blockHash(149));
      assert.equal(r.data._meta.nodes, 3);
      assert.match(r.data._meta.updatedAt, /^\d{4}-\d\d-\d\dT/);
    });

    test('block by hash and by height, with entries and parent', async () => {
      const byHash = await q(
        'query($h: String) { block(hash: $h) { height parent { hash } entries { position content } } }',
        {
          h: blockHash(7),
        },
      );
      assert.equal(byHash.data.block.height, 7);
      assert.equal(byHash.data.block.parent.hash, blockHash(6));
      assert.deepEqual(byHash.data.block.entries, [
        { position: 0, content: 'fact 7.0' },
        { position: 1, content: 'fact 7.1' },
      ]);
      const byHeight = await q('{ block(height: 42) { hash timestamp } }');
      assert.equal(byHeight.data.block.hash, blockHash(42));
      assert.equal(byHeight.data.block.timestamp, new Date(Date.UTC(2026, 0, 1) + 420_000).toISOString());
      assert.equal((await q('{ block(height: 100000) { hash } }')).data.block, null);
      const both = await q(`{ block(height: 1, hash: "${blockHash(1)}") { hash } }`);
      assert.equal(both.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    });

    test('entry by id', async () => {
      const list = await q('{ block(height: 3) { entries { id } } }');
      const id = list.data.block.entries[1].id;
      const r = await q('query($id: String!) { entry(id: $id) { id blockHash kind content } }', { id });
      assert.deepEqual(r.data.entry, { id, blockHash: blockHash(3), kind: 'knowledge', content: 'fact 3.1' });
    });

    test('blocks range is ascending and bounded to 100', async () => {
      const r = await q('{ blocks(fromHeight: 10, toHeight: 109) { height } }');
      assert.equal(r.data.blocks.length, 100);
      assert.equal(r.data.blocks[0].height, 10);
      assert.equal(r.data.blocks[99].height, 109);
      const big = await q('{ blocks(fromHeight: 0, toHeight: 100) { height } }');
      assert.equal(big.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      assert.match(big.errors?.[0]?.message ?? '', /at most 100/);
    });

    test('blockConnection paginates newest first with cursors, both ways, and refuses first > 100', async () => {
      const page1 = await q(
        '{ blockConnection(first: 100) { edges { cursor node { height } } pageInfo { hasNextPage endCursor } } }',
      );
      const heights1 = page1.data.blockConnection.edges.map(
        (e: { node: { height: number } }) => e.node.height,
      );
      assert.equal(heights1.length, 100);
      assert.equal(heights1[0], 149);
      assert.equal(heights1[99], 50);
      assert.equal(page1.data.blockConnection.pageInfo.hasNextPage, true);
      const page2 = await q(
        'query($a: String) { blockConnection(first: 100, after: $a) { edges { node { height } } pageInfo { hasNextPage hasPreviousPage startCursor } } }',
        { a: page1.data.blockConnection.pageInfo.endCursor },
      );
      const heights2 = page2.data.blockConnection.edges.map(
        (e: { node: { height: number } }) => e.node.height,
      );
      assert.deepEqual(
        heights2,
        Array.from({ length: 50 }, (_, i) => 49 - i),
      );
      assert.equal(page2.data.blockConnection.pageInfo.hasNextPage, false);
      assert.equal(page2.data.blockConnection.pageInfo.hasPreviousPage, true);
      // Backwards from the start of page 2: the last 3 blocks of page 1, in order.
      const back = await q(
        'query($b: String) { blockConnection(last: 3, before: $b) { edges { node { height } } } }',
        {
          b: page2.data.blockConnection.pageInfo.startCursor,
        },
      );
      assert.deepEqual(
        back.data.blockConnection.edges.map((e: { node: { height: number } }) => e.node.height),
        [52, 51, 50],
      );
      const tooMany = await q('{ blockConnection(first: 101) { edges { cursor } } }');
      assert.equal(tooMany.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      assert.match(tooMany.errors?.[0]?.message ?? '', /between 0 and 100/);
      const badCursor = await q('{ blockConnection(after: "nonsense") { edges { cursor } } }');
      assert.equal(badCursor.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    });

    test('networkStats latest and history ascending', async () => {
      const r = await q(
        '{ networkStats { at totalNodes difficulty hashRate chainLengthAvg } networkStatsHistory(last: 3) { difficulty } }',
      );
      assert.equal(r.data.networkStats.totalNodes, 3);
      assert.equal(r.data.networkStats.difficulty, 20);
      assert.deepEqual(
        r.data.networkStatsHistory.map((s: { difficulty: number }) => s.difficulty),
        [18, 19, 20],
      );
      const big = await q('{ networkStatsHistory(last: 1001) { at } }');
      assert.equal(big.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    });

    test('nodes connection, node by id with stats', async () => {
      const page = await q(
        '{ nodes(first: 2) { edges { node { id capabilities peers } } pageInfo { hasNextPage endCursor } } }',
      );
      assert.deepEqual(
        page.data.nodes.edges.map((e: { node: { id: string } }) => e.node.id),
        ['12D3KooWnode0', '12D3KooWnode1'],
      );
      assert.deepEqual(page.data.nodes.edges[0].node.capabilities, ['mine', 'relay']);
      assert.deepEqual(page.data.nodes.edges[0].node.peers, ['12D3KooWnode1', '12D3KooWnode2']);
      const rest = await q(
        'query($a: String) { nodes(first: 2, after: $a) { edges { node { id } } pageInfo { hasNextPage } } }',
        {
          a: page.data.nodes.pageInfo.endCursor,
        },
      );
      assert.deepEqual(rest.data.nodes.edges, [{ node: { id: '12D3KooWnode2' } }]);
      assert.equal(rest.data.nodes.pageInfo.hasNextPage, false);
      const one = await q(
        '{ node(id: "12D3KooWnode0") { id mining addrs stats(last: 2) { seq hashRate } } }',
      );
      assert.deepEqual(one.data.node.stats, [
        { seq: 4, hashRate: 1500 },
        { seq: 5, hashRate: 1500 },
      ]);
      assert.equal((await q('{ node(id: "nobody") { id } }')).data.node, null);
      assert.equal(
        (await q('{ nodes(first: 500) { edges { cursor } } }')).errors?.[0]?.extensions?.code,
        'BAD_USER_INPUT',
      );
    });

    test('each node with a ledger: ε spent against its budget, and over its reports', async () => {
      // node1 reported its ledger in its last two snapshots (the collector's columns).
      await idx.db.node.update({
        where: { id: '12D3KooWnode1' },
        data: { flMode: 'record', flEpsilon: 2.5, flBudget: 3, flDelta: 1e-5, flRounds: 16 },
      });
      const snaps = await idx.db.nodeStatsSnapshot.findMany({
        where: { nodeId: '12D3KooWnode1' },
        orderBy: { seq: 'asc' },
      });
      for (const [i, s] of snaps.slice(-2).entries())
        await idx.db.nodeStatsSnapshot.update({
          where: { id: s.id },
          data: { flEpsilon: 2 + i / 2, flBudget: 3, flRounds: 12 + 4 * i },
        });
      const r = await q(
        '{ flPrivacy { nodeId mode epsilon budget remaining delta rounds history(last: 5) { epsilon budget rounds } } }',
      );
      assert.equal(r.errors, undefined, JSON.stringify(r.errors));
      assert.deepEqual(r.data.flPrivacy, [
        {
          nodeId: '12D3KooWnode1',
          mode: 'record',
          epsilon: 2.5,
          budget: 3,
          remaining: 0.5,
          delta: 1e-5,
          rounds: 16,
          history: [
            { epsilon: 2, budget: 3, rounds: 12 },
            { epsilon: 2.5, budget: 3, rounds: 16 },
          ],
        },
      ]);
      const n = await q(
        '{ a: node(id: "12D3KooWnode1") { flPrivacy { epsilon } } b: node(id: "12D3KooWnode0") { flPrivacy { epsilon } } }',
      );
      assert.deepEqual(n.data, { a: { flPrivacy: { epsilon: 2.5 } }, b: { flPrivacy: null } });
      // Long histories are refused before any resolver runs (cost limits), one node or all.
      for (const doc of [
        '{ node(id: "12D3KooWnode1") { flPrivacy { history(last: 1001) { epsilon } } } }',
        '{ flPrivacy { history(last: 1000) { at epsilon budget rounds } } }',
      ]) {
        const r = await q(doc);
        assert.equal(r.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED', doc);
      }
    });

    test('orphanedBlocks newest first, modelVersions newest round first, flRounds empty', async () => {
      const r = await q(`{
        orphanedBlocks(first: 2) { edges { node { height reason at } } pageInfo { hasNextPage endCursor } }
        modelVersions { edges { node { round accuracy } } }
        flRounds { edges { node { id } } pageInfo { hasNextPage } }
        networkConfig { chainId }
      }`);
      assert.deepEqual(
        r.data.orphanedBlocks.edges.map((e: { node: { height: number } }) => e.node.height),
        [5, 4],
      );
      const next = await q(
        'query($a: String) { orphanedBlocks(first: 10, after: $a) { edges { node { height } } } }',
        {
          a: r.data.orphanedBlocks.pageInfo.endCursor,
        },
      );
      assert.deepEqual(
        next.data.orphanedBlocks.edges.map((e: { node: { height: number } }) => e.node.height),
        [3, 2, 1],
      );
      assert.deepEqual(
        r.data.modelVersions.edges.map((e: { node: { round: number } }) => e.node.round),
        [1, 0],
      );
      assert.deepEqual(r.data.flRounds, { edges: [], pageInfo: { hasNextPage: false } });
      assert.equal(r.data.networkConfig, null);
    });
  });
}
