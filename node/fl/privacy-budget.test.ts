import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { FL_DEFAULTS } from '../options.ts';
import {
  type DpRoundParams,
  LedgerStateError,
  loadLedger,
  MAX_LEDGER_BYTES,
  PrivacyBudgetError,
  PrivacyLedger,
  saveLedger,
} from './privacy-budget.ts';
import { DEFAULT_ORDERS, epsilonFor, noiseMultiplierFor } from './rdp-accountant.ts';

// The default plan: 20 rounds × 5 steps at q = 0.3 spend exactly the default ε = 3.
const z = noiseMultiplierFor(3, 0.3, 100, 1e-5);
const round: DpRoundParams = { samplingRate: 0.3, noiseMultiplier: z, clipNorm: 0.1, steps: 5 };

const dirs: string[] = [];
const tempDir = async () => {
  const d = await mkdtemp(path.join(tmpdir(), 'cairn-ledger-'));
  dirs.push(d);
  return d;
};
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('privacy ledger', () => {
  test('a new ledger has the default budget, written once in FL_DEFAULTS', () => {
    const ledger = PrivacyLedger.fresh();
    assert.equal(FL_DEFAULTS.privacy.budgetEpsilon, 3);
    assert.equal(ledger.budgetEpsilon, 3);
    assert.equal(ledger.delta, 1e-5);
    assert.equal(ledger.spent(), 0);
    assert.deepEqual(ledger.report().history, []);
  });

  test('rounds compose in RDP: 20 rounds of 5 steps cost what 100 steps cost, not 20× one round', () => {
    const ledger = PrivacyLedger.fresh();
    const perRound = epsilonFor(0.3, z, 5, 1e-5);
    for (let r = 0; r < 20; r++) {
      const check = ledger.canAfford(round);
      assert.ok(check.ok, `round ${r}: ${JSON.stringify(check)}`);
      const entry = ledger.charge(round, { label: `r${r}`, atMs: 1000 + r });
      assert.equal(entry.index, r);
      assert.ok(Math.abs(entry.epsilonRound - perRound) < 1e-12);
      assert.ok(Math.abs(entry.epsilonTotal - check.epsilonAfter) < 1e-12);
    }
    const report = ledger.report();
    assert.equal(report.rounds, 20);
    assert.equal(report.steps, 100);
    assert.ok(Math.abs(report.epsilonTotal - epsilonFor(0.3, z, 100, 1e-5)) < 1e-9);
    assert.ok(report.epsilonTotal <= 3 && report.epsilonTotal > 2.9999);
    // Adding per-round ε (basic composition) would claim about 4.3× as much.
    assert.ok(20 * perRound > 4 * report.epsilonTotal, `${20 * perRound} vs ${report.epsilonTotal}`);
    // Per round, ε grows: each round's entry reports the total so far.
    const totals = report.history.map((e) => e.epsilonTotal);
    assert.deepEqual(
      totals,
      [...totals].sort((a, b) => a - b),
    );
  });

  test('a node at its budget declines and says why; charge refuses too; raising the budget reopens it', () => {
    const ledger = PrivacyLedger.fresh();
    for (let r = 0; r < 20; r++) ledger.charge(round);
    const spent = ledger.spent();
    const check = ledger.canAfford(round);
    assert.equal(check.ok, false);
    assert.ok(!check.ok);
    assert.equal(check.reason, 'round-exceeds-budget');
    assert.ok(check.epsilonAfter! > 3, check.message);
    assert.match(check.message, /would reach 3\.\d+ of 3/);
    assert.throws(
      () => ledger.charge(round),
      (e) => e instanceof PrivacyBudgetError && e.reason === 'round-exceeds-budget',
    );
    assert.equal(ledger.spent(), spent, 'a refused charge spends nothing');
    assert.equal(ledger.report().rounds, 20);
    // The operator raises the budget: the same round is affordable again.
    ledger.setBudget(8);
    assert.equal(ledger.canAfford(round).ok, true);
    // Lowered below what is spent: nothing left at all.
    ledger.setBudget(2);
    const exhausted = ledger.canAfford({ ...round, steps: 1 });
    assert.ok(!exhausted.ok && exhausted.reason === 'budget-exhausted', JSON.stringify(exhausted));
    assert.throws(() => ledger.setBudget(Number.NaN), RangeError);
  });

  test('floors and limits on what a coordinator may ask for, each with its reason', () => {
    const ledger = PrivacyLedger.fresh();
    const cases: [Partial<DpRoundParams>, string][] = [
      [{ noiseMultiplier: 0.99 }, 'noise-below-floor'],
      [{ clipNorm: 0.009 }, 'clip-below-floor'],
      [{ steps: 1001 }, 'too-many-steps'],
      [{ samplingRate: 0 }, 'invalid-params'],
      [{ samplingRate: 1.01 }, 'invalid-params'],
      [{ samplingRate: Number.NaN }, 'invalid-params'],
      [{ noiseMultiplier: Infinity }, 'invalid-params'],
      [{ noiseMultiplier: 0 }, 'invalid-params'],
      [{ clipNorm: -1 }, 'invalid-params'],
      [{ steps: 2.5 }, 'invalid-params'],
      [{ steps: 0 }, 'invalid-params'],
      [{ steps: '5' as unknown as number }, 'invalid-params'],
      [{ noiseMultiplier: '4' as unknown as number }, 'invalid-params'],
    ];
    for (const [change, reason] of cases) {
      const r = ledger.canAfford({ ...round, ...change });
      assert.ok(!r.ok && r.reason === reason, `${JSON.stringify(change)} → ${JSON.stringify(r)}`);
      assert.throws(
        () => ledger.charge({ ...round, ...change }),
        (e) => e instanceof PrivacyBudgetError && e.reason === reason,
      );
    }
    assert.equal(ledger.spent(), 0);
    // At the floors exactly: accepted. A node's own policy can move them.
    assert.equal(
      ledger.canAfford({ samplingRate: 0.01, noiseMultiplier: 1, clipNorm: 0.01, steps: 1 }).ok,
      true,
    );
    const strict = PrivacyLedger.fresh({ minNoiseMultiplier: 5 });
    const r = strict.canAfford(round);
    assert.ok(!r.ok && r.reason === 'noise-below-floor');
  });

  test('one expensive round is refused before it is spent, not after', () => {
    // z = 1, no subsampling: one step costs ε ≈ 4.7 > 3 on a fresh ledger.
    const ledger = PrivacyLedger.fresh();
    const r = ledger.canAfford({ samplingRate: 1, noiseMultiplier: 1, clipNorm: 1, steps: 1 });
    assert.ok(!r.ok && r.reason === 'round-exceeds-budget');
    assert.ok(r.epsilonRound! > 4.5 && r.epsilonRound! < 5);
  });

  test('history is bounded; the totals still cover every round', () => {
    const ledger = PrivacyLedger.fresh({ historyLimit: 3 });
    for (let r = 0; r < 5; r++) ledger.charge(round, { label: `r${r}` });
    const report = ledger.report();
    assert.equal(report.rounds, 5);
    assert.deepEqual(
      report.history.map((e) => e.label),
      ['r2', 'r3', 'r4'],
    );
    assert.ok(Math.abs(report.epsilonTotal - epsilonFor(0.3, z, 25, 1e-5)) < 1e-9);
    const reloaded = PrivacyLedger.fromState(JSON.parse(JSON.stringify(ledger.toState())), {
      historyLimit: 3,
    });
    assert.equal(reloaded.report().history.length, 3);
  });

  test('save and load round-trip through an atomic write; composition continues across a restart', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'fl', 'privacy-ledger.json');
    const fresh = await loadLedger(file);
    assert.equal(fresh.spent(), 0, 'no file: a node that has contributed nothing');
    const a = PrivacyLedger.fresh();
    for (let r = 0; r < 7; r++) a.charge(round, { label: `r${r}`, atMs: r });
    a.setBudget(4);
    await saveLedger(file, a);
    await saveLedger(file, a); // overwrites in place
    assert.deepEqual(await readdir(path.dirname(file)), ['privacy-ledger.json'], 'no temporary file left');
    const state = JSON.parse(await readFile(file, 'utf8'));
    assert.deepEqual(state, JSON.parse(JSON.stringify(a.toState())));
    const b = await loadLedger(file);
    assert.deepEqual(b.report(), a.report());
    assert.equal(b.budgetEpsilon, 4, 'the stored budget (raised by the operator) wins over the default');
    for (let r = 7; r < 20; r++) b.charge(round);
    const uninterrupted = PrivacyLedger.fresh();
    for (let r = 0; r < 20; r++) uninterrupted.charge(round);
    assert.ok(Math.abs(b.spent() - uninterrupted.spent()) < 1e-12);
  });

  test('a failed write leaves the old ledger and no temporary file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'ledger.json');
    // A non-empty directory where the file should go: the rename fails.
    await mkdir(path.join(file, 'x'), { recursive: true });
    await assert.rejects(saveLedger(file, PrivacyLedger.fresh()));
    assert.deepEqual(await readdir(dir), ['ledger.json']);
  });

  test('an unreadable ledger is an error, never a fresh budget', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'ledger.json');
    const good = PrivacyLedger.fresh();
    good.charge(round);
    const state = good.toState();
    const bad: [string, unknown][] = [
      ['not json', '{"version":1,'],
      ['wrong version', { ...state, version: 2 }],
      ['negative RDP', { ...state, rdp: state.rdp.map((v, k) => (k === 3 ? -1 : v)) }],
      ['orders and RDP differ in length', { ...state, rdp: state.rdp.slice(1) }],
      ['order ≤ 1', { ...state, orders: state.orders.map((o, k) => (k === 0 ? 1 : o)) }],
      ['δ out of range', { ...state, delta: 2 }],
      ['extra field', { ...state, admin: true }],
      ['missing field', { ...state, rdp: undefined }],
    ];
    for (const [what, content] of bad) {
      await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
      await assert.rejects(loadLedger(file), LedgerStateError, what);
    }
    await writeFile(file, Buffer.alloc(MAX_LEDGER_BYTES + 1, 0x20));
    await assert.rejects(loadLedger(file), LedgerStateError, 'oversized');
  });

  test('an order with infinite RDP survives JSON as null', () => {
    const state = PrivacyLedger.fresh().toState();
    const withInf = {
      ...state,
      rounds: 1,
      rdp: state.rdp.map((_, k) => (k === DEFAULT_ORDERS.length - 1 ? null : 0.01)),
    };
    const ledger = PrivacyLedger.fromState(JSON.parse(JSON.stringify(withInf)));
    assert.ok(Number.isFinite(ledger.spent()));
    assert.equal(ledger.toState().rdp.at(-1), null);
  });
});
