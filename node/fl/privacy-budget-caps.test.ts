/**
 * Issue 16, findings 6 and 7 (moved here from attack/fl-trust/): what one announcement may buy.
 * A near-zero sampling rate (or a huge z) made a round nearly free, so a coordinator bought the
 * most local steps from every participant forever at no cost to the budget; q = 1, z = 1.5 and
 * one step spent 2.985 of a fresh node's 3 in one round.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FL_DEFAULTS } from '../options.ts';
import { budgetCapacity, budgetShare } from './budget-share.ts';
import { planDpSgd, roundParamsOf } from './dp-sgd-fedavg.ts';
import { type DpRoundParams, PrivacyBudgetError, PrivacyLedger } from './privacy-budget.ts';
import { computeRdp, DEFAULT_ORDERS, epsilonFor } from './rdp-accountant.ts';

const { budgetEpsilon, delta } = FL_DEFAULTS.privacy;
const plan = planDpSgd(budgetEpsilon, delta);
const defaultRound: DpRoundParams = roundParamsOf(plan);
const capacity = budgetCapacity(budgetEpsilon, delta, DEFAULT_ORDERS);
const shareOf = (p: DpRoundParams) =>
  budgetShare(computeRdp(p.samplingRate, p.noiseMultiplier, p.steps, DEFAULT_ORDERS), capacity);

describe('budget share', () => {
  test('each of the default plan’s 20 rounds is a twentieth of the budget; all 20 are all of it', () => {
    assert.ok(Math.abs(shareOf(defaultRound) - 1 / plan.rounds) < 1e-6, String(shareOf(defaultRound)));
    const all = shareOf({ ...defaultRound, steps: defaultRound.steps * plan.rounds });
    assert.ok(all <= 1 && all > 1 - 1e-6, String(all));
    // ε of the same rounds is concave: the first alone is 0.648, over 4× a twentieth of 3.
    assert.ok(epsilonFor(plan.samplingRate, plan.noiseMultiplier, plan.steps, delta) > 0.64);
    // A budget of 0 has capacity at no order.
    assert.equal(
      budgetShare(new Float64Array(DEFAULT_ORDERS.length), budgetCapacity(0, delta, DEFAULT_ORDERS)),
      Infinity,
    );
  });
});

describe('what a round may buy', () => {
  test('a round at q = 1e-9 with the most steps is declined with a reason (finding 6)', () => {
    const ledger = PrivacyLedger.fresh();
    const tiny = {
      ...defaultRound,
      samplingRate: 1e-9,
      noiseMultiplier: 1,
      steps: FL_DEFAULTS.privacy.maxStepsPerRound,
    };
    const a = ledger.canAfford(tiny);
    assert.ok(!a.ok && a.reason === 'sampling-below-floor', JSON.stringify(a));
    assert.throws(
      () => ledger.charge(tiny),
      (e) => e instanceof PrivacyBudgetError && e.reason === 'sampling-below-floor',
    );
    assert.equal(ledger.spent(), 0);
  });

  test('above the floors, the steps of a round must be paid for in budget: no free CPU through z', () => {
    const ledger = PrivacyLedger.fresh();
    const steps = FL_DEFAULTS.privacy.maxStepsPerRound;
    // At the q floor with the default z, 1,000 steps pay 1.06 % of the budget and owe 10 %.
    const atFloor = { ...defaultRound, samplingRate: FL_DEFAULTS.privacy.minSamplingRate, steps };
    const a = ledger.canAfford(atFloor);
    assert.ok(!a.ok && a.reason === 'work-exceeds-price', JSON.stringify(a));
    assert.ok(a.epsilonRound! < 0.3, 'cheap in ε: the budget alone would have let it through');
    // z has no ceiling: a huge one makes even q = 1 nearly free.
    const loud = ledger.canAfford({ ...defaultRound, samplingRate: 1, noiseMultiplier: 1e6, steps });
    assert.ok(!loud.ok && loud.reason === 'work-exceeds-price', JSON.stringify(loud));
    // The price is per step: at the floors of q and z one step pays 0.046 % and owes 0.01 %.
    const few = ledger.canAfford({ ...atFloor, noiseMultiplier: 1, steps: 1 });
    assert.ok(few.ok, JSON.stringify(few));
    assert.equal(ledger.canAfford({ ...atFloor, steps: 1 }).ok, false, 'at z = 4.65 it pays 0.001 %');
    // A raised budget makes a round a smaller share of it, not the node's CPU cheaper.
    const rich = PrivacyLedger.fresh({ budgetEpsilon: 100 });
    assert.ok(rich.canAfford(defaultRound).ok, 'the default round still fits a budget of 100');
    const r = rich.canAfford(atFloor);
    assert.ok(!r.ok && r.reason === 'work-exceeds-price');
  });

  test('a single round priced at nearly the whole budget is declined (finding 7)', () => {
    const greedy = { ...defaultRound, samplingRate: 1, noiseMultiplier: 1.5, steps: 1 };
    const a = PrivacyLedger.fresh().canAfford(greedy);
    assert.ok(!a.ok && a.reason === 'round-epsilon-above-cap', JSON.stringify(a));
    assert.ok(
      a.epsilonRound! > 2.9 && a.epsilonAfter! < budgetEpsilon,
      'the budget alone would have let it through',
    );
    // The cap is a small multiple of the default plan's round, and lets that and the e2e's
    // 10-step rounds through.
    const first = epsilonFor(plan.samplingRate, plan.noiseMultiplier, plan.steps, delta);
    assert.ok(
      FL_DEFAULTS.privacy.maxEpsilonPerRound >= 1.5 * first &&
        FL_DEFAULTS.privacy.maxEpsilonPerRound <= 3 * first,
    );
    const tenSteps = planDpSgd(budgetEpsilon, delta, { ...FL_DEFAULTS.dpSgd, stepsPerRound: 10 });
    assert.ok(PrivacyLedger.fresh().canAfford(roundParamsOf(tenSteps)).ok);
    // A node's own policy moves the cap.
    assert.ok(PrivacyLedger.fresh({ maxEpsilonPerRound: 3 }).canAfford(greedy).ok);
  });
});
