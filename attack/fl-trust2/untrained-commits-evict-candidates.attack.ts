/**
 * Finding (LOW): fl-commit is taken for a round that never got past its announcement, so four
 * coordinator identities push an honest round's committed version out of every trainer's held
 * candidates before the chain entry that names it arrives.
 *
 * FlParticipant.commit only asks that the round is held and the bytes are of its size; it does
 * not ask that the round ever reached keys or training. FlService hands the bytes to
 * ModelStore.hold (MAX_HELD_ROUNDS = 4 candidates), which, when full, evicts the oldest candidate
 * of the sender holding most. Four senders with one candidate each tie with the honest
 * coordinator, and the oldest of the tie — the honest one — goes. Each costs one announce and one
 * commit: no keys, no training, no ε. When the chain then names the honest version, keep() finds
 * nothing and every trainer has to fetch it from the network (only its coordinator stores it).
 *
 * Today: 4 of 4 announce-only commits are taken and the honest candidate is evicted (store fates:
 * held ×5, evicted ×1).
 *
 * Run: npm exec -- node --test attack/fl-trust2/untrained-commits-evict-candidates.attack.ts
 *
 * Fix that makes it pass: refuse (typed SecAggError, penalty) an fl-commit for a round whose
 * masked update this participant never produced (RoundState.trained unset), so a candidate is
 * held only for a round this node trained in; optionally evict candidates of rounds this node did
 * not train in first.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { toHex } from '../../node/chain/bytes.ts';
import { subset } from '../../node/fl/dataset.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { encodeModel, modelHash } from '../../node/fl/net/model-codec.ts';
import { type HeldFate, ModelStore } from '../../node/fl/net/model-store.ts';
import { FlParticipant } from '../../node/fl/net/participant.ts';
import { announcement, cleanup, coordinatorKeys, data, gate, tmp } from '../../node/testing/fl-round-rig.ts';

after(cleanup);

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
  const model = (k: number) => {
    const w = zeroParams(ex.dim);
    w[0] = k;
    return encodeModel(w);
  };
  // The honest round's version, held as its commit left it (FlService: storeModel → hold). Put
  // in directly: a full secure-aggregation round adds nothing to what the store does with it.
  const honest = model(0.5);
  store.hold(honest, ex.dim + 1, 'boss');
  // Four other ids: announce, then commit at once, nothing in between.
  const refused: string[] = [];
  for (let k = 0; k < 4; k++) {
    const roundId = new Uint8Array(32).fill(0x40 + k);
    assert.ok((await p.announce(`sybil-${k}`, announcement(roundId))).accept);
    await p
      .commit(`sybil-${k}`, { roundId, model: model(k + 1) })
      .catch((e: Error) => refused.push(e.message));
  }
  const held = store.heldModel(toHex(modelHash(honest))) !== undefined;
  const figures = `honest candidate ${held ? 'held' : 'evicted'}; announce-only commits refused ${refused.length} of 4; fates ${fates.join(',')}`;
  assert.equal(refused.length, 4, figures);
  assert.ok(held, figures);
});
