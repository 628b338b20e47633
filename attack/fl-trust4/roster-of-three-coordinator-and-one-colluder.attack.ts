/**
 * Finding (HIGH; within the stated threat model, k = FL_DEFAULTS.collusionTolerance = 1): a
 * coordinator on the roster and one member colluding with it rebuild the third member's own
 * update from its masked update alone, before any confirm or unmask step, in a roster of 3.
 *
 * Mechanism. A participant takes a roster of at least minRosterMembers = 3 distinct members and
 * a threshold t > n/2 (protocol.ts validateConfig), so n = 3 has t = 2, and checkQuorumReachable
 * asks only whether the confirmation quorum can be met (2 others of 2: yes). But the coordinator's
 * own slot (a member holding coordinate and train; on an open network any node) holds one Shamir
 * share of V's mask key s_V and of its self-mask seed b_V, and the k = 1 colluder the participant
 * says it tolerates holds another: 2 = t shares of each. Together they combine s_V and b_V and
 * strip every mask off y_V. The confirmation quorum (survivor-set.ts) never comes into it: it
 * guards the reveal, and no reveal by V is needed. In general the shares outside the honest
 * members, (coordinator on the roster ? 1 : 0) + k, must stay below t; and for the unmasked sum
 * not to be one update, a survivor set must hold at least 2 members beyond the coordinator's slot
 * and k colluders. Here even the honest sum is one update: U3 = {C, V, W}, and the sum minus x_C
 * and x_W is x_V. (For n ≥ 4 the confirmation quorum already forces U3 to hold two honest
 * members besides C and one colluder: for n = 4, 3 of the 3 others must confirm; read, not run.)
 *
 * Measured today (real FlParticipant V of the rig, record mode, roster [C, V, W], t = 2, C the
 * coordinator with a real key, W the colluder, both run by the attacker): V accepts the
 * announcement, answers keys and shares and trains; recoverInput from C's and W's own decrypted
 * shares returns x_V, 16 387 of 16 387 words within ±2^24 (a quantised update, not mask noise);
 * V reveals nothing.
 *
 * Fix that would make this pass: at the keys step refuse (SecAggRefused, say `collusion-exceeds-
 * threshold`) a roster where (coordinator on the roster ? 1 : 0) + collusionTolerance ≥ t, and
 * make the minimum roster and survivor set 2 + (coordinator on the roster ? 1 : 0) +
 * collusionTolerance (so with k = 1 a roster with the coordinator on it needs n ≥ 4 and t ≥ 3).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { layoutDim } from '../../node/fl/local-round.ts';
import {
  advertSigningMessage,
  decodeSignedAdvert,
  encodeSignedAdvert,
} from '../../node/fl/net/advert-signature.ts';
import { SecAggRefused } from '../../node/fl/net/participant.ts';
import { routeShares } from '../../node/fl/secagg/aggregator.ts';
import {
  decodeMasked,
  encodeAdvertisement,
  encodeShare,
  type KeyAdvertisement,
} from '../../node/fl/secagg/messages.ts';
import {
  createParticipant,
  type Delivered,
  type Participant,
  receiveShares,
  revealShares,
  type SecAggConfig,
  shareKeys,
} from '../../node/fl/secagg/protocol.ts';
import { announcement, cleanup, coordinatorKeys, participants } from '../../node/testing/fl-round-rig.ts';
import { recoverInput } from '../../node/testing/secagg-attack.ts';

after(cleanup);

test('a coordinator on a roster of 3 and one colluder (k = 1) cannot rebuild the third member’s update', async () => {
  const keys = await coordinatorKeys();
  const [V] = await participants(1, keys);
  const cKey: PrivateKey = await generateKeyPair('Ed25519');
  const wKey: PrivateKey = await generateKeyPair('Ed25519');
  const C = peerIdFromPrivateKey(cKey).toString();
  const W = peerIdFromPrivateKey(wKey).toString();
  const roundId = new Uint8Array(32).fill(0x5c);
  const a = announcement(roundId);
  const accepted = await V!.p.announce(C, a);
  assert.ok(accepted.accept, accepted.reason);

  const roster = [C, V!.name, W];
  const threshold = 2; // the least t > n/2 for n = 3
  const sa: SecAggConfig = { roundId, participants: [1, 2, 3], threshold, dim: layoutDim(a.paramCount) };
  const expect = { roundId, participants: new Set(sa.participants) };
  const statement = { roundId, threshold, participants: roster };
  let c: Participant = createParticipant(sa, 1);
  let w: Participant = createParticipant(sa, 3);
  const signed = async (p: Participant, key: PrivateKey) => {
    const ad = encodeAdvertisement(p.advertisement);
    return encodeSignedAdvert(ad, await key.sign(advertSigningMessage(ad, statement)));
  };
  let vAdvert: Uint8Array;
  try {
    vAdvert = await V!.p.keys(C, statement);
  } catch (err) {
    // Defended: V refuses a roster whose outside shares reach t.
    assert.ok(err instanceof SecAggRefused, (err as Error).message);
    return;
  }
  const advertBytes = [await signed(c, cKey), vAdvert, await signed(w, wKey)];
  const adverts = advertBytes.map((b) => decodeSignedAdvert(b, expect).advert);
  const delivered: Delivered[] = [];
  const cs = shareKeys(c, adverts);
  c = cs.participant;
  for (const s of cs.shares) delivered.push({ from: 1, bytes: encodeShare(s) });
  const ws = shareKeys(w, adverts);
  w = ws.participant;
  for (const s of ws.shares) delivered.push({ from: 3, bytes: encodeShare(s) });
  for (const bytes of await V!.p.shares(C, { roundId, adverts: advertBytes }))
    delivered.push({ from: 2, bytes });
  const routed = routeShares(sa, sa.participants, delivered);
  c = receiveShares(c, routed.u2, routed.inbox.get(1)!);
  w = receiveShares(w, routed.u2, routed.inbox.get(3)!);
  const masked = decodeMasked(
    await V!.p.train(C, { roundId, u2: routed.u2, inbox: routed.inbox.get(2)!.map(encodeShare) }),
    { ...expect, dim: sa.dim },
  );
  // C's and W's own shares of V's secrets: b_V (V "survived") and s_V (V "dropped"), 2 = t each.
  const reveals = [
    revealShares(c, [1, 2, 3]),
    revealShares(c, [1, 3]),
    revealShares(w, [1, 2, 3]),
    revealShares(w, [1, 3]),
  ];
  const advertMap = new Map<number, KeyAdvertisement>(adverts.map((ad) => [ad.from, ad]));
  const rebuilt = recoverInput(sa, advertMap, 2, masked.masked, reveals);
  if ('input' in rebuilt) {
    const small = rebuilt.input.filter((x) => Math.abs(x | 0) < 2 ** 24).length;
    assert.fail(
      `coordinator + 1 colluder rebuilt x_V (${small} of ${rebuilt.input.length} words within ±2^24); V revealed nothing`,
    );
  }
});
