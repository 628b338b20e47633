/**
 * Issue 16, trusted rounds: a coordinator that asks for the unmask step twice with different
 * survivor sets gets a protocol violation and cannot rebuild anyone's update, and a participant
 * unmasks only for a survivor set the round's coordinator signed. Real participants, real secure
 * aggregation, real Ed25519 keys; the dishonest coordinator is this test.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { flIdentities } from '../../testing/fl-identities.ts';
import { seededRoundRandomness } from '../../testing/prng.ts';
import { recoverInput } from '../../testing/secagg-attack.ts';
import { survivorKeys } from '../../testing/survivor-keys.ts';
import { featurisedCorpus, splitIndices, subset } from '../dataset.ts';
import { layoutDim } from '../local-round.ts';
import { zeroParams } from '../logistic.ts';
import { routeShares } from '../secagg/aggregator.ts';
import {
  decodeMasked,
  decodeUnmask,
  encodeShare,
  encodeUnmask,
  type KeyAdvertisement,
  type UnmaskingShares,
} from '../secagg/messages.ts';
import type { SecAggConfig } from '../secagg/protocol.ts';
import { decodeSignedAdvert } from './advert-signature.ts';
import { FlParticipant, UnmaskRefused } from './participant.ts';
import { peerIdVerifier, type SurvivorVerifier, survivorSetMessage } from './survivor-set.ts';

const ex = featurisedCorpus();
const split = splitIndices(ex.labels, { seed: 42, testFraction: 0.2, nodes: 5, mode: 'iid' });
const train = { epochs: 1, batchSize: 64, learningRate: 8, l2: 0, seed: 5 };
const dp = { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 };
const roundId = new Uint8Array(32).fill(9);
const roster = ['p1', 'p2', 'p3', 'p4', 'p5'];
const threshold = 3;
const ids = flIdentities();

/** Five participants through the masked-update step, as an honest coordinator drives them. */
async function toUnmask(verify: SurvivorVerifier) {
  const parts = roster.map(
    (self, k) =>
      new FlParticipant({
        self,
        data: () => subset(ex, split.slices[k]!),
        resolveModel: async (_h, n) => zeroParams(n - 1),
        storeModel: async () => 'stored',
        randomness: seededRoundRandomness(20 + k),
        verifySurvivors: verify,
        sign: ids.signer(self),
        verifyAdverts: ids.verify,
        // The coordinator-only quorum (3 of 5): the collusion quorum has its own test
        // (sybil-split-survivor-sets.test.ts).
        collusionTolerance: 0,
      }),
  );
  const coordinator = 'boss';
  const a = {
    roundId,
    round: 1,
    modelHash: null,
    paramCount: ex.dim + 1,
    dp,
    train,
    deadlineMs: 5_000,
    privacy: { mode: 'update' as const },
  };
  for (const p of parts) assert.equal((await p.announce(coordinator, a)).accept, true);
  const config: SecAggConfig = {
    roundId,
    participants: [1, 2, 3, 4, 5],
    threshold,
    dim: layoutDim(ex.dim + 1),
  };
  const expect = { roundId, participants: new Set(config.participants) };
  const advertBytes = await Promise.all(
    parts.map((p) => p.keys(coordinator, { roundId, threshold, participants: roster })),
  );
  const adverts = new Map<number, KeyAdvertisement>(
    advertBytes.map((b) => {
      const ad = decodeSignedAdvert(b, expect).advert;
      return [ad.from, ad];
    }),
  );
  const shareLists = await Promise.all(
    parts.map((p) => p.shares(coordinator, { roundId, adverts: advertBytes })),
  );
  const shareMsgs = shareLists.flatMap((list, k) => list.map((bytes) => ({ from: k + 1, bytes })));
  const routed = routeShares(config, config.participants, shareMsgs);
  const masked = await Promise.all(
    parts.map(async (p, k) =>
      decodeMasked(
        await p.train(coordinator, {
          roundId,
          u2: routed.u2,
          inbox: routed.inbox.get(k + 1)!.map(encodeShare),
        }),
        { ...expect, dim: config.dim },
      ),
    ),
  );
  return { parts, coordinator, config, adverts, masked };
}

const decode = (b: Uint8Array) => decodeUnmask(b, { roundId, participants: new Set([1, 2, 3, 4, 5]) });

