import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { toHex } from '../../chain/bytes.ts';
import { DecodeError } from '../../chain/codec/errors.ts';
import { SIGNED_ADVERT_BYTES } from './advert-signature.ts';
import { decodeModel, encodeModel, MAX_MODEL_BYTES, modelHash } from './model-codec.ts';
import { ModelStore } from './model-store.ts';
import { FL_CONFIRM, FL_UNMASK } from './protocols.ts';
import {
  decodeAnnouncement,
  decodeKeysRequest,
  decodeSharesRequest,
  decodeTrainRequest,
  decodeUnmaskRequest,
  encodeAnnouncement,
  encodeKeysRequest,
  encodeSharesRequest,
  encodeTrainRequest,
  encodeUnmaskRequest,
} from './wire.ts';

const roundId = new Uint8Array(32).fill(3);
const announcement = {
  roundId,
  round: 7,
  modelHash: new Uint8Array(32).fill(9),
  paramCount: 16_385,
  dp: {
    clipNorm: 4,
    noiseMultiplier: 0.3,
    weightCap: 1000,
    adaptive: { targetQuantile: 0.5, learningRate: 0.2, countNoiseStd: 0.47 },
  },
  train: { epochs: 3, batchSize: 16, learningRate: 8, l2: 0, seed: 5 },
  deadlineMs: 30_000,
  privacy: { mode: 'update' as const },
};

describe('FL wire formats', () => {
  test('a shares request carries signed adverts of their fixed size, and nothing longer', () => {
    const advert = new Uint8Array(SIGNED_ADVERT_BYTES).fill(4);
    const req = { roundId, adverts: [advert, advert] };
    assert.deepEqual(decodeSharesRequest(encodeSharesRequest(req)), req);
    const long = encodeSharesRequest({ roundId, adverts: [new Uint8Array(SIGNED_ADVERT_BYTES + 1)] });
    assert.throws(() => decodeSharesRequest(long), DecodeError);
  });

  test('an announcement round-trips; the zero hash means the initial model', () => {
    assert.deepEqual(decodeAnnouncement(encodeAnnouncement(announcement)), announcement);
    const initial = decodeAnnouncement(encodeAnnouncement({ ...announcement, modelHash: null }));
    assert.equal(initial.modelHash, null);
  });

  test('out-of-range parameters and trailing bytes are decode errors, not rounds', () => {
    const bad = [
      { ...announcement, deadlineMs: 10 },
      { ...announcement, train: { ...announcement.train, epochs: 1000 } },
      { ...announcement, dp: { ...announcement.dp, clipNorm: 0 } },
    ];
    for (const a of bad) assert.throws(() => decodeAnnouncement(encodeAnnouncement(a)), DecodeError);
    const long = new Uint8Array([...encodeAnnouncement(announcement), 0]);
    assert.throws(
      () => decodeAnnouncement(long),
      (e: unknown) => e instanceof DecodeError && e.code === 'trailing-bytes',
    );
  });

  test('rosters and id lists are bounded and free of repeats', () => {
    const k = { roundId, threshold: 2, participants: ['a', 'b', 'c'] };
    assert.deepEqual(decodeKeysRequest(encodeKeysRequest(k)), k);
    assert.throws(
      () => decodeKeysRequest(encodeKeysRequest({ ...k, participants: ['a', 'a'] })),
      DecodeError,
    );
    const t = { roundId, u2: [1, 2, 4], inbox: [new Uint8Array(10)] };
    assert.deepEqual(decodeTrainRequest(encodeTrainRequest(t)), t);
    assert.throws(() => decodeTrainRequest(encodeTrainRequest({ ...t, u2: [1, 1] })), DecodeError);
  });
});

