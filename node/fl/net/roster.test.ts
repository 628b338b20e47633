/**
 * Issue 16, finding 2 (attack review): a participant took the roster and every member's key
 * advert from the coordinator unchecked, so a roster of one (threshold 1), or a roster naming
 * real trainers whose adverts the coordinator made up (sybils), handed the coordinator the
 * "aggregate" of one update. Now a roster names at least FL_DEFAULTS.minRosterMembers distinct
 * members, each holding `train` where the chain keeps a roster, and every advert is signed by
 * the identity key of the member it names, for the roster and threshold the signer was given.
 * Real participants, real Ed25519 peer keys (the production verifier: the key in the peer id).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { FL_DEFAULTS } from '../../options.ts';
import {
  announcement,
  COORD,
  cleanup,
  coordinatorKeys,
  data,
  gate,
  participants,
} from '../../testing/fl-round-rig.ts';
import { subset } from '../dataset.ts';
import { layoutDim, roundQuantiser } from '../local-round.ts';
import { zeroParams } from '../logistic.ts';
import { unmaskSum } from '../secagg/aggregator.ts';
import {
  decodeMasked,
  decodeShare,
  decodeUnmask,
  encodeAdvertisement,
  SecAggError,
} from '../secagg/messages.ts';
import { createParticipant, type SecAggConfig } from '../secagg/protocol.ts';
import { dequantise } from '../secagg/ring.ts';
import { advertSigningMessage, decodeSignedAdvert, encodeSignedAdvert } from './advert-signature.ts';
import { FlParticipant, SecAggRefused, UnmaskRefused } from './participant.ts';
import { survivorSetMessage } from './survivor-set.ts';

after(cleanup);

interface Member {
  readonly id: string;
  readonly key: PrivateKey;
}
const member = async (): Promise<Member> => {
  const key = await generateKeyPair('Ed25519');
  return { id: peerIdFromPrivateKey(key).toString(), key };
};

async function participant(
  self: Member,
  keys: Awaited<ReturnType<typeof coordinatorKeys>>,
  slice = 0,
  mayTrain?: (peer: string) => boolean,
) {
  const { ex, split } = data();
  return new FlParticipant({
    self: self.id,
    data: () => subset(ex, split.slices[slice]!),
    privacy: await gate(),
    resolveModel: async (_h, count) => zeroParams(count - 1),
    storeModel: async () => 'stored',
    verifySurvivors: keys.verify,
    sign: async (m) => self.key.sign(m),
    ...(mayTrain ? { mayTrain } : {}),
  });
}

const refused = (step: string, reason: string) => (e: unknown) =>
  e instanceof SecAggRefused && e instanceof SecAggError && e.step === step && e.reason === reason;

describe('the roster and the adverts a coordinator hands a participant', async () => {
  const keys = await coordinatorKeys();

  test('a roster of one is refused at the keys step', async () => {
    const me = await member();
    const p = await participant(me, keys);
    const roundId = new Uint8Array(32).fill(0x41);
    const a = announcement(roundId);
    assert.equal((await p.announce(COORD, a)).accept, true);
    let leaked: Float64Array | undefined;
    try {
      const advert = await p.keys(COORD, { roundId, threshold: 1, participants: [me.id] });
      // Nothing refused it: run the round to the end and unmask the "sum" of one.
      await p.shares(COORD, { roundId, adverts: [advert] });
      const masked = await p.train(COORD, { roundId, u2: [1], inbox: [] });
      const signature = await keys.sign(survivorSetMessage(roundId, [1]));
      const named = { roundId, survivors: [1], signature };
      const confirmations = [{ id: 1, signature: await p.confirm(COORD, named) }];
      const reveal = await p.unmask(COORD, { ...named, confirmations });
      const sa: SecAggConfig = { roundId, participants: [1], threshold: 1, dim: layoutDim(a.paramCount) };
      const expect = { roundId, participants: new Set([1]) };
      const ring = unmaskSum(
        sa,
        [decodeSignedAdvert(advert, expect).advert],
        [decodeMasked(masked, { ...expect, dim: sa.dim })],
        [decodeUnmask(reveal, expect)],
      );
      leaked = dequantise(ring, roundQuantiser(a.dp, 1, 1));
    } catch (err) {
      assert.ok(refused('keys', 'roster-too-small')(err), String(err));
      assert.equal((err as SecAggError).code, 'too-few-participants');
      return;
    }
    const P = a.paramCount;
    assert.fail(
      `roster of one accepted: the coordinator unmasked p1's own update (weight ${leaked[P]!.toFixed(4)}, clip bit ${leaked[P + 1]!.toFixed(4)})`,
    );
  });

  test(`rosters below ${FL_DEFAULTS.minRosterMembers} distinct members, or naming one twice, are refused; ${FL_DEFAULTS.minRosterMembers} are not`, async () => {
    const [me, a, b] = await Promise.all([member(), member(), member()]);
    const p = await participant(me, keys);
    const roundId = new Uint8Array(32).fill(0x43);
    assert.equal((await p.announce(COORD, announcement(roundId))).accept, true);
    await assert.rejects(
      p.keys(COORD, { roundId, threshold: 2, participants: [me.id, a.id] }),
      refused('keys', 'roster-too-small'),
    );
    await assert.rejects(
      p.keys(COORD, { roundId, threshold: 2, participants: [me.id, a.id, a.id] }),
      refused('keys', 'roster-repeats'),
    );
    // The same member under its other peer-id encoding (the CID form): still one member, whose
    // key could sign both adverts.
    const aCid = peerIdFromPrivateKey(a.key).toCID().toString();
    assert.notEqual(aCid, a.id);
    await assert.rejects(
      p.keys(COORD, { roundId, threshold: 2, participants: [me.id, a.id, aCid] }),
      refused('keys', 'roster-repeats'),
    );
    // A refused roster revealed nothing: the coordinator may still ask with a proper one.
    const signed = await p.keys(COORD, { roundId, threshold: 2, participants: [me.id, a.id, b.id] });
    assert.equal(decodeSignedAdvert(signed, { roundId, participants: new Set([1, 2, 3]) }).advert.from, 1);
    // Answered once: new keys for another roster would be a second advert to relay.
    await assert.rejects(
      p.keys(COORD, { roundId, threshold: 2, participants: [me.id, b.id, a.id] }),
      refused('keys', 'asked-twice'),
    );
  });

  test('where the chain keeps a roster, every member a round names must hold train', async () => {
    const [me, a, b] = await Promise.all([member(), member(), member()]);
    const trainers = new Set([me.id, a.id]);
    const p = await participant(me, keys, 0, (peer) => trainers.has(peer));
    const roundId = new Uint8Array(32).fill(0x44);
    assert.equal((await p.announce(COORD, announcement(roundId))).accept, true);
    await assert.rejects(
      p.keys(COORD, { roundId, threshold: 2, participants: [me.id, a.id, b.id] }),
      (e: unknown) => refused('keys', 'not-a-trainer')(e) && (e as Error).message.includes(b.id),
    );
    trainers.add(b.id);
    await p.keys(COORD, { roundId, threshold: 2, participants: [me.id, a.id, b.id] });
  });

  test('adverts for real trainers that they did not make are refused at the shares step', async () => {
    // Two real identities the coordinator names in the roster but never contacts.
    const [me, a, b] = await Promise.all([member(), member(), member()]);
    const coordinatorKey = await generateKeyPair('Ed25519');
    const roster = [me.id, a.id, b.id];
    const sybilsFor = async (
      roundId: Uint8Array,
      sign: (id: number, m: Uint8Array) => Promise<Uint8Array>,
    ) => {
      const sa: SecAggConfig = {
        roundId,
        participants: [1, 2, 3],
        threshold: 2,
        dim: layoutDim(data().ex.dim + 1),
      };
      return Promise.all(
        [2, 3].map(async (id) => {
          const bytes = encodeAdvertisement(createParticipant(sa, id).advertisement);
          const m = advertSigningMessage(bytes, { roundId, threshold: 2, participants: roster });
          return encodeSignedAdvert(bytes, await sign(id, m));
        }),
      );
    };
    const start = async (fill: number) => {
      const p = await participant(me, keys);
      const roundId = new Uint8Array(32).fill(fill);
      assert.equal((await p.announce(COORD, announcement(roundId))).accept, true);
      const advert = await p.keys(COORD, { roundId, threshold: 2, participants: roster });
      return { p, roundId, advert };
    };

    // Signed by the coordinator, the one key it holds.
    const r1 = await start(0x42);
    const forged = await sybilsFor(r1.roundId, async (_id, m) => coordinatorKey.sign(m));
    await assert.rejects(
      r1.p.shares(COORD, { roundId: r1.roundId, adverts: [r1.advert, ...forged] }),
      refused('shares', 'bad-advert-signature'),
      "adverts of members 2 and 3 are the coordinator's own keys; p1 shares its secrets to them",
    );
    // Unsigned, in the old wire form: not even the right length.
    const r2 = await start(0x45);
    const sa2: SecAggConfig = { roundId: r2.roundId, participants: [1, 2, 3], threshold: 2, dim: 1 };
    const bare = [2, 3].map((id) => encodeAdvertisement(createParticipant(sa2, id).advertisement));
    await assert.rejects(
      r2.p.shares(COORD, { roundId: r2.roundId, adverts: [r2.advert, ...bare] }),
      (e: unknown) => e instanceof SecAggError && e.code === 'malformed',
    );
    // Signed by the right members, but for another roster: a coordinator showing members
    // different rosters (or thresholds) cannot relay their adverts to one another.
    const r3 = await start(0x46);
    const memberKeys = [a.key, b.key];
    const sa3: SecAggConfig = { roundId: r3.roundId, participants: [1, 2, 3], threshold: 3, dim: 1 };
    const otherRoster = await Promise.all(
      [2, 3].map(async (id) => {
        const bytes = encodeAdvertisement(createParticipant(sa3, id).advertisement);
        const m = advertSigningMessage(bytes, { roundId: r3.roundId, threshold: 3, participants: roster });
        return encodeSignedAdvert(bytes, await memberKeys[id - 2]!.sign(m));
      }),
    );
    await assert.rejects(
      r3.p.shares(COORD, { roundId: r3.roundId, adverts: [r3.advert, ...otherRoster] }),
      refused('shares', 'bad-advert-signature'),
    );
    // The members' own adverts for this roster: shares go out, one to each of them.
    const r4 = await start(0x47);
    const honest = await sybilsFor(r4.roundId, async (id, m) => memberKeys[id - 2]!.sign(m));
    const shares = await r4.p.shares(COORD, { roundId: r4.roundId, adverts: [r4.advert, ...honest] });
    assert.equal(shares.length, 2);
  });

  test('a survivor set below the minimum is not unmasked: "everyone else dropped" exposes no one', async () => {
    // Roster of three; the coordinator (as it would with its own participant among them) keeps
    // two in U2 and U3, so the "sum" would be the victim's update plus one it knows.
    const nodes = await participants(3, keys);
    const roundId = new Uint8Array(32).fill(0x48);
    const a = announcement(roundId);
    for (const n of nodes) assert.equal((await n.p.announce(COORD, a)).accept, true);
    const roster = nodes.map((n) => n.name);
    const adverts = await Promise.all(
      nodes.map((n) => n.p.keys(COORD, { roundId, threshold: 2, participants: roster })),
    );
    const sa: SecAggConfig = { roundId, participants: [1, 2, 3], threshold: 2, dim: layoutDim(a.paramCount) };
    // Both share to all three; the coordinator hands the victim only the share from member 2.
    await nodes[0]!.p.shares(COORD, { roundId, adverts });
    const expect = { roundId, participants: new Set(sa.participants) };
    const inbox = (await nodes[1]!.p.shares(COORD, { roundId, adverts })).filter(
      (b) => decodeShare(b, expect).to === 1,
    );
    assert.equal(inbox.length, 1);
    const victim = nodes[0]!.p;
    await victim.train(COORD, { roundId, u2: [1, 2], inbox });
    const named = {
      roundId,
      survivors: [1, 2],
      signature: await keys.sign(survivorSetMessage(roundId, [1, 2])),
    };
    await assert.rejects(
      victim.confirm(COORD, named),
      (e: unknown) => e instanceof UnmaskRefused && e.reason === 'too-few-survivors',
    );
    // Nothing was confirmed, so no unmask request is answered either.
    await assert.rejects(
      victim.unmask(COORD, { ...named, confirmations: [] }),
      (e: unknown) => e instanceof UnmaskRefused && e.reason === 'not-confirmed',
    );
  });
});
