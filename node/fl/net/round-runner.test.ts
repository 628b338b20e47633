import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../../chain/bytes.ts';
import type { ModelPayload } from '../../chain/types.ts';
import { FL_DEFAULTS } from '../../options.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import { offlineRunnerRig, testRunnerPolicy } from '../../testing/round-runner-policy.ts';
import { planDpSgd } from '../dp-sgd-fedavg.ts';
import { FlData } from './data.ts';
import { localLink } from './links.ts';
import { FlParticipant } from './participant.ts';
import type { FlRoundEvent, ModelVersionEvent } from './round-events.ts';
import { modelHeadOf, RoundRunner, type RoundRunnerDeps } from './round-runner.ts';

/**
 * Four participants on one model store (the fourth on the first's slice, so that three stay
 * when the poisoner is left out: rosters name at least three), with survivor-set and advert
 * keys; `poisoner` misbehaves out of range.
 */
async function roundFixture(poisoner?: number) {
  const { store, metrics, log, keys, models } = await offlineRunnerRig('cairn-rounds-');
  const ids = flIdentities();
  const parts = [0, 1, 2, 3].map(
    (k) =>
      new FlParticipant({
        self: `p${k}`,
        data: () => new FlData({ index: k % 3, of: 3, mode: 'iid', seed: 42 }, 42).train(),
        resolveModel: (h, n) => models.resolve(h, n),
        storeModel: (b) => store.putEncoded(b),
        verifySurvivors: keys.verify,
        sign: ids.signer(`p${k}`),
        verifyAdverts: ids.verify,
        // One participant puts a huge input under its masks.
        ...(k === poisoner ? { misbehave: 'out-of-range' as const } : {}),
      }),
  );
  return { store, metrics, log, keys, ids, models, parts };
}

test('the round runner chains versions once mined, commits each as a model entry and reports a failed round as failed', async () => {
  const { store, metrics, log, keys, ids, models, parts } = await roundFixture();
  let available = 3;
  const entries: ModelPayload[] = [];
  // The chain: a committed entry becomes the head when "mined", a while after its commit.
  let head: ModelPayload | undefined;
  let mineAfterMs: number | undefined = 150;
  let runner: RoundRunner | undefined;
  const rounds: FlRoundEvent[] = [];
  const versions: ModelVersionEvent[] = [];
  const deps: RoundRunnerDeps = {
    self: 'p0',
    data: new FlData({ index: 0, of: 3, mode: 'iid', seed: 42 }, 42),
    store,
    models,
    modelHead: () => modelHeadOf(head),
    links: () => parts.slice(0, available).map((p, k) => localLink(`p${k}`, p)),
    commitEntry: async (p) => {
      entries.push(p);
      if (mineAfterMs !== undefined)
        setTimeout(() => {
          head = p;
          runner?.headMoved();
        }, mineAfterMs);
      return 'id';
    },
    sign: keys.sign,
    verifyAdverts: ids.verify,
    penalise: () => {},
    emitRound: (e) => rounds.push(e),
    emitVersion: (e) => versions.push(e),
    metrics,
    deadlineMs: 10_000,
    lossTolerance: FL_DEFAULTS.lossTolerance,
    headWaitMs: 5_000,
    headFetchAttempts: FL_DEFAULTS.headFetchAttempts,
    headFallbackDepth: FL_DEFAULTS.headFallbackDepth,
    mode: 'update',
    recordPlan: planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta),
    recordUpdateClipNorm: FL_DEFAULTS.recordUpdateClipNorm,
    log,
  };
  runner = new RoundRunner(deps);
  const id = (k: number) => new Uint8Array(32).fill(k);
  // Little noise: with three participants z = 0.3 would make two rounds' accuracy a coin toss.
  runner.schedule([id(1), id(2)], { rounds: 2, noiseMultiplier: 0.05 });
  assert.ok(runner.busy);
  await runner.idle();
  assert.deepEqual(
    entries.map((e) => e.round),
    [1, 2],
  );
  assert.equal(entries[0]!.parentHash, null);
  assert.equal(toHex(entries[1]!.parentHash!), toHex(entries[0]!.modelHash));
  assert.ok(entries[1]!.epsilon > entries[0]!.epsilon && Number.isFinite(entries[1]!.epsilon));
  assert.ok(await store.has(toHex(entries[1]!.modelHash)));
  assert.deepEqual(
    rounds.map((r) => [r.round, r.status]),
    [
      [1, 'running'],
      [1, 'completed'],
      [2, 'running'],
      [2, 'completed'],
    ],
  );
  assert.equal(versions[1]!.parentHash, versions[0]!.hash);
  assert.equal(versions[1]!.participants, 3);
  const accuracy = Object.fromEntries(entries[1]!.metrics).accuracy!;
  assert.ok(accuracy > 0.85, `accuracy after two rounds ${accuracy}`);

  // Round 2 waited for version 1 to be mined, and version 2 is the head once mined.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(head?.round, 2);

  // A second runner alone: one participant is too few, and the failure is an event, not a throw.
  available = 1;
  const lonely = new RoundRunner({ ...deps, emitRound: (e: FlRoundEvent) => rounds.push(e) });
  lonely.schedule([id(3)], { rounds: 1 });
  await lonely.idle();
  const failed = rounds.at(-1)!;
  assert.equal(failed.status, 'failed');
  assert.equal(failed.round, 3);
  assert.match(failed.error!, /too few participants/);
  assert.equal(entries.length, 2);

  // A version that is never mined: the next round does not build a rival beside it, it fails.
  available = 3;
  mineAfterMs = undefined;
  const stuck = new RoundRunner({ ...deps, headWaitMs: 200 });
  stuck.schedule([id(4), id(5)], { rounds: 2, noiseMultiplier: 0.05 });
  await stuck.idle();
  assert.deepEqual(
    entries.map((e) => e.round),
    [1, 2, 3],
  );
  const last = rounds.at(-1)!;
  assert.equal(last.status, 'failed');
  assert.match(last.error!, /version 3 is not on the chain after 200 ms/);
});