describe('model versions', () => {
  test('the encoding is canonical: −0 folds into 0, so equal parameters have one hash', () => {
    const a = encodeModel(Float64Array.from([0, 1.5, -2]));
    const b = encodeModel(Float64Array.from([-0, 1.5, -2]));
    assert.equal(toHex(modelHash(a)), toHex(modelHash(b)));
    assert.deepEqual([...decodeModel(a)], [0, 1.5, -2]);
    const negZero = new Uint8Array(a);
    negZero[6 + 7] = 0x80; // the sign bit of the first (little-endian) float
    assert.throws(
      () => decodeModel(negZero),
      (e: unknown) => e instanceof DecodeError && e.code === 'non-canonical',
    );
    assert.throws(() => decodeModel(a.subarray(0, a.length - 1)), DecodeError);
    assert.throws(() => decodeModel(a, 4), DecodeError);
    assert.throws(
      () => decodeModel(new Uint8Array(MAX_MODEL_BYTES + 1)),
      (e: unknown) => (e as DecodeError).code === 'oversized',
    );
  });

  test('the store names files by hash and never serves a file whose content does not match', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-models-'));
    const store = new ModelStore(dir);
    const { hash, bytes } = await store.put(Float64Array.from([1, 2, 3]));
    assert.equal(hash, toHex(modelHash(bytes)));
    assert.deepEqual(await store.getEncoded(hash), bytes);
    await assert.rejects(store.putEncoded(bytes, '00'.repeat(32)), /expected/);
    await writeFile(path.join(dir, `${hash}.bin`), encodeModel(Float64Array.from([1, 2, 4])));
    const fresh = new ModelStore(dir);
    assert.equal(await fresh.getEncoded(hash), undefined);
    assert.equal(await fresh.get(hash), undefined);
  });
});

test('the unmask request carries the survivor-set signature and the relayed confirmations, canonically', () => {
  const u = {
    roundId: new Uint8Array(32).fill(3),
    survivors: [1, 2, 5],
    signature: new Uint8Array(64).fill(9),
    confirmations: [
      { id: 1, signature: new Uint8Array(64).fill(1) },
      { id: 5, signature: new Uint8Array(64).fill(5) },
    ],
  };
  const bytes = encodeUnmaskRequest(u);
  assert.ok(bytes.length <= FL_UNMASK.maxRequestBytes);
  assert.deepEqual(decodeUnmaskRequest(bytes), u);
  assert.throws(() => decodeUnmaskRequest(bytes.subarray(0, bytes.length - 1)), DecodeError);
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.throws(() => decodeUnmaskRequest(longer), DecodeError);
  assert.throws(() => encodeUnmaskRequest({ ...u, signature: new Uint8Array(63) }));
  // One confirmer twice, or out of order: not the one canonical form, so not decoded.
  const twice = { ...u, confirmations: [u.confirmations[0]!, u.confirmations[0]!] };
  assert.throws(() => decodeUnmaskRequest(encodeUnmaskRequest(twice)), DecodeError);
  const reversed = { ...u, confirmations: [...u.confirmations].reverse() };
  assert.throws(() => decodeUnmaskRequest(encodeUnmaskRequest(reversed)), DecodeError);
  // The largest request (255 survivors, each confirming) fits the spec's bound exactly.
  const ids = Array.from({ length: 255 }, (_, i) => i + 1);
  const full = encodeUnmaskRequest({
    ...u,
    survivors: ids,
    confirmations: ids.map((id) => ({ id, signature: new Uint8Array(64) })),
  });
  assert.equal(full.length, FL_UNMASK.maxRequestBytes);
});

test('the confirm step: U3 and its signature asked, a 64-byte signature answered', () => {
  const c = {
    roundId: new Uint8Array(32).fill(4),
    survivors: [2, 3, 4],
    signature: new Uint8Array(64).fill(2),
  };
  const bytes = FL_CONFIRM.encodeRequest(c);
  assert.ok(bytes.length <= FL_CONFIRM.maxRequestBytes);
  assert.deepEqual(FL_CONFIRM.decodeRequest(bytes), c);
  assert.throws(() => FL_CONFIRM.decodeRequest(bytes.subarray(0, bytes.length - 1)), DecodeError);
  assert.equal(FL_CONFIRM.maxChunkBytes, 64);
  assert.throws(() => FL_CONFIRM.decodeResponse(new Uint8Array(63)), DecodeError);
  assert.equal(FL_CONFIRM.decodeResponse(new Uint8Array(64)).length, 64);
});
