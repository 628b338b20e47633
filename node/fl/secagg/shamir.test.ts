import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { seededBytes as seeded } from '../../testing/prng.ts';
import { seededUniform } from '../random.ts';
import { combineShares, splitSecret } from './shamir.ts';

describe('Shamir over GF(256)', () => {
  const secret = seeded(1)(32);
  const xs = [1, 2, 3, 4, 5, 200, 255];
  const shares = splitSecret(secret, xs, 4, seeded(2));

  test('any t of n shares reconstruct the secret', () => {
    for (let trial = 0; trial < 30; trial++) {
      const pick = [...shares].sort(() => seededUniform(trial)() - 0.5).slice(0, 4);
      const r = seededUniform(trial + 100);
      pick.sort(() => r() - 0.5);
      assert.deepEqual(combineShares(pick, 4), secret);
    }
    assert.deepEqual(combineShares(shares, 4), secret);
  });

  test('t − 1 shares interpolate to something else; shares do not contain the secret', () => {
    assert.notDeepEqual(combineShares(shares.slice(0, 3), 3), secret);
    for (const s of shares) assert.notDeepEqual(s.y, secret);
    assert.throws(() => combineShares(shares.slice(0, 3), 4), RangeError);
  });

  test('threshold 1 is the secret itself; invalid points are refused', () => {
    assert.deepEqual(splitSecret(secret, [7], 1, seeded(3))[0]!.y, secret);
    assert.throws(() => splitSecret(secret, [0, 1], 2, seeded(3)), RangeError);
    assert.throws(() => splitSecret(secret, [1, 1], 2, seeded(3)), RangeError);
    assert.throws(() => splitSecret(secret, [1, 2], 3, seeded(3)), RangeError);
  });
});
