/**
 * Issue 16, Finding 5: `fl-commit` stored whatever model bytes the coordinator sent (any valid
 * encoding up to 2^17+1 parameters, ~1 MiB) whether or not a model entry would ever name them,
 * and nothing deleted a stored model: at the protocols' per-peer budgets (60 announce+commit
 * cycles per 10 s) a coordinator wrote ~6 MiB/s to every trainer's disk. Now a commit of another
 * size than its round's model is refused, and so is one of a round this node did not train in;
 * one of the right size is held in memory (at most MAX_HELD_ROUNDS, the biggest sender losing its
 * oldest), and only a main-chain entry naming it puts it on disk. A real FlParticipant wired to a
 * real ModelStore as FlService wires them.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { toHex } from '../../chain/bytes.ts';
import { DecodeError } from '../../chain/codec/errors.ts';
import { createLogger } from '../../log.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import type { Examples } from '../features.ts';
import { zeroParams } from '../logistic.ts';
import { createFlMetrics } from './metrics.ts';
import { encodeModel, MAX_PARAMS, modelHash } from './model-codec.ts';
import { type HeldFate, ModelStore } from './model-store.ts';
import { ModelSync } from './model-sync.ts';
import { CommitRefused, FlParticipant, MAX_HELD_ROUNDS } from './participant.ts';
import type { Announcement } from './wire.ts';

/** Identity keys the participants sign their key adverts with (by name). */
const ids = flIdentities();

const DIM = 8;
const data: Examples = {
  dim: DIM,
  rows: [
    { indices: Uint32Array.of(1, 3), values: Float32Array.of(0.6, 0.8) },
    { indices: Uint32Array.of(2), values: Float32Array.of(1) },
  ],
  labels: Uint8Array.of(1, 0),
};
const announcement = (k: number): Announcement => ({
  roundId: new Uint8Array(32).fill(k),
  round: 1,
  modelHash: null,
  paramCount: DIM + 1,
  dp: { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 },
  train: { epochs: 1, batchSize: 2, learningRate: 1, l2: 0, seed: 5 },
  deadlineMs: 30_000,
  privacy: { mode: 'update' },
});
/** A model of `count` parameters, unique per `k`. */
const junk = (count: number, k: number) => {
  const p = new Float64Array(count);
  p[0] = k;
  return encodeModel(p);
};

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function rig() {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-commit-fill-'));
  dirs.push(dir);
  const fates: HeldFate[] = [];
  const store = new ModelStore(path.join(dir, 'models'), { onHeld: (f) => fates.push(f) });
  const p = new FlParticipant({
    self: 'me',
    sign: ids.signer('me'),
    verifyAdverts: ids.verify,
    data: () => data,
    resolveModel: async (_hash, count) => zeroParams(count - 1),
    // FlService's wiring.
    storeModel: (bytes, count, from) => store.hold(bytes, count, from),
  });
  const files = async () => (await readdir(store.dir).catch(() => [] as string[])).length;
  return { store, p, fates, files };
}

test('20 commits of 2^17+1 parameters to a round of 9 are refused (DecodeError), none stored', async () => {
  const { store, p, files } = await rig();
  for (let k = 1; k <= 20; k++) {
    assert.equal((await p.announce('boss', announcement(k))).accept, true);
    await assert.rejects(
      p.commit('boss', { roundId: announcement(k).roundId, model: junk(MAX_PARAMS, k) }),
      (err: unknown) => err instanceof DecodeError && err.code === 'invalid-value',
    );
  }
  assert.equal(await files(), 0);
  assert.equal(store.heldCount, 0);
  assert.equal(p.active, 0, 'each refused commit still ended its round');
});

test('20 commits of the round’s size that no entry names leave nothing on disk, at most MAX_HELD_ROUNDS in memory', async () => {
  const { store, p, fates, files } = await rig();
  // Announce-only rounds: their commits are refused outright (untrained-commits-evict-candidates).
  for (let k = 1; k <= 20; k++) {
    assert.equal((await p.announce('boss', announcement(k))).accept, true);
    await assert.rejects(
      p.commit('boss', { roundId: announcement(k).roundId, model: junk(DIM + 1, k) }),
      CommitRefused,
    );
  }
  assert.equal(store.heldCount, 0);
  // As the commits of 20 rounds this node trained in leave them (FlService: storeModel → hold).
  for (let k = 1; k <= 20; k++) store.hold(junk(DIM + 1, k), DIM + 1, 'boss');
  assert.equal(await files(), 0);
  assert.equal(store.heldCount, MAX_HELD_ROUNDS);
  assert.equal(fates.filter((f) => f === 'held').length, 20);
  assert.equal(fates.filter((f) => f === 'evicted').length, 20 - MAX_HELD_ROUNDS);
});

test('a held version goes to disk once a main-chain entry names it, with no fetch', async () => {
  const { store, fates, files } = await rig();
  const bytes = junk(DIM + 1, 7);
  // As a trained round's commit leaves it.
  store.hold(bytes, DIM + 1, 'boss');
  assert.equal(await files(), 0);
  let asked = 0;
  const models = new ModelSync({
    store,
    reqresp: {
      request: async () => {
        asked++;
        return [];
      },
    },
    spec: {} as never,
    peers: () => [],
    metrics: createFlMetrics(new Registry()),
    log: createLogger('silent'),
  });
  // What FlService.watchChain does for every model entry on the main chain.
  const params = await models.resolve(modelHash(bytes), DIM + 1);
  assert.equal(params[0], 7);
  assert.equal(asked, 0);
  assert.equal(await files(), 1);
  assert.deepEqual(await store.getEncoded(toHex(modelHash(bytes))), bytes);
  assert.equal(store.heldCount, 0);
  assert.deepEqual(fates, ['held', 'stored']);
});

test('one sender’s flood evicts its own candidates, not another coordinator’s', async () => {
  const { store } = await rig();
  const honest = store.hold(junk(DIM + 1, 1), DIM + 1, 'honest');
  for (let k = 2; k <= 12; k++) store.hold(junk(DIM + 1, k), DIM + 1, 'flooder');
  assert.equal(store.heldCount, MAX_HELD_ROUNDS);
  assert.ok(store.heldModel(honest), 'the honest coordinator’s candidate is still held');
});
