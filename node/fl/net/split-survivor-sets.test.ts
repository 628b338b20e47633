/**
 * Attack review ATK-16 (HIGH, fixed): a coordinator that is also on the roster showed two halves
 * of the roster two different survivor sets and rebuilt one member's own update.
 *
 * Each participant answers unmask once, and t > n/2, but the two groups need not be disjoint:
 * the coordinator's own slot holds a share of every secret and answers both ways. With n = 5 and
 * t = 3 it tells V and W that U3 = {C, V, W} and X and Y that U3 = {C, X, Y}; V, W and C's slot
 * give t shares of V's self-mask seed b_V, X, Y and C's slot t shares of V's mask key:
 * y_V − PRG(b_V) ∓ pairwise masks = x_V.
 *
 * The fix (survivor-set.ts, Bonawitz et al. 2017 §4): every survivor signs the U3 it was shown,
 * once per round; a participant reveals only when shown valid confirmations of that same set
 * from ≥ t members of it, more than half of the members other than the coordinator among them.
 * Here each half has two honest confirmations of four, so nobody reveals and nothing is rebuilt.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { announcement, cleanup, coordinatorKeys, participants } from '../../testing/fl-round-rig.ts';
import { recoverInput } from '../../testing/secagg-attack.ts';
import { layoutDim } from '../local-round.ts';
import { routeShares } from '../secagg/aggregator.ts';
import {
  decodeMasked,
  decodeUnmask,
  encodeAdvertisement,
  encodeShare,
  type KeyAdvertisement,
  type UnmaskingShares,
} from '../secagg/messages.ts';
import {
  createParticipant,
  type Delivered,
  receiveShares,
  revealShares,
  type SecAggConfig,
  shareKeys,
} from '../secagg/protocol.ts';
import { advertSigningMessage, decodeSignedAdvert, encodeSignedAdvert } from './advert-signature.ts';
import { UnmaskRefused } from './participant.ts';
import { confirmationMessage, survivorSetMessage } from './survivor-set.ts';

after(cleanup);

test('a coordinator on the roster cannot rebuild one member’s update from two survivor sets', async () => {
  const keys = await coordinatorKeys();
  const honest = await participants(4, keys); // V, W, X, Y: real FlParticipants with ledgers
  const bossKey = await generateKeyPair('Ed25519');
  const boss = peerIdFromPrivateKey(bossKey).toString();
  const roundId = new Uint8Array(32).fill(0x5e);
  const a = announcement(roundId);
  // The coordinator announces as itself: the peer its roster slot names.
  for (const n of honest) assert.ok((await n.p.announce(boss, a)).accept);

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
    ...(await Promise.all(honest.map((n) => n.p.keys(boss, statement)))),
  ];
  const adverts = advertBytes.map((b) => decodeSignedAdvert(b, expect).advert);

  const delivered: Delivered[] = [];
  const shared = shareKeys(mine, adverts);
  mine = shared.participant;
  for (const s of shared.shares) delivered.push({ from: 1, bytes: encodeShare(s) });
  for (const [i, n] of honest.entries())
    for (const bytes of await n.p.shares(boss, { roundId, adverts: advertBytes }))
      delivered.push({ from: i + 2, bytes });
  const routed = routeShares(sa, sa.participants, delivered);
  assert.deepEqual(routed.u2, [1, 2, 3, 4, 5]);
  mine = receiveShares(mine, routed.u2, routed.inbox.get(1)!);

  const masked = [];
  for (const [i, n] of honest.entries()) {
    const bytes = await n.p.train(boss, {
      roundId,
      u2: routed.u2,
      inbox: routed.inbox.get(i + 2)!.map(encodeShare),
    });
    masked.push(decodeMasked(bytes, { ...expect, dim: sa.dim }));
  }
  const victim = 2; // honest[0]
  const maskedOfVictim = masked[0]!.masked;

  // Two signed survivor sets, each ≥ 3, ≥ t, within U2; each participant is asked once. The
  // coordinator confirms both itself and relays the halves' own confirmations, all it can get.
  const setA = [1, 2, 3]; // shown to V and W: V survived
  const setB = [1, 4, 5]; // shown to X and Y: V dropped
  const reveals: UnmaskingShares[] = [revealShares(mine, setA), revealShares(mine, setB)];
  const refusals: string[] = [];
  const requests = [];
  for (const set of [setA, setB]) {
    const named = { roundId, survivors: set, signature: await keys.sign(survivorSetMessage(roundId, set)) };
    const confirmations = [{ id: 1, signature: await bossKey.sign(confirmationMessage(roundId, set)) }];
    for (const id of set.slice(1))
      confirmations.push({ id, signature: await honest[id - 2]!.p.confirm(boss, named) });
    requests.push({ ...named, confirmations });
  }
  for (const [i, n] of honest.entries()) {
    try {
      const bytes = await n.p.unmask(boss, requests[i < 2 ? 0 : 1]!);
      reveals.push(decodeUnmask(bytes, { roundId, participants: new Set(routed.u2) }));
    } catch (err) {
      refusals.push(err instanceof UnmaskRefused ? err.reason : (err as Error).message);
    }
  }
  // Each half: C's confirmation and two honest ones, of the four members besides C; 3 needed.
  assert.deepEqual(refusals, Array(4).fill('too-few-confirmations'));
  // Nor does either honest half sign the other half's set.
  await assert.rejects(
    honest[0]!.p.confirm(boss, {
      roundId,
      survivors: setB,
      signature: await keys.sign(survivorSetMessage(roundId, setB)),
    }),
    (e: unknown) => e instanceof UnmaskRefused && e.reason === 'second-survivor-set',
  );

  const advertMap = new Map<number, KeyAdvertisement>(adverts.map((ad) => [ad.from, ad]));
  const rebuilt = recoverInput(sa, advertMap, victim, maskedOfVictim, reveals);
  for (const victimId of [2, 3, 4, 5]) {
    const other = recoverInput(sa, advertMap, victimId, masked[victimId - 2]!.masked, reveals);
    assert.ok('failed' in other, `x_${victimId} rebuilt`);
  }
  if ('input' in rebuilt) {
    // A quantised update sits near 0 in the ring; uniform noise would have ~0.4 % of words this small.
    const small = rebuilt.input.filter((w) => Math.abs(w | 0) < 2 ** 24).length;
    assert.fail(
      `the coordinator rebuilt x_${victim} (${small} of ${rebuilt.input.length} words within ±2^24); ` +
        `refusals: ${refusals.length ? refusals.join('; ') : 'none'}`,
    );
  }
});
