/**
 * Finding (HIGH): a coordinator that is also on the roster learns one member's own update by
 * showing two halves of the roster two different survivor sets.
 *
 * Each participant answers unmask once, for one set the coordinator signed, and the threshold
 * must exceed n/2 (validateConfig), so "no two disjoint groups of t participants exist"
 * (protocol.ts revealOnce). But the two groups need not be disjoint: the coordinator's own slot
 * (a member holding `coordinate` and `train`, or any peer on an open network) holds a share of
 * every secret and answers both ways. With n = 5 and t = 3 (the rig's and any coordinator's
 * choice: 3 > 5/2) it tells V and W that U3 = {C, V, W} and X and Y that U3 = {C, X, Y}; every set
 * has ≥ 3 members (the survivor-set minimum), is ≥ t, lies in U2 and holds its recipient, and each
 * participant is asked once. V, W and C's own slot give t shares of V's self-mask seed b_V; X, Y
 * and C's slot give t shares of V's mask key: y_V − PRG(b_V) ∓ pairwise masks = x_V. In general
 * the split works whenever 2t − 1 ≤ n, i.e. for every odd roster ≥ 5 at the minimal threshold.
 *
 * Today: all four honest participants answer, recoverInput checks b_V against V's commitment and
 * the mask key against V's advertised public key (both match) and returns x_V, whose words are
 * all small ring values (a quantised update), not uniform noise.
 *
 * Run: npm exec -- node --test attack/fl-trust2/split-survivor-sets.attack.ts
 *
 * Fix that makes it pass: a consistency round before any reveal (Bonawitz et al. §4, malicious
 * server): each survivor signs the U3 it was shown, and a participant reveals only when shown
 * ≥ t signatures of members of its U3 over that same set; or participants refuse thresholds with
 * 2t − 1 ≤ n when the coordinator is itself on the roster (its slot counts in both groups).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { layoutDim } from '../../node/fl/local-round.ts';
import {
  advertSigningMessage,
  decodeSignedAdvert,
  encodeSignedAdvert,
} from '../../node/fl/net/advert-signature.ts';
import { survivorSetMessage } from '../../node/fl/net/survivor-set.ts';
import { routeShares } from '../../node/fl/secagg/aggregator.ts';
import {
  decodeMasked,
  decodeUnmask,
  encodeAdvertisement,
  encodeShare,
  type KeyAdvertisement,
  type UnmaskingShares,
} from '../../node/fl/secagg/messages.ts';
import {
  createParticipant,
  type Delivered,
  receiveShares,
  revealShares,
  type SecAggConfig,
  shareKeys,
} from '../../node/fl/secagg/protocol.ts';
import {
  announcement,
  COORD,
  cleanup,
  coordinatorKeys,
  participants,
} from '../../node/testing/fl-round-rig.ts';
import { recoverInput } from '../../node/testing/secagg-attack.ts';

after(cleanup);

test('a coordinator on the roster cannot rebuild one member’s update from two survivor sets', async () => {
  const keys = await coordinatorKeys();
  const honest = await participants(4, keys); // V, W, X, Y: real FlParticipants with ledgers
  const bossKey = await generateKeyPair('Ed25519');
  const boss = peerIdFromPrivateKey(bossKey).toString();
  const roundId = new Uint8Array(32).fill(0x5e);
  const a = announcement(roundId);
  for (const n of honest) assert.ok((await n.p.announce(COORD, a)).accept);

  const roster = [boss, ...honest.map((n) => n.name)];
  const threshold = 3; // > 5/2: what validateConfig and every participant accept
  const sa: SecAggConfig = {
    roundId,
    participants: [1, 2, 3, 4, 5],
    threshold,
    dim: layoutDim(a.paramCount),
  };
  const expect = { roundId, participants: new Set(sa.participants) };

  // The coordinator's own slot: the plain protocol functions, with an advert its identity key signs.
  let mine = createParticipant(sa, 1);
  const statement = { roundId, threshold, participants: roster };
  const myAdvert = encodeAdvertisement(mine.advertisement);
  const advertBytes = [
    encodeSignedAdvert(myAdvert, await bossKey.sign(advertSigningMessage(myAdvert, statement))),
    ...(await Promise.all(honest.map((n) => n.p.keys(COORD, statement)))),
  ];
  const adverts = advertBytes.map((b) => decodeSignedAdvert(b, expect).advert);

  const delivered: Delivered[] = [];
  const shared = shareKeys(mine, adverts);
  mine = shared.participant;
  for (const s of shared.shares) delivered.push({ from: 1, bytes: encodeShare(s) });
  for (const [i, n] of honest.entries())
    for (const bytes of await n.p.shares(COORD, { roundId, adverts: advertBytes }))
      delivered.push({ from: i + 2, bytes });
  const routed = routeShares(sa, sa.participants, delivered);
  assert.deepEqual(routed.u2, [1, 2, 3, 4, 5]);
  mine = receiveShares(mine, routed.u2, routed.inbox.get(1)!);

  const masked = [];
  for (const [i, n] of honest.entries()) {
    const bytes = await n.p.train(COORD, {
      roundId,
      u2: routed.u2,
      inbox: routed.inbox.get(i + 2)!.map(encodeShare),
    });
    masked.push(decodeMasked(bytes, { ...expect, dim: sa.dim }));
  }
  const victim = 2; // honest[0]
  const maskedOfVictim = masked[0]!.masked;

  // Two signed survivor sets, each ≥ 3, ≥ t, within U2; each participant is asked once.
  const setA = [1, 2, 3]; // shown to V and W: V survived
  const setB = [1, 4, 5]; // shown to X and Y: V dropped
  const sigA = await keys.sign(survivorSetMessage(roundId, setA));
  const sigB = await keys.sign(survivorSetMessage(roundId, setB));
  const reveals: UnmaskingShares[] = [revealShares(mine, setA), revealShares(mine, setB)];
  const refusals: string[] = [];
  for (const [i, n] of honest.entries()) {
    const [survivors, signature] = i < 2 ? [setA, sigA] : [setB, sigB];
    try {
      const bytes = await n.p.unmask(COORD, { roundId, survivors, signature });
      reveals.push(decodeUnmask(bytes, { roundId, participants: new Set(routed.u2) }));
    } catch (err) {
      refusals.push(`${i + 2}: ${(err as Error).message}`);
    }
  }

  const advertMap = new Map<number, KeyAdvertisement>(adverts.map((ad) => [ad.from, ad]));
  const rebuilt = recoverInput(sa, advertMap, victim, maskedOfVictim, reveals);
  if ('input' in rebuilt) {
    // A quantised update sits near 0 in the ring; uniform noise would have ~0.4 % of words this small.
    const small = rebuilt.input.filter((w) => Math.abs(w | 0) < 2 ** 24).length;
    assert.fail(
      `the coordinator rebuilt x_${victim} (${small} of ${rebuilt.input.length} words within ±2^24); ` +
        `refusals: ${refusals.length ? refusals.join('; ') : 'none'}`,
    );
  }
});
