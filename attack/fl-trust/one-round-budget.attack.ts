/**
 * Finding 7 (MEDIUM): the floors (z ≥ 1, C ≥ 0.01, ≤ 1 000 steps) do not stop a coordinator from
 * spending a fresh node's whole budget in one round: q = 1, z = 1.5, 1 step costs ε 2.985 of 3.
 * With the abort-after-train of finding 4 (or no abort at all) one round ends that node's
 * federated learning; the default plan spreads the same ε over 20 rounds (0.648 for the first).
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/one-round-budget.attack.ts
 *
 * Fails until the ledger caps what one round may spend (e.g. a `maxEpsilonPerRound` policy
 * value, a small multiple of the default plan's first round) and declines with a typed reason.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PrivacyLedger } from '../../node/fl/privacy-budget.ts';
import { defaultSgd } from './lib.ts';

describe('attack: the whole budget in one round', () => {
  test('a single round priced at nearly the whole budget is declined', () => {
    const a = PrivacyLedger.fresh().canAfford({
      ...defaultSgd,
      samplingRate: 1,
      noiseMultiplier: 1.5,
      steps: 1,
    });
    assert.equal(
      a.ok,
      false,
      `accepted: one round would spend ε ${a.ok ? a.epsilonRound.toFixed(3) : '?'} of 3`,
    );
  });
});
