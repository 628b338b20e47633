import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { featurisedCorpus, loadCorpus, splitIndices, subset } from './dataset.ts';

describe('SpamAssassin corpus and split', () => {
  test('loads 4,150 ham and 1,896 spam, cached', () => {
    const mails = loadCorpus();
    assert.equal(mails.length, 6046);
    assert.equal(mails.filter((m) => m.spam).length, 1896);
    assert.equal(mails.filter((m) => !m.spam).length, 4150);
    assert.equal(loadCorpus(), mails);
    const ex = featurisedCorpus();
    assert.equal(featurisedCorpus(), ex);
    assert.equal(ex.rows.length, 6046);
    assert.equal(
      ex.labels.reduce((s, l) => s + l, 0),
      1896,
    );
  });

  const labels = featurisedCorpus().labels;
  const opts = { seed: 42, testFraction: 0.2, nodes: 5, mode: 'iid' } as const;

  test('deterministic: the same seed gives the same split, another seed a different one', () => {
    assert.deepEqual(splitIndices(labels, opts), splitIndices(labels, opts));
    assert.notDeepEqual(splitIndices(labels, opts).test, splitIndices(labels, { ...opts, seed: 43 }).test);
  });

  test('test set and slices partition the corpus; IID slices are stratified and equal-sized', () => {
    const { test: held, slices } = splitIndices(labels, opts);
    const all = [...held, ...slices.flatMap((s) => [...s])].sort((a, b) => a - b);
    assert.deepEqual(
      all,
      Array.from({ length: labels.length }, (_, i) => i),
    );
    assert.equal(held.length, Math.round(4150 * 0.2) + Math.round(1896 * 0.2));
    const spamRate = (idx: Uint32Array) => idx.reduce((s, i) => s + labels[i]!, 0) / idx.length;
    for (const s of slices) {
      assert.ok(Math.abs(s.length - slices[0]!.length) <= 2);
      assert.ok(Math.abs(spamRate(s) - 1896 / 6046) < 0.01);
    }
  });

  test('a validation set comes out of the held-out part: disjoint from the test set, slices unchanged', () => {
    const plain = splitIndices(labels, opts);
    const v = splitIndices(labels, { ...opts, validationFraction: 0.05 });
    assert.deepEqual(v.slices, plain.slices);
    assert.equal(v.validation.length, Math.round(4150 * 0.05) + Math.round(1896 * 0.05));
    assert.equal(v.test.length + v.validation.length, plain.test.length);
    const test = new Set(v.test);
    assert.ok(v.validation.every((i) => !test.has(i)));
    assert.deepEqual(
      [...v.test, ...v.validation].sort((a, b) => a - b),
      [...plain.test],
    );
    const spamRate = (idx: Uint32Array) => idx.reduce((s, i) => s + labels[i]!, 0) / idx.length;
    assert.ok(Math.abs(spamRate(v.validation) - 1896 / 6046) < 0.01);
    assert.equal(plain.validation.length, 0);
    assert.throws(() => splitIndices(labels, { ...opts, validationFraction: 0.3 }), RangeError);
  });

  test('label skew gives the first node mostly spam and the last mostly ham', () => {
    const { slices } = splitIndices(labels, { ...opts, mode: 'label-skew', skew: 1 });
    const spamRate = (idx: Uint32Array) => idx.reduce((s, i) => s + labels[i]!, 0) / idx.length;
    const rates = slices.map(spamRate);
    for (let k = 1; k < rates.length; k++) assert.ok(rates[k]! < rates[k - 1]!, rates.join(' '));
    assert.ok(rates[0]! > 0.6 && rates[4]! < 0.1, rates.join(' '));
  });

  test('subset picks rows and labels in order', () => {
    const ex = featurisedCorpus();
    const s = subset(ex, [5, 0, 6000]);
    assert.equal(s.rows[0], ex.rows[5]);
    assert.deepEqual([...s.labels], [ex.labels[5], ex.labels[0], ex.labels[6000]]);
    assert.throws(() => subset(ex, [6046]), RangeError);
  });
});
