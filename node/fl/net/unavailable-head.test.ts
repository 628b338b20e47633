/**
 * Issue 16, Finding 3b: a coordinator's model entry may name any 32 bytes as the model hash. If
 * no node has (or will ever serve) those bytes, every later round failed to resolve its global
 * model and no model entry could extend anything but that head: federated learning stopped
 * network-wide. Now, after FL_DEFAULTS.headFetchAttempts rounds in a row without the head's
 * bytes, an honest coordinator trains from the newest version behind the head that it stores (or
 * the initial model) and commits a version whose parent is still the head (the chain rule every
 * node evaluates is unchanged), with `basisRound` saying what it trained from. Real
 * participants, a real ModelStore and ModelSync with no peer to fetch from.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { toHex } from '../../chain/bytes.ts';
import type { ModelPayload } from '../../chain/types.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import { offlineRunnerRig, testRunnerPolicy } from '../../testing/round-runner-policy.ts';
import { FlData } from './data.ts';
import { localLink } from './links.ts';
import { FlParticipant } from './participant.ts';
import type { FlRoundEvent } from './round-events.ts';
import { modelHeadOf, RoundRunner, type RoundRunnerDeps } from './round-runner.ts';

/** Identity keys the participants sign their key adverts with (by name). */
const ids = flIdentities();

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const UNAVAILABLE = new Uint8Array(32).fill(0xab);

async function rig(
  head: ModelPayload,
  lineage: () => ModelPayload[] = () => [],
  over: Partial<RoundRunnerDeps> = {},
) {
  const { dir, store, metrics, log, keys, models } = await offlineRunnerRig('cairn-unavailable-head-');
  dirs.push(dir);
  /** Every model hash a participant was asked to train from (null: the initial model). */
  const trainedFrom: (string | null)[] = [];
  const parts = [0, 1, 2].map(
    (k) =>
      new FlParticipant({
        self: `p${k}`,
        sign: ids.signer(`p${k}`),
        verifyAdverts: ids.verify,
        data: () => new FlData({ index: k, of: 3, mode: 'iid', seed: 42 }, 42).train(),
        resolveModel: (h, n) => {
          if (k === 0) trainedFrom.push(h && toHex(h));
          return models.resolve(h, n);
        },
        storeModel: (b, n, from) => store.hold(b, n, from),
        verifySurvivors: keys.verify,
      }),
  );
  const state = { head: head as ModelPayload | undefined };
  const entries: ModelPayload[] = [];
  const rounds: FlRoundEvent[] = [];
  const runner = new RoundRunner({
    self: 'p0',
    verifyAdverts: ids.verify,
    data: new FlData({ index: 0, of: 3, mode: 'iid', seed: 42 }, 42),
    store,
    models,
    modelHead: () => modelHeadOf(state.head),
    modelLineage: (limit) => [state.head!, ...lineage()].slice(0, limit).map((p) => modelHeadOf(p)!),
    links: () => parts.map((p, k) => localLink(`p${k}`, p)),
    commitEntry: async (p) => {
      entries.push(p);
      state.head = p;
      return 'id';
    },
    sign: keys.sign,
    ...testRunnerPolicy(),
    emitRound: (e) => rounds.push(e),
    metrics,
    log,
    ...over,
  });
  const run = async (n: number) => {
    runner.schedule(
      Array.from({ length: n }, (_, k) => new Uint8Array(32).fill(k + 1)),
      { rounds: n, noiseMultiplier: 0.05 },
    );
    await runner.idle();
  };
  const count = async (
    c: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> },
    label: string,
    v: string,
  ) => (await c.get()).values.find((x) => x.labels[label] === v)?.value ?? 0;
  return { store, metrics, entries, rounds, trainedFrom, run, count };
}

const metricOf = (p: ModelPayload, name: string) => p.metrics.find(([n]) => n === name)?.[1];

test('after a version whose bytes nobody has, an honest coordinator still commits versions', async () => {
  // The dishonest coordinator's entry, valid by the head rule: round 1, no parent, hash of nothing.
  const head: ModelPayload = {
    kind: 'model',
    modelHash: UNAVAILABLE,
    parentHash: null,
    round: 1,
    metrics: [['accuracy', 0.99]],
    epsilon: 0,
  };
  const { metrics, entries, rounds, trainedFrom, run, count } = await rig(head);
  await run(3);
  assert.deepEqual(
    rounds.filter((r) => r.status !== 'running').map((r) => r.status),
    ['failed', 'completed', 'completed'],
  );
  assert.match(rounds.find((r) => r.status === 'failed')!.error!, /unavailable \(1 of 2\)/);
  assert.equal(await count(metrics.roundsFailed, 'reason', 'head-unavailable'), 1);
  assert.equal(await count(metrics.rebased, 'basis', 'initial'), 1);
  // Round 2 supersedes the unavailable head (its parent) but trained from the initial model.
  const [second, third] = entries;
  assert.equal(second!.round, 2);
  assert.deepEqual(second!.parentHash, UNAVAILABLE);
  assert.equal(metricOf(second!, 'basisRound'), 0);
  // Round 3 continues from round 2, whose bytes are served: no rebase.
  assert.equal(third!.round, 3);
  assert.deepEqual(third!.parentHash, second!.modelHash);
  assert.equal(metricOf(third!, 'basisRound'), undefined);
  assert.deepEqual(trainedFrom, [null, toHex(second!.modelHash)]);
});

test('the fallback trains from the newest stored version behind the head', async () => {
  const older: ModelPayload[] = [];
  const { store, entries, trainedFrom, run, metrics, count } = await rig(
    {
      kind: 'model',
      modelHash: UNAVAILABLE,
      parentHash: null,
      round: 5,
      metrics: [],
      epsilon: 1,
    },
    () => older,
    { headFetchAttempts: 1 },
  );
  const paramCount = new FlData(undefined, 42).paramCount;
  // Version 4 is not stored here either; version 3 is.
  const v3 = await store.put(new Float64Array(paramCount));
  older.push(
    {
      kind: 'model',
      modelHash: new Uint8Array(32).fill(4),
      parentHash: null,
      round: 4,
      metrics: [],
      epsilon: 1,
    },
    {
      kind: 'model',
      modelHash: Buffer.from(v3.hash, 'hex'),
      parentHash: null,
      round: 3,
      metrics: [],
      epsilon: 1,
    },
  );
  await run(1);
  assert.equal(entries.length, 1);
  assert.equal(entries[0]!.round, 6);
  assert.deepEqual(entries[0]!.parentHash, UNAVAILABLE);
  assert.equal(metricOf(entries[0]!, 'basisRound'), 3);
  assert.deepEqual(trainedFrom, [v3.hash]);
  assert.equal(await count(metrics.rebased, 'basis', 'older-version'), 1);
});
