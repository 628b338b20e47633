import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClassifyError, classifyText, MAX_CLASSIFY_CHARS } from './classify.ts';
import { featurizeText, hashToken } from './features.ts';
import { predictProba, zeroParams } from './logistic.ts';

const BITS = 10;
/** A forged model: "prize" pushes towards spam, "meeting" away, bias slightly towards ham. */
function forged(): Float64Array {
  const p = zeroParams(1 << BITS);
  const bucket = (w: string) => {
    const h = hashToken(w);
    return { i: h & ((1 << BITS) - 1), sign: h >>> 31 ? -1 : 1 };
  };
  const prize = bucket('prize');
  const meeting = bucket('meeting');
  assert.notEqual(prize.i, meeting.i);
  p[prize.i] = 8 * prize.sign;
  p[meeting.i] = -8 * meeting.sign;
  p[1 << BITS] = -0.5;
  return p;
}

describe('classifyText', () => {
  const model = forged();

  test('scores exactly as training predicts, and the verdict follows the score', () => {
    for (const text of ['you won a prize prize', 'meeting notes for tuesday', 'hello there', '']) {
      const row = featurizeText(text, BITS);
      const expected = predictProba(model, { dim: 1 << BITS, rows: [row], labels: Uint8Array.of(0) }, 0);
      const v = classifyText(model, text);
      assert.equal(v.score, expected, text);
      assert.equal(v.spam, expected >= 0.5, text);
    }
    assert.equal(classifyText(model, 'claim your PRIZE now').spam, true);
    assert.equal(classifyText(model, 'Meeting moved to 3pm').spam, false);
    // Only the bias speaks for a text without known words: sigmoid(-0.5).
    assert.equal(classifyText(model, '').score, Math.exp(-0.5) / (1 + Math.exp(-0.5)));
  });

  test('refuses text over the bound and models without a feature width', () => {
    classifyText(model, 'x'.repeat(MAX_CLASSIFY_CHARS));
    assert.throws(
      () => classifyText(model, 'x'.repeat(MAX_CLASSIFY_CHARS + 1)),
      (e: unknown) => e instanceof ClassifyError && e.code === 'text-too-long',
    );
    assert.throws(
      () => classifyText(new Float64Array(12), 'prize'),
      (e: unknown) => e instanceof ClassifyError && e.code === 'bad-model',
    );
    assert.throws(
      () => classifyText(model, 42 as unknown as string),
      (e: unknown) => e instanceof ClassifyError && e.code === 'not-text',
    );
  });
});
