import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { featurize, featurizeText, hashToken, mailText, sparseDot, tokenize } from './features.ts';

const MAIL = [
  'Received: from relay.example.org by mx',
  'Subject: FREE money!!! Act now',
  '  continued subject line',
  'Message-ID: <abc@host>',
  '',
  'Dear friend, you WON $1000000. Click here: http://spam.example/x',
].join('\n');

describe('hashed bag-of-words', () => {
  test('tokenizer lowercases, keeps words, drops one-letter and very long tokens', () => {
    assert.deepEqual(tokenize("Hello, WORLD! it's a $100 deal x"), [
      'hello',
      'world!',
      "it's",
      '$100',
      'deal',
    ]);
    assert.deepEqual(tokenize(`ok ${'a'.repeat(31)} fine`), ['ok', 'fine']);
  });

  test('only Subject/From/Content-Type headers survive by default', () => {
    const text = mailText(MAIL, { headers: 'some', maxChars: 1000 });
    assert.match(text, /free money/i);
    assert.match(text, /continued subject line/);
    assert.doesNotMatch(text, /relay\.example|Message-ID/);
    assert.doesNotMatch(mailText(MAIL, { headers: 'none', maxChars: 1000 }), /Subject/);
    assert.match(mailText(MAIL, { headers: 'all', maxChars: 1000 }), /relay\.example/);
  });

  test('deterministic: same text → same row, and known hash values', () => {
    assert.equal(hashToken('money'), hashToken('money'));
    assert.notEqual(hashToken('money'), hashToken('monez'));
    // Pinned so a change to the hash (which would silently invalidate every stored model) fails here.
    assert.equal(hashToken(''), 2872998923);
    assert.equal(hashToken('spam'), 3392988608);
    const a = featurize(MAIL);
    const b = featurize(MAIL);
    assert.deepEqual(a, b);
  });

  test('rows are sorted, in range, L2-normalised, with log(1 + tf) weights', () => {
    const row = featurizeText('cheap cheap cheap pills now', 10);
    for (let k = 1; k < row.indices.length; k++) assert.ok(row.indices[k]! > row.indices[k - 1]!);
    for (const i of row.indices) assert.ok(i < 1024);
    const norm = Math.sqrt(row.values.reduce((s, v) => s + v * v, 0));
    assert.ok(Math.abs(norm - 1) < 1e-6);
    // 'cheap' (tf 3) weighs log 4 against log 2 for the others, up to sign.
    const abs = [...row.values].map(Math.abs).sort((x, y) => x - y);
    assert.ok(Math.abs(abs[abs.length - 1]! / abs[0]! - Math.log(4) / Math.log(2)) < 1e-5);
    assert.equal(featurizeText('', 10).indices.length, 0);
    assert.throws(() => featurizeText('x', 0), RangeError);
  });

  test('sparseDot multiplies only the present coordinates', () => {
    const row = { indices: Uint32Array.of(1, 3), values: Float32Array.of(0.5, 2) };
    assert.equal(sparseDot(row, [10, 20, 30, 40]), 90);
  });
});
