/**
 * The collector archives a model version's weights only when they hash to the version's hash
 * (issue 16 item 3): real index DBs, both providers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../../node/chain/bytes.ts';
import { encodeModel, modelHash } from '../../node/fl/net/model-codec.ts';
import { createTestIndexDb, TEST_PROVIDERS } from '../index-db/testing.ts';
import { checkWeights, WeightsProblem, weightsToBase64 } from '../model-weights.ts';
import { ModelVersionReport } from '../payloads.ts';
import { IndexWriter } from './index-writer.ts';
import { ReportRefused } from './report-errors.ts';

const params = (bias: number) => {
  const p = new Float64Array(17);
  p[3] = 0.25;
  p[16] = bias;
  return p;
};
const report = (hash: string, weights: string | undefined, nodeId = 'A'): ModelVersionReport =>
  ModelVersionReport.parse({
    nodeId,
    hash,
    parentHash: null,
    round: 1,
    metrics: { accuracy: 0.9 },
    epsilon: 1,
    participants: 3,
    blockHash: 'bb'.repeat(32),
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
  test(`${provider}: a version's weights are archived once; weights not matching its hash refuse the report`, async () => {
    const { db, drop } = await createTestIndexDb(provider);
    try {
      const w = new IndexWriter(db);
      const bytes = encodeModel(params(1));
      const hash = toHex(modelHash(bytes));
      const forged = weightsToBase64(encodeModel(params(-3)));
      await assert.rejects(
        w.apply('model.X.forged', 'model.version', report(hash, forged, 'X')),
        (e: unknown) => e instanceof ReportRefused && e.code === 'weights-mismatch',
      );
      assert.equal(await db.modelWeights.count(), 0);
      assert.equal(await db.modelVersion.count(), 0, 'a refused report writes nothing');
      assert.equal(await db.report.count(), 0);
      // A report without weights indexes the version; a later one with them archives them.
      await w.apply('model.A', 'model.version', report(hash, undefined, 'A'));
      assert.equal(await db.modelWeights.count(), 0);
      await w.apply('model.B', 'model.version', report(hash, weightsToBase64(bytes), 'B'));
      await w.apply('model.C', 'model.version', report(hash, weightsToBase64(bytes), 'C'));
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
