/**
 * The collector archives a model version's weights only when they hash to the version's hash
 * (issue 16 item 3): real index DBs, both providers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry } from '../../node/chain/authoring.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { encodeModel, modelHash } from '../../node/fl/net/model-codec.ts';
import { forgeBranch, TEST_NOW, testChain, testKey, testNetwork } from '../../node/testing/forge.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { checkWeights, WeightsProblem, weightsToBase64 } from '../model-weights.ts';
import { blockAcceptedReport } from '../node-reports.ts';
import { ModelVersionReport } from '../payloads.ts';
import { IndexWriter } from './index-writer.ts';
import { ReportHeld, ReportRefused } from './report-errors.ts';

const params = (bias: number) => {
  const p = new Float64Array(17);
  p[3] = 0.25;
  p[16] = bias;
  return p;
};
const report = (
  hash: string,
  weights: string | undefined,
  nodeId = 'A',
  blockHash = 'bb'.repeat(32),
): ModelVersionReport =>
  ModelVersionReport.parse({
    nodeId,
    hash,
    parentHash: null,
    round: 1,
    metrics: { accuracy: 0.9 },
    epsilon: 1,
    participants: 3,
    blockHash,
    at: new Date(1_800_000_000_000).toISOString(),
    ...(weights === undefined ? {} : { weights }),
  });

test('checkWeights: the bytes of the version, or a typed refusal', () => {
  const bytes = encodeModel(params(1));
  const hash = toHex(modelHash(bytes));
  assert.deepEqual(checkWeights(hash, weightsToBase64(bytes)), { bytes, paramCount: 17 });
  const other = weightsToBase64(encodeModel(params(2)));
  assert.throws(
    () => checkWeights(hash, other),
    (e: unknown) => e instanceof WeightsProblem && e.code === 'weights-mismatch',
  );
  // Bytes that hash right but are no model encoding (a tag byte changed, then rehashed).
  const bad = Uint8Array.from(bytes);
  bad[0] = 0x00;
  assert.throws(
    () => checkWeights(toHex(modelHash(bad)), weightsToBase64(bad)),
    (e: unknown) => e instanceof WeightsProblem && e.code === 'malformed-weights',
  );
});

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: weights are archived once, only for a version an indexed block commits, only if they match its hash`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db, { network: testNetwork(), now: () => TEST_NOW });
      const bytes = encodeModel(params(1));
      const hash = toHex(modelHash(bytes));
      const t = testChain();
      const entry = createEntry(
        { kind: 'model', modelHash: modelHash(bytes), parentHash: null, round: 1, metrics: [], epsilon: 0 },
        testKey(1),
        TEST_NOW - 5_000,
      );
      const [block] = forgeBranch(t.chain, t.chain.tip, [{ entries: [entry] }]);
      assert.equal((await t.submit(block!)).status, 'connected');
      const forged = weightsToBase64(encodeModel(params(-3)));
      await assert.rejects(
        w.apply('model.X.forged', 'model.version', report(hash, forged, 'X', block!.hashHex)),
        (e: unknown) => e instanceof ReportRefused && e.code === 'weights-mismatch',
      );
      // The right weights, but no indexed block commits the version yet: held, nothing written.
      await assert.rejects(
        w.apply('model.B.early', 'model.version', report(hash, weightsToBase64(bytes), 'B', block!.hashHex)),
        (e: unknown) => e instanceof ReportHeld && e.code === 'model-not-indexed',
      );
      assert.equal(await db.modelWeights.count(), 0);
      assert.equal(await db.modelVersion.count(), 0, 'a refused or held report writes nothing');
      assert.equal(await db.report.count(), 0);
      await w.apply(
        `block.${block!.hashHex}`,
        'block.accepted',
        blockAcceptedReport('A', block!, t.chain.tree.get(block!.hashHex)!),
      );
      // A report without weights indexes the version; a later one with them archives them.
      await w.apply('model.A', 'model.version', report(hash, undefined, 'A', block!.hashHex));
      assert.equal(await db.modelWeights.count(), 0);
      await w.apply('model.B', 'model.version', report(hash, weightsToBase64(bytes), 'B', block!.hashHex));
      await w.apply('model.C', 'model.version', report(hash, weightsToBase64(bytes), 'C', block!.hashHex));
      const rows = await db.modelWeights.findMany();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.hash, hash);
      assert.equal(rows[0]!.paramCount, 17);
      assert.deepEqual(new Uint8Array(rows[0]!.bytes), bytes);
    } finally {
      await drop();
    }
  });
}