describe('the unmask step over FlParticipant', () => {
  test('a second survivor set is refused as a protocol violation and nobody’s update can be rebuilt', async () => {
    const keys = await survivorKeys();
    const { parts, coordinator, config, adverts, masked } = await toUnmask(keys.verify);
    const all = [1, 2, 3, 4, 5];
    const without5 = [1, 2, 3, 4];
    const named = async (survivors: number[]) => ({
      roundId,
      survivors,
      signature: await keys.sign(survivorSetMessage(roundId, survivors)),
    });
    const refusedAs = (reason: string) => (e: unknown) =>
      e instanceof UnmaskRefused && e.reason === reason && e.code === 'protocol-violation';
    // Unsigned: refused before anything is signed, and the participant can still answer.
    await assert.rejects(
      parts[0]!.confirm(coordinator, { roundId, survivors: all, signature: new Uint8Array(0) }),
      refusedAs('bad-signature'),
    );
    const allReq = await named(all);
    const confirmations = [];
    for (const k of [0, 1, 2])
      confirmations.push({ id: k + 1, signature: await parts[k]!.confirm(coordinator, allReq) });
    // Asked again, the same set: the same signature (a retry after a lost answer).
    assert.deepEqual(await parts[0]!.confirm(coordinator, allReq), confirmations[0]!.signature);
    const w5 = await named(without5);
    for (const k of [0, 1, 2])
      await assert.rejects(parts[k]!.confirm(coordinator, w5), refusedAs('second-survivor-set'));
    const fourth = { id: 4, signature: await parts[3]!.confirm(coordinator, w5) };
    // Before its quorum of confirmations, nobody reveals.
    await assert.rejects(
      parts[3]!.unmask(coordinator, { ...w5, confirmations: [fourth] }),
      refusedAs('too-few-confirmations'),
    );
    // The others' signatures over U3 = all do not count for another set.
    await assert.rejects(
      parts[3]!.unmask(coordinator, { ...w5, confirmations: [...confirmations, fourth] }),
      refusedAs('bad-confirmation'),
    );

    const reveals: UnmaskingShares[] = [];
    for (const k of [0, 1, 2])
      reveals.push(decode(await parts[k]!.unmask(coordinator, { ...allReq, confirmations })));
    // Asked again, the same set: the same bytes (a retry reveals nothing new).
    assert.deepEqual(
      await parts[0]!.unmask(coordinator, { ...allReq, confirmations }),
      encodeUnmask(reveals[0]!),
    );
    for (const k of [0, 1, 2])
      await assert.rejects(
        parts[k]!.unmask(coordinator, { ...w5, confirmations: [fourth] }),
        refusedAs('second-survivor-set'),
      );

    // The coordinator tries every participant with whatever it collected.
    for (const u of all) {
      const got = recoverInput(config, adverts, u, masked[u - 1]!.masked, reveals);
      assert.ok('failed' in got, `update of ${u} rebuilt`);
    }
  });

  test('the survivor set must be signed by the round’s coordinator, with its peer id’s key', async () => {
    const boss = await generateKeyPair('Ed25519');
    const other = await generateKeyPair('Ed25519');
    const bossId = peerIdFromPrivateKey(boss).toString();
    const message = survivorSetMessage(roundId, [1, 2, 3]);
    assert.equal(await peerIdVerifier(bossId, message, await boss.sign(message)), true);
    assert.equal(await peerIdVerifier(bossId, message, await other.sign(message)), false);
    // Signed for another set, or another round: not this message.
    assert.equal(
      await peerIdVerifier(bossId, survivorSetMessage(roundId, [1, 2, 4]), await boss.sign(message)),
      false,
    );
    assert.equal(
      await peerIdVerifier(
        bossId,
        survivorSetMessage(new Uint8Array(32), [1, 2, 3]),
        await boss.sign(message),
      ),
      false,
    );
    assert.equal(await peerIdVerifier('not-a-peer-id', message, await boss.sign(message)), false);
    assert.throws(() => survivorSetMessage(roundId, [2, 1, 3]), /ascend/);
  });

  test('a participant checks the signature against the coordinator that announced the round', async () => {
    // Production verifier: the peer ids here are not keys, so nothing verifies.
    const { parts, coordinator } = await toUnmask(peerIdVerifier);
    const keys = await survivorKeys();
    await assert.rejects(
      parts[0]!.confirm(coordinator, {
        roundId,
        survivors: [1, 2, 3],
        signature: await keys.sign(survivorSetMessage(roundId, [1, 2, 3])),
      }),
      (e: unknown) => e instanceof UnmaskRefused && e.reason === 'bad-signature',
    );
  });
});
