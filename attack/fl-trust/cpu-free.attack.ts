/**
 * Finding 6 (MEDIUM): the ledger prices a round at q = 1e-9 at ε ≈ 0, so the round is always
 * affordable and a coordinator can make every participant run 1 000 DP-SGD steps per round
 * (each a pass over its slice and 16 385 Gaussian draws, on the event loop), forever, at no cost
 * to the budget. See attack/fl-trust/cpu-free-figures.ts for the figures.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/cpu-free.attack.ts
 *
 * Fails until the ledger (or the gate) has a floor on q — or bounds the work of a round by what
 * it pays in ε — and declines with a typed reason.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PrivacyLedger } from '../../node/fl/privacy-budget.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import { defaultSgd } from './lib.ts';

describe('attack: free CPU through a tiny sampling rate', () => {
  test('a round at q = 1e-9 with the most steps is declined with a reason', () => {
    const ledger = PrivacyLedger.fresh();
    const tiny = {
      ...defaultSgd,
      samplingRate: 1e-9,
      noiseMultiplier: 1,
      steps: FL_DEFAULTS.privacy.maxStepsPerRound,
    };
    for (let i = 0; i < 200; i++) {
      const a = ledger.canAfford(tiny);
      if (!a.ok) return; // declined, as it should be
      ledger.charge(tiny);
    }
    assert.fail(
      `200 rounds × ${tiny.steps} steps at q = 1e-9 accepted; ε spent ${ledger.spent().toExponential(3)}`,
    );
  });
});
