/**
 * Issue 16 item 1 on a participant: a record-level round is priced by the node's own ledger
 * before it joins, charged and saved before it trains; declines are normal answers with a reason
 * (counted in cairn_fl_declined_total); the ledger outlives a restart; an operator's budget lets
 * an exhausted node join again. The round at the end runs the real coordinator and participants
 * in process (no network), in record mode.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../log.ts';
import { FL_DEFAULTS } from '../../options.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import { seededRoundRandomness } from '../../testing/prng.ts';
import { survivorKeys } from '../../testing/survivor-keys.ts';
import { featurisedCorpus, splitIndices, subset } from '../dataset.ts';
import { planDpSgd } from '../dp-sgd-fedavg.ts';
import { evaluate, zeroParams } from '../logistic.ts';
import { PrivacyLedger } from '../privacy-budget.ts';
import { recordSecAggDp } from '../record-contribution.ts';
import { coordinateRound } from './coordinator.ts';
import { localLink } from './links.ts';
import { createFlMetrics } from './metrics.ts';
import { FlParticipant } from './participant.ts';
import { LEDGER_FILE, PrivacyGate } from './privacy-gate.ts';
import type { DpMode, RecordDp, RoundPrivacy } from './wire.ts';

const log = createLogger('silent');
/** The coordinator every round here is announced by. */
const COORD = 'coordinator-peer';
const ids = flIdentities();
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const tmp = async () => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'cairn-privacy-'));
  dirs.push(d);
  return d;
};

const plan = planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta);
const sgd: RecordDp = {
  samplingRate: plan.samplingRate,
  noiseMultiplier: plan.noiseMultiplier,
  clipNorm: plan.clipNorm,
  steps: plan.steps,
  learningRate: plan.learningRate,
  l2: plan.l2,
  biasScale: plan.biasScale ?? 1,
};
const record = (over: Partial<RecordDp> = {}): RoundPrivacy & { mode: 'record' } => ({
  mode: 'record',
  sgd: { ...sgd, ...over },
});

async function gate(dataDir: string, mode: DpMode = 'record', budgetEpsilon?: number) {
  const registry = new Registry();
  const metrics = createFlMetrics(registry);
  const g = new PrivacyGate({
    dataDir,
    mode,
    ...(budgetEpsilon !== undefined ? { budgetEpsilon } : {}),
    declined: metrics.declined,
    log,
  });
  await g.load();
  const declined = async (reason: string) =>
    (await registry.getSingleMetric('cairn_fl_declined_total')!.get()).values.find(
      (v) => v.labels.reason === reason,
    )?.value ?? 0;
  return { g, declined };
}

describe('privacy gate', () => {
  test('declines with the reason: mode, unknown mode, floors on z and C; counts each', async () => {
    const { g, declined } = await gate(await tmp());
    const cases: [RoundPrivacy, string][] = [
      [{ mode: 'update' }, 'mode-not-accepted'],
      [{ mode: 'unknown', code: 7 }, 'unknown-mode'],
      [record({ noiseMultiplier: 0.5 }), 'noise-below-floor'],
      [record({ clipNorm: 0.001 }), 'clip-below-floor'],
      [record({ steps: FL_DEFAULTS.privacy.maxStepsPerRound + 1 }), 'too-many-steps'],
    ];
    for (const [privacy, reason] of cases) {
      const d = g.decide(privacy, 'r', COORD);
      assert.equal(d.ok, false);
      assert.equal(!d.ok && d.reason, reason);
      assert.equal(await declined(reason), 1, reason);
    }
    assert.deepEqual(g.status()!.declines, {
      'mode-not-accepted': 1,
      'unknown-mode': 1,
      'noise-below-floor': 1,
      'clip-below-floor': 1,
      'too-many-steps': 1,
    });
    // The default plan is affordable; an update-mode node takes update-level rounds too.
    const ok = g.decide(record(), 'r', COORD);
    assert.equal(ok.ok && ok.mode, 'record');
    const upd = await gate(await tmp(), 'update');
    assert.deepEqual(upd.g.decide({ mode: 'update' }, 'r', COORD), { ok: true, mode: 'update' });
  });

  test('the default plan spends the default budget in 20 rounds; the 21st no longer fits', async () => {
    const { g, declined } = await gate(await tmp());
    const reference = PrivacyLedger.fresh();
    for (let r = 0; r < plan.rounds; r++) {
      const d = g.decide(record(), `r${r}`, COORD);
      assert.ok(d.ok, `round ${r}`);
      const e = await g.charge(record(), `r${r}`, COORD);
      // Each round reaches its commit, so the caps on spend without one never bind.
      await g.committed(`r${r}`);
      reference.charge(sgd);
      assert.equal(d.ok && d.mode === 'record' && d.epsilonAfter, e.epsilonTotal);
    }
    const s = g.status()!;
    assert.equal(s.rounds, 20);
    assert.equal(s.epsilonTotal, reference.spent());
    assert.ok(s.epsilonTotal <= 3 && s.epsilonTotal > 2.99, `ε ${s.epsilonTotal}`);
    // A sliver of ε is left (the plan lands just under 3), not enough for another round.
    const d = g.decide(record(), 'r20', COORD);
    assert.equal(!d.ok && d.reason, 'round-exceeds-budget');
    assert.equal(await declined('round-exceeds-budget'), 1);
    await assert.rejects(g.charge(record(), 'r20', COORD), { name: 'PrivacyBudgetError' });
    // At the budget exactly, nothing is left at all.
    await g.setBudget(s.epsilonTotal);
    const none = g.decide(record(), 'r20', COORD);
    assert.equal(!none.ok && none.reason, 'budget-exhausted');
  });

  test('the ledger survives a restart; --fl-budget and POST /fl/budget change the budget, persisted', async () => {
    const dir = await tmp();
    const first = await gate(dir);
    await first.g.charge(record(), 'a', COORD);
    await first.g.charge(record(), 'b', COORD);
    const spent = first.g.status()!.epsilonTotal;
    assert.ok(spent > 0);
    const onDisk = JSON.parse(await readFile(path.join(dir, LEDGER_FILE), 'utf8'));
    assert.equal(onDisk.rounds, 2);

    const again = await gate(dir);
    assert.equal(again.g.status()!.epsilonTotal, spent);
    assert.deepEqual(
      again.g.status()!.history.map((e) => e.label),
      ['a', 'b'],
    );
    // The operator's budget: below what is spent the node declines; raised, it joins again.
    await again.g.setBudget(spent / 2);
    assert.equal(!again.g.decide(record(), 'c', COORD).ok && 'declined', 'declined');
    const raised = await again.g.setBudget(8);
    assert.equal(raised.budgetEpsilon, 8);
    assert.equal((await gate(dir)).g.status()!.budgetEpsilon, 8, 'a raised budget is kept over a restart');
    // --fl-budget at start sets it (and persists it).
    assert.equal((await gate(dir, 'record', 1.5)).g.status()!.budgetEpsilon, 1.5);
    assert.equal((await gate(dir)).g.status()!.budgetEpsilon, 1.5);
  });

  test('an unreadable ledger is not replaced by a fresh one: record-level rounds are declined', async () => {
    const dir = await tmp();
    await writeFile(path.join(dir, LEDGER_FILE), '{"version":1, "rdp": [');
    const { g, declined } = await gate(dir);
    const d = g.decide(record(), 'r', COORD);
    assert.equal(!d.ok && d.reason, 'ledger-unavailable');
    assert.equal(await declined('ledger-unavailable'), 1);
    assert.equal(g.status(), undefined);
    assert.equal(await readFile(path.join(dir, LEDGER_FILE), 'utf8'), '{"version":1, "rdp": [');
  });
});

