/**
 * Issue 16, finding 4 (moved here from attack/fl-trust/failed-rounds-drain.attack.ts): one `train`
 * member whose masked update is out of range makes every round fail at the sum's range check,
 * after every honest participant charged its ledger. It cannot be told apart from the honest ones
 * (only the sum is checked), so 20 such rounds spent every honest node's whole budget (ε 3) with
 * no version committed. Now a node declines a coordinator whose rounds without a commit hold 15 %
 * of its budget (3 default rounds), and a commit (`fl-commit`, participant.ts) clears its round.
 *
 * Real participants, gates with ledgers on disk, the real coordinator; links that name the
 * coordinator, so two coordinators can be told apart.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { createLogger } from '../../log.ts';
import { FL_DEFAULTS } from '../../options.ts';
import { linkFrom } from '../../testing/coordinated-link.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import { survivorKeys } from '../../testing/survivor-keys.ts';
import { featurisedCorpus, splitIndices, subset } from '../dataset.ts';
import { planDpSgd } from '../dp-sgd-fedavg.ts';
import { zeroParams } from '../logistic.ts';
import { epsilonFor } from '../rdp-accountant.ts';
import { recordSecAggDp } from '../record-contribution.ts';
import { coordinateRound, RoundFailed } from './coordinator.ts';
import { createFlMetrics } from './metrics.ts';
import { encodeModel } from './model-codec.ts';
import { FlParticipant } from './participant.ts';
import { PrivacyGate } from './privacy-gate.ts';
import type { RoundPrivacy } from './wire.ts';

/** Identity keys the participants sign their key adverts with (by name). */
const ids = flIdentities();

const log = createLogger('silent');
const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

const plan = planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta);
const privacy: RoundPrivacy = {
  mode: 'record',
  sgd: {
    samplingRate: plan.samplingRate,
    noiseMultiplier: plan.noiseMultiplier,
    clipNorm: plan.clipNorm,
    steps: plan.steps,
    learningRate: plan.learningRate,
    l2: plan.l2,
    biasScale: plan.biasScale ?? 1,
  },
};

