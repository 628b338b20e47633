/**
 * ATK-16 (LOW, fixed): fl-commit was taken for a round that never got past its announcement, so
 * four coordinator identities pushed an honest round's committed version out of every trainer's
 * held candidates (ModelStore, MAX_HELD_ROUNDS = 4) before the chain entry naming it arrived: each
 * cost one announce and one commit, no keys, no training, no ε. Measured before the fix: 4 of 4
 * announce-only commits taken, the honest candidate evicted (store fates held ×5, evicted ×1).
 *
 * Now a participant refuses (CommitRefused, `untrained`; FlService counts it in
 * cairn_fl_commits_refused_total and penalises the coordinator) the commit of a round it did not
 * train in, and the store ranks what it holds: a version an announcement named (fetched from its
 * announcer) never pushes out the version of a round this node trained in, and is not held at all
 * when those fill the store (fate `refused`), though the round still trains from it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Registry } from 'prom-client';
import { toHex } from '../../chain/bytes.ts';
import { createLogger } from '../../log.ts';
import { ReqRespError } from '../../p2p/reqresp.ts';
import {
  announcement,
  COORD,
  cleanup,
  coordinatorKeys,
  data,
  gate,
  participants,
  runToMasked,
  tmp,
} from '../../testing/fl-round-rig.ts';
import { subset } from '../dataset.ts';
import { zeroParams } from '../logistic.ts';
import { createFlMetrics } from './metrics.ts';
import { decodeModel, encodeModel, modelHash } from './model-codec.ts';
import { type HeldFate, ModelStore } from './model-store.ts';
import { ModelSync } from './model-sync.ts';
import { CommitRefused, FlParticipant } from './participant.ts';
import { MODEL_BY_HASH } from './protocols.ts';

after(cleanup);

const model = (dim: number, k: number) => {
  const w = zeroParams(dim);
  w[0] = k;
  return encodeModel(w);
};

test('announce-only commits from other ids do not push out an honest round’s candidate', async () => {
  const { ex, split } = data();
  const fates: HeldFate[] = [];
  const store = new ModelStore(await tmp(), { onHeld: (f) => fates.push(f) });
  const key = await generateKeyPair('Ed25519');
  const keys = await coordinatorKeys();
  const p = new FlParticipant({
    self: peerIdFromPrivateKey(key).toString(),
    data: () => subset(ex, split.slices[0]!),
    privacy: await gate(),
    resolveModel: async (_h, count) => zeroParams(count - 1),
    storeModel: (bytes, count, from) => store.hold(bytes, count, from),
    verifySurvivors: keys.verify,
    sign: async (m) => key.sign(m),
  });
  // The honest round's version, held as its commit left it (FlService: storeModel → hold). Put
  // in directly: a full secure-aggregation round adds nothing to what the store does with it.
  const honest = model(ex.dim, 0.5);
  store.hold(honest, ex.dim + 1, 'boss');
  // Four other ids: announce, then commit at once, nothing in between.
  const refused: unknown[] = [];
  for (let k = 0; k < 4; k++) {
    const roundId = new Uint8Array(32).fill(0x40 + k);
    assert.ok((await p.announce(`sybil-${k}`, announcement(roundId))).accept);
    await p.commit(`sybil-${k}`, { roundId, model: model(ex.dim, k + 1) }).catch((e) => refused.push(e));
  }
  const held = store.heldModel(toHex(modelHash(honest))) !== undefined;
  const figures = `honest candidate ${held ? 'held' : 'evicted'}; announce-only commits refused ${refused.length} of 4; fates ${fates.join(',')}`;
  assert.equal(refused.length, 4, figures);
  assert.ok(
    refused.every((e) => e instanceof CommitRefused && e.reason === 'untrained'),
    figures,
  );
  assert.ok(held, figures);
  assert.deepEqual(fates, ['held'], figures);
  assert.equal(p.active, 0, 'a refused commit still ends its round: its slot is free');
});

test('the commit of a round the participant trained in is taken; an announce-only one beside it is not', async () => {
  const keys = await coordinatorKeys();
  const nodes = await participants(3, keys);
  const trained = new Uint8Array(32).fill(0x51);
  await runToMasked(nodes, trained);
  const idle = new Uint8Array(32).fill(0x52);
  for (const n of nodes) assert.ok((await n.p.announce(COORD, announcement(idle))).accept);
  const { ex } = data();
  const version = model(ex.dim, 0.25);
  for (const n of nodes) {
    await n.p.commit(COORD, { roundId: trained, model: version });
    await assert.rejects(n.p.commit(COORD, { roundId: idle, model: version }), CommitRefused);
  }
  assert.deepEqual(
    nodes.map((n) => n.stored.length),
    [1, 1, 1],
    'each took the trained round’s version, once',
  );
});

test('announced candidates rank below trained ones: they never evict them, and are refused when those fill the store', async () => {
  const DIM = 16;
  const fates: HeldFate[] = [];
  const store = new ModelStore(await tmp(), { maxHeld: 4, onHeld: (f) => fates.push(f) });
  const honest = model(DIM, 0.5);
  store.hold(honest, DIM + 1, 'boss');
  // Four identities announce rounds from models only they serve (the path of a participant's
  // announce: ModelSync.resolve, not named by any entry), each fetched and held as announced.
  const ids = await Promise.all(
    [0, 1, 2, 3, 4].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))),
  );
  const served = new Map(ids.map((id, k) => [id.toString(), model(DIM, k + 1)]));
  const sync = new ModelSync({
    store,
    spec: MODEL_BY_HASH,
    metrics: createFlMetrics(new Registry()),
    log: createLogger('silent'),
    peers: () => ids,
    reqresp: {
      request: (async (peer: PeerId) => {
        const bytes = served.get(peer.toString());
        if (!bytes) throw new ReqRespError('resource-unavailable', 'model not stored here');
        return [bytes];
      }) as never,
    },
  });
  for (const id of ids) {
    const bytes = served.get(id.toString())!;
    const got = await sync.resolve(modelHash(bytes), DIM + 1, [id.toString()], false);
    assert.deepEqual([...got], [...decodeModel(bytes)], 'the round trains from what was announced');
  }
  assert.ok(store.heldModel(toHex(modelHash(honest))), `honest candidate evicted; fates ${fates.join(',')}`);
  assert.equal(store.heldCount, 4);
  // Five announced arrivals for 3 free places: the newest 3 stay, the first two go.
  assert.deepEqual(fates, ['held', 'held', 'held', 'held', 'held', 'evicted', 'held', 'evicted']);

  // Filled with trained rounds' versions, the store holds no announced candidate at all.
  for (let k = 10; k < 13; k++) store.hold(model(DIM, k), DIM + 1, `coordinator-${k}`);
  assert.ok(
    store.heldModel(toHex(modelHash(honest))),
    'a trained candidate is not evicted by announced ones',
  );
  const late = model(DIM, 99);
  fates.length = 0;
  const hash = store.hold(late, DIM + 1, 'late', { standing: 'announced' });
  assert.deepEqual(fates, ['refused']);
  assert.equal(store.heldModel(hash), undefined);
  // Re-announcing a trained version does not lower it, nor make it the announcer's.
  store.hold(honest, DIM + 1, 'sybil', { standing: 'announced' });
  for (let k = 20; k < 23; k++) store.hold(model(DIM, k), DIM + 1, 'sybil');
  assert.ok(store.heldModel(toHex(modelHash(honest))), 'the honest version is not counted as the sybil’s');
});