test('a round whose aggregate is out of range, or whose validation loss regresses, commits nothing and the head stays', async () => {
  const { store, metrics, log, keys, ids, models, parts } = await roundFixture(1);
  const head: ModelPayload = {
    kind: 'model',
    modelHash: new Uint8Array(32).fill(1),
    parentHash: null,
    round: 4,
    metrics: [],
    epsilon: 1,
  };
  // The head's model: zeros, stored under its real hash (the runner resolves it by hash).
  const stored = await store.put(new Float64Array(new FlData(undefined, 42).paramCount));
  const headPayload = { ...head, modelHash: Buffer.from(stored.hash, 'hex') };
  const entries: ModelPayload[] = [];
  const rounds: FlRoundEvent[] = [];
  const deps: RoundRunnerDeps = {
    self: 'p0',
    data: new FlData({ index: 0, of: 3, mode: 'iid', seed: 42 }, 42),
    store,
    models,
    modelHead: () => modelHeadOf(headPayload),
    links: () => parts.map((p, k) => localLink(`p${k}`, p)),
    commitEntry: async (p) => {
      entries.push(p);
      return 'id';
    },
    sign: keys.sign,
    verifyAdverts: ids.verify,
    ...testRunnerPolicy(),
    emitRound: (e) => rounds.push(e),
    metrics,
    log,
  };
  const poisoned = new RoundRunner(deps);
  poisoned.schedule([new Uint8Array(32).fill(8)], { rounds: 1, noiseMultiplier: 0.05 });
  await poisoned.idle();
  assert.equal(entries.length, 0);
  assert.equal(rounds.at(-1)!.status, 'failed');
  assert.equal(rounds.at(-1)!.round, 5);
  assert.match(rounds.at(-1)!.error!, /aggregate out of range: update norm/);
  const failed = async (reason: string) =>
    (await metrics.roundsFailed.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  assert.equal(await failed('aggregate-out-of-range'), 1);

  // Honest participants, but a tolerance no version can meet (its loss would have to fall by a
  // whole nat below the zero model's ln 2): the round fails on the held-out loss.
  const honest = [0, 2, 3].map((k) => localLink(`p${k}`, parts[k]!));
  const strict = new RoundRunner({ ...deps, links: () => honest, lossTolerance: -1 });
  strict.schedule([new Uint8Array(32).fill(9)], { rounds: 1, noiseMultiplier: 0.05 });
  await strict.idle();
  assert.equal(entries.length, 0);
  assert.match(rounds.at(-1)!.error!, /validation loss regressed: \d+\.\d+ > 0\.6931 \+ -1/);
  assert.equal(await failed('loss-regressed'), 1);
  // The check reads the validation set, not the test set the accuracy figure uses: with the
  // validation labels flipped, a version that is better on the test set is worse there.
  const real = deps.data;
  const flipped = { ...real.validation(), labels: real.validation().labels.map((l) => 1 - l) };
  assert.ok(flipped.rows.length > 0 && flipped.rows.length < real.test().rows.length);
  const data = Object.assign(Object.create(real) as FlData, { validation: () => flipped });
  const picky = new RoundRunner({ ...deps, data, links: () => honest });
  picky.schedule([new Uint8Array(32).fill(11)], { rounds: 1, noiseMultiplier: 0.05 });
  await picky.idle();
  assert.equal(entries.length, 0);
  assert.match(rounds.at(-1)!.error!, /validation loss regressed: \d+\.\d+ > 0\.6931 \+ 0\.\d+/);
  assert.equal(await failed('loss-regressed'), 2);
  // The same round with the default tolerance commits, on top of the head that stayed.
  const normal = new RoundRunner({ ...deps, links: () => honest });
  normal.schedule([new Uint8Array(32).fill(10)], { rounds: 1, noiseMultiplier: 0.05 });
  await normal.idle();
  assert.equal(entries.length, 1, rounds.at(-1)!.error ?? '');
  assert.equal(entries[0]!.round, 5);
  assert.equal(toHex(entries[0]!.parentHash!), stored.hash);
});