describe('a record-level round in process', async () => {
  const ex = featurisedCorpus();
  const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 4, mode: 'iid' });
  const keys = await survivorKeys();

  test('each participant charges its own ledger once; one at its budget declines, the others complete', async () => {
    const budgets = [undefined, undefined, undefined, 0];
    const gates = await Promise.all(budgets.map(async (b) => (await gate(await tmp(), 'record', b)).g));
    const parts = gates.map(
      (g, k) =>
        new FlParticipant({
          self: `p${k + 1}`,
          data: () => subset(ex, split.slices[k]!),
          privacy: g,
          resolveModel: async (_h, count) => zeroParams(count - 1),
          storeModel: async () => 'stored',
          randomness: seededRoundRandomness(40 + k),
          verifySurvivors: keys.verify,
          sign: ids.signer(`p${k + 1}`),
          verifyAdverts: ids.verify,
        }),
    );
    const global = { hash: null, params: zeroParams(ex.dim) };
    const result = await coordinateRound(
      global,
      parts.map((p, k) => localLink(`p${k + 1}`, p)),
      {
        roundId: new Uint8Array(32).fill(5),
        round: 1,
        dp: recordSecAggDp(FL_DEFAULTS.recordUpdateClipNorm),
        train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
        deadlineMs: 30_000,
        privacy: record(),
      },
      { sign: keys.sign, verifyAdverts: ids.verify },
    );
    assert.deepEqual([...result.included].sort(), ['p1', 'p2', 'p3']);
    const left = result.leftOut.find((l) => l.peerId === 'p4');
    assert.match(left?.reason ?? '', /declined: budget-exhausted/);
    const oneRound = PrivacyLedger.fresh().charge(sgd).epsilonTotal;
    for (const [k, g] of gates.entries()) {
      const s = g.status()!;
      assert.equal(s.rounds, k < 3 ? 1 : 0, `p${k + 1} rounds`);
      if (k < 3) {
        assert.equal(s.epsilonTotal, oneRound);
        assert.equal(result.epsilonByPeer.get(`p${k + 1}`), oneRound);
      }
    }
    assert.equal(result.privacy, undefined, 'no update-level accounting in record mode');
    // One round of DP-SGD from zeros already separates spam (81–82% on 5 nodes in bench runs).
    const acc = evaluate(result.params, subset(ex, split.test)).accuracy;
    assert.ok(acc > 0.7, `accuracy after one record-level round: ${acc}`);
  });

  test('a participant without a ledger declines record-level rounds', async () => {
    const p = new FlParticipant({
      self: 'p1',
      data: () => subset(ex, split.slices[0]!),
      resolveModel: async (_h, count) => zeroParams(count - 1),
      storeModel: async () => 'stored',
      sign: ids.signer('p1'),
    });
    const r = await p.announce('boss', {
      roundId: new Uint8Array(32).fill(6),
      round: 1,
      modelHash: null,
      paramCount: ex.dim + 1,
      dp: recordSecAggDp(FL_DEFAULTS.recordUpdateClipNorm),
      train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
      deadlineMs: 5_000,
      privacy: record(),
    });
    assert.equal(r.accept, false);
    assert.match(r.reason, /^ledger-unavailable/);
  });
});
