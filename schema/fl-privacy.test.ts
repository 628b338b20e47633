import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createGateway, type Gateway } from '../gateway/gateway.ts';
import { type GqlBody, seedIndex, testNamespace } from '../gateway/testing.ts';
import { AdminClient } from '../jobs/admin-client.ts';
import { createTestIndexDb, TEST_PROVIDERS, type TestIndexDb } from '../jobs/index-db/testing.ts';
import { createCairnPubSub } from '../jobs/pubsub.ts';

for (const provider of TEST_PROVIDERS) {
  describe(`flPrivacy against a ${provider} index`, () => {
    let idx: TestIndexDb;
    let gateway: Gateway;
    let closeBus: () => Promise<void>;
    let admin: AdminClient;
    const q = async (query: string): Promise<GqlBody> =>
      (await (
        await gateway.fetch(
          new Request('http://gateway/graphql', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ query }),
          }),
        )
      ).json()) as GqlBody;

    before(async () => {
      idx = await createTestIndexDb(provider);
      await seedIndex(idx.db, { blocks: 3, entriesPerBlock: 1, stats: 3, nodes: 3, orphans: 0 });
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
      const ns = testNamespace();
      const bus = createCairnPubSub(undefined, ns);
      closeBus = bus.close;
      admin = new AdminClient(undefined, ns);
      gateway = createGateway({ db: idx.db, pubsub: bus.pubsub, admin, cacheTtlMs: 0, tokenRateLimit: null });
    });
    after(async () => {
      await gateway.close();
      await Promise.all([closeBus(), admin.close()]);
      await idx.drop();
    });

    test('each node with a ledger: ε spent against its budget, and over its reports', async () => {
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
  });
}
