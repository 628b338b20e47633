/**
 * Finding 2 (HIGH): the participant takes the roster and every other member's key advert from the
 * coordinator unchecked: a roster of one (threshold 1) or a roster naming real trainers whose
 * adverts the coordinator made up (sybils) hands the coordinator the "aggregate" of one update.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/roster.attack.ts
 *
 * Both tests fail until the participant (a) refuses rosters below a minimum of distinct train
 * members and (b) refuses adverts not signed by the identity key of the roster member they name.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { subset } from '../../node/fl/dataset.ts';
import { layoutDim, roundQuantiser } from '../../node/fl/local-round.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { FlParticipant } from '../../node/fl/net/participant.ts';
import { survivorSetMessage } from '../../node/fl/net/survivor-set.ts';
import { unmaskSum } from '../../node/fl/secagg/aggregator.ts';
import {
  decodeAdvertisement,
  decodeMasked,
  decodeUnmask,
  encodeAdvertisement,
} from '../../node/fl/secagg/messages.ts';
import { createParticipant, type SecAggConfig } from '../../node/fl/secagg/protocol.ts';
import { dequantise } from '../../node/fl/secagg/ring.ts';
import { announcement, COORD, cleanup, coordinatorKeys, data, gate } from './lib.ts';

after(cleanup);

async function victim(self: string, keys: Awaited<ReturnType<typeof coordinatorKeys>>) {
  const { ex, split } = data();
  return new FlParticipant({
    self,
    data: () => subset(ex, split.slices[0]!),
    privacy: await gate(),
    resolveModel: async (_h, count) => zeroParams(count - 1),
    storeModel: async () => 'stored',
    verifySurvivors: keys.verify,
  });
}

describe('attack: the coordinator picks the roster and the adverts', async () => {
  const keys = await coordinatorKeys();

  test('a roster of one is refused at the keys step', async () => {
    const p = await victim('p1', keys);
    const roundId = new Uint8Array(32).fill(0x41);
    const a = announcement(roundId);
    assert.equal((await p.announce(COORD, a)).accept, true);
    let leaked: Float64Array | undefined;
    try {
      const advert = p.keys(COORD, { roundId, threshold: 1, participants: ['p1'] });
      // Nothing refused it: run the round to the end and unmask the "sum" of one.
      p.shares(COORD, { roundId, adverts: [advert] });
      const masked = await p.train(COORD, { roundId, u2: [1], inbox: [] });
      const signature = await keys.sign(survivorSetMessage(roundId, [1]));
      const reveal = await p.unmask(COORD, { roundId, survivors: [1], signature });
      const sa: SecAggConfig = { roundId, participants: [1], threshold: 1, dim: layoutDim(a.paramCount) };
      const expect = { roundId, participants: new Set([1]) };
      const ring = unmaskSum(
        sa,
        [decodeAdvertisement(advert, expect)],
        [decodeMasked(masked, { ...expect, dim: sa.dim })],
        [decodeUnmask(reveal, expect)],
      );
      leaked = dequantise(ring, roundQuantiser(a.dp, 1, 1));
    } catch (err) {
      assert.equal((err as Error).name, 'SecAggError');
      return;
    }
    const P = a.paramCount;
    assert.fail(
      `roster of one accepted: the coordinator unmasked p1's own update (weight ${leaked[P]!.toFixed(4)}, clip bit ${leaked[P + 1]!.toFixed(4)})`,
    );
  });

  test('adverts for real trainers that they did not make are refused at the shares step', async () => {
    // Two real identities the coordinator names in the roster but never contacts.
    const ids = await Promise.all(
      [0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
    );
    const me = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    const p = await victim(me, keys);
    const roundId = new Uint8Array(32).fill(0x42);
    const a = announcement(roundId);
    assert.equal((await p.announce(COORD, a)).accept, true);
    const roster = [me, ...ids];
    const advert = p.keys(COORD, { roundId, threshold: 2, participants: roster });
    const sa: SecAggConfig = { roundId, participants: [1, 2, 3], threshold: 2, dim: layoutDim(a.paramCount) };
    const sybils = [2, 3].map((id) => createParticipant(sa, id));
    const adverts = [advert, ...sybils.map((s) => encodeAdvertisement(s.advertisement))];
    assert.throws(
      () => p.shares(COORD, { roundId, adverts }),
      { name: 'SecAggError' },
      "adverts of members 2 and 3 are the coordinator's own keys; p1 shares its secrets to them",
    );
  });
});
