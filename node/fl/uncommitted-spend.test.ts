/**
 * Issue 16, finding 4 on the ledger: spend on networked rounds whose commit never came is capped
 * per coordinator and in all, recovers with commits and with time, and survives a restart.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FL_DEFAULTS } from '../options.ts';
import { planDpSgd, roundParamsOf } from './dp-sgd-fedavg.ts';
import { PrivacyBudgetError, PrivacyLedger } from './privacy-budget.ts';
import { MAX_OPEN_ROUNDS } from './uncommitted-spend.ts';

const P = FL_DEFAULTS.privacy;
const round = roundParamsOf(planDpSgd(P.budgetEpsilon, P.delta));
const T0 = 1_700_000_000_000;
const DAY = 24 * 3_600_000;

/** Charges `n` rounds of `coordinator` at `atMs`, labelled `${prefix}${i}`. */
function fail(ledger: PrivacyLedger, coordinator: string, n: number, prefix: string, atMs = T0): void {
  for (let i = 0; i < n; i++) ledger.charge(round, { coordinator, label: `${prefix}${i}`, atMs });
}

describe('spend without a commit', () => {
  test('a coordinator may hold 3 default rounds without a commit; the 4th is declined, others go on', () => {
    const ledger = PrivacyLedger.fresh();
    fail(ledger, 'boss', 3, 'b');
    const u = ledger.report().uncommitted;
    assert.ok(Math.abs(u.byCoordinator.boss! - 0.15) < 1e-6, JSON.stringify(u));
    assert.equal(u.openRounds, 3);
    const a = ledger.canAfford(round, { coordinator: 'boss', atMs: T0 });
    assert.ok(!a.ok && a.reason === 'uncommitted-per-coordinator', JSON.stringify(a));
    assert.match(a.message, /15\.0 %.*20\.0 %.*over 15\.0 %/);
    assert.throws(
      () => ledger.charge(round, { coordinator: 'boss', label: 'b3', atMs: T0 }),
      (e) => e instanceof PrivacyBudgetError && e.reason === 'uncommitted-per-coordinator',
    );
    // In-process rounds (no coordinator) are not networked rounds and are not capped.
    assert.ok(ledger.canAfford(round).ok);
    // Another coordinator is fine until all of them together hold 25 %.
    fail(ledger, 'other', 2, 'o');
    const all = ledger.canAfford(round, { coordinator: 'third', atMs: T0 });
    assert.ok(!all.ok && all.reason === 'uncommitted-in-all', JSON.stringify(all));
    assert.ok(ledger.spent() < P.budgetEpsilon / 2, `ε ${ledger.spent()} after 5 failed rounds`);
  });

  test('a commit clears its round and forgives half its cost of the coordinator’s older failures', () => {
    const ledger = PrivacyLedger.fresh();
    fail(ledger, 'boss', 2, 'f');
    ledger.charge(round, { coordinator: 'boss', label: 'ok', atMs: T0 });
    assert.equal(ledger.committed('ok', T0), true);
    assert.equal(ledger.committed('ok', T0), false, 'once');
    assert.equal(ledger.committed('never-charged', T0), false);
    const u = ledger.report().uncommitted;
    // 2 failures (10 %), less half of the committed round's 5 %.
    assert.ok(Math.abs(u.byCoordinator.boss! - 0.075) < 1e-6, JSON.stringify(u));
    assert.ok(Math.abs(u.shareInAll - 0.075) < 1e-6);
    assert.equal(u.openRounds, 2);
    // Another coordinator's commit forgives the total, not boss's own.
    ledger.charge(round, { coordinator: 'other', label: 'o', atMs: T0 });
    ledger.committed('o', T0);
    const v = ledger.report().uncommitted;
    assert.ok(Math.abs(v.byCoordinator.boss! - 0.075) < 1e-6);
    assert.ok(Math.abs(v.shareInAll - 0.05) < 1e-6, JSON.stringify(v));
    assert.equal(v.byCoordinator.other, undefined, 'nothing left of it');
  });

  test('the default 20-round plan that commits every round is never declined', () => {
    const ledger = PrivacyLedger.fresh();
    for (let r = 0; r < 20; r++) {
      const ctx = { coordinator: 'boss', atMs: T0 + r * 60_000 };
      assert.ok(ledger.canAfford(round, ctx).ok, `round ${r}`);
      ledger.charge(round, { ...ctx, label: `r${r}` });
      ledger.committed(`r${r}`, ctx.atMs + 1_000);
    }
    assert.ok(ledger.spent() > 2.99);
    assert.equal(ledger.report().uncommitted.shareInAll, 0);
  });

  test('failures decay with the half-life: a stopped node takes a round again within a day or two', () => {
    const ledger = PrivacyLedger.fresh();
    fail(ledger, 'a', 3, 'a');
    fail(ledger, 'b', 2, 'b');
    assert.equal(ledger.canAfford(round, { coordinator: 'c', atMs: T0 }).ok, false);
    assert.equal(ledger.canAfford(round, { coordinator: 'c', atMs: T0 + 0.9 * DAY }).ok, false);
    assert.ok(ledger.canAfford(round, { coordinator: 'c', atMs: T0 + 1.0 * DAY }).ok, 'in all: 0.97 days');
    assert.equal(ledger.canAfford(round, { coordinator: 'a', atMs: T0 + 1.7 * DAY }).ok, false);
    assert.ok(
      ledger.canAfford(round, { coordinator: 'a', atMs: T0 + 1.8 * DAY }).ok,
      'per coordinator: 1.75 days',
    );
    const h = ledger.report().uncommitted;
    assert.ok(Math.abs(h.shareInAll - 0.25 * 2 ** (-1.8 / 3)) < 1e-6, JSON.stringify(h));
  });

  test('the first round of a coordinator is let through even when it alone is over a cap', () => {
    // At a budget of 1 one default round is 41 % of it: more than either cap.
    const ledger = PrivacyLedger.fresh({ budgetEpsilon: 1 });
    assert.ok(ledger.canAfford(round, { coordinator: 'boss', atMs: T0 }).ok);
    ledger.charge(round, { coordinator: 'boss', label: 'x', atMs: T0 });
    assert.ok(ledger.report().uncommitted.shareInAll > 0.4);
    // A second, from anyone, would not fit the budget anyway; lowered caps show the in-all one.
    const strict = PrivacyLedger.fresh({ uncommittedSharePerCoordinator: 1, uncommittedShareInAll: 0.06 });
    strict.charge(round, { coordinator: 'a', label: 'x', atMs: T0 });
    const r = strict.canAfford(round, { coordinator: 'b', atMs: T0 });
    assert.ok(!r.ok && r.reason === 'uncommitted-in-all', JSON.stringify(r));
  });

  test('what is uncommitted survives a restart; a ledger stored before it loads with none', () => {
    const ledger = PrivacyLedger.fresh();
    fail(ledger, 'boss', 3, 'b');
    const state = JSON.parse(JSON.stringify(ledger.toState()));
    const again = PrivacyLedger.fromState(state);
    assert.deepEqual(again.report().uncommitted, ledger.report().uncommitted);
    const a = again.canAfford(round, { coordinator: 'boss', atMs: T0 });
    assert.ok(!a.ok && a.reason === 'uncommitted-per-coordinator');
    assert.equal(again.committed('b2', T0), true, 'its open rounds too');
    // A ledger file from before (no `uncommitted`): nothing is uncommitted.
    const { uncommitted: _, ...old } = state;
    assert.equal(PrivacyLedger.fromState(old).report().uncommitted.shareInAll, 0);
    // Wrong lengths are refused like any other impossible ledger.
    assert.throws(
      () => PrivacyLedger.fromState({ ...state, uncommitted: { ...state.uncommitted, total: [0] } }),
      { name: 'LedgerStateError' },
    );
  });

  test('open rounds are bounded; a round too old to be remembered stays counted as failed', () => {
    const ledger = PrivacyLedger.fresh({ uncommittedSharePerCoordinator: 1, uncommittedShareInAll: 1 });
    const tiny = { ...round, steps: 1 };
    for (let i = 0; i <= MAX_OPEN_ROUNDS; i++)
      ledger.charge(tiny, { coordinator: `c${i}`, label: `r${i}`, atMs: T0 });
    assert.equal(ledger.report().uncommitted.openRounds, MAX_OPEN_ROUNDS);
    assert.equal(ledger.committed('r0', T0), false, 'the oldest was dropped');
    assert.equal(ledger.committed(`r${MAX_OPEN_ROUNDS}`, T0), true);
  });
});
