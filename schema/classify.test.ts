/**
 * `classify` on the gateway: served from the weights the collector archived (written here by the
 * collector's own IndexWriter into a real index DB), scored exactly as a node scores.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type GqlBody, gql, startTestGateway, type TestGateway } from '../gateway/testing.ts';
import { IndexWriter } from '../jobs/collector/index-writer.ts';
import { ReportHeld } from '../jobs/collector/report-errors.ts';
import { createTestLocation, TEST_PROVIDERS } from '../jobs/index-db/testing.ts';
import { weightsToBase64 } from '../jobs/model-weights.ts';
import { blockAcceptedReport } from '../jobs/node-reports.ts';
import { ModelVersionReport } from '../jobs/payloads.ts';
import { createEntry } from '../node/chain/authoring.ts';
import { toHex } from '../node/chain/bytes.ts';
import type { SealedBlock } from '../node/chain/types.ts';
import { classifyText, MAX_CLASSIFY_CHARS } from '../node/fl/classify.ts';
import { hashToken } from '../node/fl/features.ts';
import { encodeModel, modelHash } from '../node/fl/net/model-codec.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../node/testing/forge.ts';
import { MAX_CLASSIFY_PER_OPERATION } from './classify.ts';

const BITS = 8;
/** A model that calls "prize" spam; `bias` tells the versions apart. */
const model = (bias: number) => {
  const p = new Float64Array((1 << BITS) + 1);
  const h = hashToken('prize');
  p[h & ((1 << BITS) - 1)] = (h >>> 31 ? -1 : 1) * 6;
  p[1 << BITS] = bias;
  return p;
};

for (const provider of TEST_PROVIDERS) {
  describe(`classify against a ${provider} index`, () => {
    let gw: TestGateway;
    let destroy: () => Promise<void>;
    const v1 = model(-1);
    const v2 = model(-7);
    const hashOf = (p: Float64Array) => toHex(modelHash(encodeModel(p)));

    const q = async (query: string, variables?: Record<string, unknown>): Promise<GqlBody> =>
      (await gql(gw.url, query, variables)).body;
    const CLASSIFY =
      'query($t: String!, $v: String) { classify(text: $t, version: $v) { version round spam score } }';

    before(async () => {
      const made = await createTestLocation(provider);
      destroy = made.destroy;
      gw = await startTestGateway({
        location: made.location,
        seed: false,
        cacheTtlMs: 0,
        tokenRateLimit: null,
      });
    });
    after(async () => {
      await gw.close();
      await destroy();
    });

    test('NO_MODEL before any version; then the newest committed version, or the one asked for', async () => {
      const none = await q(CLASSIFY, { t: 'prize' });
      assert.equal(none.errors?.[0]?.extensions?.code, 'NO_MODEL');
      const w = new IndexWriter(gw.db, { network: testNetwork(), now: () => TEST_NOW });
      // The chain commits v1 then v2 in blocks 1 and 2 (model entries, verified by the collector).
      const key = testKey(1);
      const modelEntry = (p: Float64Array, round: number, parent: Float64Array | null) =>
        createEntry(
          {
            kind: 'model',
            modelHash: modelHash(encodeModel(p)),
            parentHash: parent ? modelHash(encodeModel(parent)) : null,
            round,
            metrics: [],
            epsilon: 0,
          },
          key,
          TEST_NOW - 5_000,
        );
      const t = testChain();
      const blocks = forgeBranch(t.chain, t.chain.tip, [
        { entries: [modelEntry(v1, 1, null)] },
        { entries: [modelEntry(v2, 2, v1)] },
      ]);
      const indexBlock = async (b: SealedBlock) => {
        assert.equal((await t.submit(b)).status, 'connected');
        await w.apply(
          `block.${b.hashHex}`,
          'block.accepted',
          blockAcceptedReport('A', b, t.chain.tree.get(b.hashHex)!),
        );
      };
      const report = (p: Float64Array, round: number, withWeights: boolean, blockHash: string | null) =>
        ModelVersionReport.parse({
          nodeId: 'A',
          hash: hashOf(p),
          parentHash: round === 1 ? null : hashOf(v1),
          round,
          metrics: {},
          epsilon: 0,
          participants: 2,
          blockHash,
          at: new Date().toISOString(),
          ...(withWeights ? { weights: weightsToBase64(encodeModel(p)) } : {}),
        });
      // A report alone commits nothing: a node may name any hash and round.
      await assert.rejects(
        w.apply('m1', 'model.version', report(v1, 1, false, blocks[0]!.hashHex)),
        (e: unknown) => e instanceof ReportHeld && e.code === 'model-not-indexed',
      );
      assert.equal((await q(CLASSIFY, { t: 'prize' })).errors?.[0]?.extensions?.code, 'NO_MODEL');
      await indexBlock(blocks[0]!);
      await w.apply('m1w', 'model.version', report(v1, 1, true, blocks[0]!.hashHex));
      assert.equal((await q(CLASSIFY, { t: 'prize' })).data.classify.version, hashOf(v1));
      // Version 2 is committed, but its weights are not archived yet: it cannot classify yet.
      await indexBlock(blocks[1]!);
      await w.apply('m2a', 'model.version', report(v2, 2, false, blocks[1]!.hashHex));
      const pending = await q(CLASSIFY, { t: 'prize' });
      assert.equal(pending.errors?.[0]?.extensions?.code, 'MODEL_UNAVAILABLE');
      await w.apply('m2b', 'model.version', report(v2, 2, true, blocks[1]!.hashHex));

      for (const text of ['win a prize now', 'see you at lunch']) {
        const newest = await q(CLASSIFY, { t: text });
        assert.deepEqual(newest.data.classify, { version: hashOf(v2), round: 2, ...classifyText(v2, text) });
        const older = await q(CLASSIFY, { t: text, v: hashOf(v1) });
        assert.deepEqual(older.data.classify, { version: hashOf(v1), round: 1, ...classifyText(v1, text) });
      }
      assert.equal((await q(CLASSIFY, { t: 'prize', v: hashOf(v1) })).data.classify.spam, true);
      assert.equal((await q(CLASSIFY, { t: 'prize' })).data.classify.spam, false, 'v2 has a lower bias');
      const unknown = await q(CLASSIFY, { t: 'x', v: 'ee'.repeat(32) });
      assert.equal(unknown.errors?.[0]?.extensions?.code, 'NO_MODEL');
    });

    test('bounded: text length, version format, classify fields per operation', async () => {
      const long = await q(CLASSIFY, { t: 'a'.repeat(MAX_CLASSIFY_CHARS + 1) });
      assert.equal(long.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      const badVersion = await q(CLASSIFY, { t: 'a', v: 'v1' });
      assert.equal(badVersion.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
      const fields = (n: number) =>
        `{ ${Array.from({ length: n }, (_, i) => `c${i}: classify(text: "prize") { score }`).join(' ')} }`;
      const ok = await q(fields(MAX_CLASSIFY_PER_OPERATION));
      assert.equal(ok.errors, undefined);
      const over = await q(fields(MAX_CLASSIFY_PER_OPERATION + 1));
      assert.ok(over.errors?.some((e) => e.extensions?.code === 'BAD_USER_INPUT'));
    });
  });
}