describe('failed rounds no longer drain honest budgets', async () => {
  const keys = await survivorKeys();
  const ex = featurisedCorpus();
  const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 4, mode: 'iid' });
  let clock = Date.now();
  const now = () => clock;

  const nodes = await Promise.all(
    [0, 1, 2, 3].map(async (k) => {
      const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-drain-'));
      dirs.push(dataDir);
      const registry = new Registry();
      const g = new PrivacyGate({
        dataDir,
        mode: 'record',
        declined: createFlMetrics(registry).declined,
        log,
        now,
      });
      await g.load();
      const name = `p${k + 1}`;
      const p = new FlParticipant({
        self: name,
        sign: ids.signer(name),
        verifyAdverts: ids.verify,
        data: () => subset(ex, split.slices[k]!),
        privacy: g,
        resolveModel: async (_h, count) => zeroParams(count - 1),
        storeModel: async () => 'stored',
        verifySurvivors: keys.verify,
        now,
        // The saboteur: an out-of-range masked update, invisible until the sum is checked.
        ...(k === 3 ? { misbehave: 'out-of-range' as const } : {}),
      });
      const declined = async (reason: string) =>
        (await registry.getSingleMetric('cairn_fl_declined_total')!.get()).values.find(
          (v) => v.labels.reason === reason,
        )?.value ?? 0;
      return { name, p, g, dataDir, declined };
    }),
  );
  const honest = nodes.slice(0, 3);

  const run = (coordinator: string, members: typeof nodes, seed: number) => {
    const roundId = new Uint8Array(32).fill(seed);
    return coordinateRound(
      { hash: null, params: zeroParams(ex.dim) },
      members.map((n) => linkFrom(coordinator, n.name, n.p)),
      {
        roundId,
        round: 1,
        dp: recordSecAggDp(FL_DEFAULTS.recordUpdateClipNorm),
        train: { epochs: 1, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
        deadlineMs: 30_000,
        privacy,
      },
      { sign: keys.sign, verifyAdverts: ids.verify },
    ).then((result) => ({ roundId, result }));
  };

  /** Shares decay with the clock (3-day half-life): the test's minutes move them by < 0.1 %. */
  const near = (x: number | undefined, y: number) => x !== undefined && Math.abs(x - y) < 1e-3;

  test('a saboteur in every round: honest nodes stop after 3 rounds, at ε 1.11 of 3', async () => {
    const reasons: string[] = [];
    for (let r = 0; r < 25; r++) {
      // Failed rounds are held until deadline + 60 s: the saboteur just waits that out.
      clock += 120_000;
      try {
        await run('boss', nodes, r + 1);
        reasons.push('completed');
      } catch (err) {
        assert.ok(err instanceof RoundFailed, (err as Error).message);
        reasons.push(err.reason ?? 'failed');
        if (err.reason === 'too-few-participants') break;
      }
    }
    assert.deepEqual(reasons, [
      'aggregate-out-of-range',
      'aggregate-out-of-range',
      'aggregate-out-of-range',
      'too-few-participants',
    ]);
    const threeRounds = epsilonFor(
      plan.samplingRate,
      plan.noiseMultiplier,
      3 * plan.steps,
      FL_DEFAULTS.privacy.delta,
    );
    for (const n of honest) {
      const s = n.g.status()!;
      assert.equal(s.rounds, 3);
      assert.ok(Math.abs(s.epsilonTotal - threeRounds) < 1e-9 && s.epsilonTotal < 1.2, `ε ${s.epsilonTotal}`);
      assert.ok(near(s.uncommitted.byCoordinator.boss, 0.15), JSON.stringify(s.uncommitted));
      assert.equal(s.declines['uncommitted-per-coordinator'], 1);
      assert.equal(await n.declined('uncommitted-per-coordinator'), 1, 'counted in cairn_fl_declined_total');
    }
  });

  test('another coordinator’s round still fits the cap in all; its commit clears it, on disk', async () => {
    clock += 120_000;
    const { roundId, result } = await run('carol', honest, 77);
    assert.deepEqual([...result.included].sort(), ['p1', 'p2', 'p3']);
    for (const n of honest) assert.ok(near(n.g.status()!.uncommitted.shareInAll, 0.2));
    // What the round runner does once the version is on the chain: fl-commit to each participant.
    const model = encodeModel(zeroParams(ex.dim));
    const hashes = [];
    for (const n of honest) hashes.push(await n.p.commit('carol', { roundId, model }));
    // The commit message alone buys nothing (ATK-16): the spend clears when an entry names it.
    for (const n of honest) assert.ok(near(n.g.status()!.uncommitted.shareInAll, 0.2));
    for (const [k, n] of honest.entries()) await n.p.modelOnChain(hashes[k]!);
    for (const n of honest) {
      const u = n.g.status()!.uncommitted;
      // 15 % of boss's failures; carol's round cleared, and half its cost forgiven of the total.
      assert.ok(near(u.shareInAll, 0.125), JSON.stringify(u));
      assert.equal(u.byCoordinator.carol, undefined);
      assert.ok(near(u.byCoordinator.boss, 0.15));
      const reloaded = new PrivacyGate({
        dataDir: n.dataDir,
        mode: 'record',
        declined: createFlMetrics(new Registry()).declined,
        log,
        now,
      });
      await reloaded.load();
      assert.deepEqual(reloaded.status()!.uncommitted, u, 'the commit was saved');
    }
    // A commit for a round it no longer holds changes nothing (and is refused as before).
    await assert.rejects(
      linkFrom('carol', 'p1', honest[0]!.p).commit({ roundId, model: new Uint8Array(8) }),
      { name: 'SecAggError' },
    );
  });
});
