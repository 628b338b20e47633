/**
 * Issue 16, finding 1 (attack review): a coordinator that asks `fl-shares` a second time, with
 * adverts whose key pairs it made for everyone but the victim, gets a fresh Shamir sharing of the
 * victim's mask key and self-mask seed encrypted to itself: it decrypts t of them, rebuilds both
 * and strips every mask off the victim's masked update. No second unmask request is needed, so
 * revealOnce and t > n/2 do not stop it. A participant answers fl-shares once per round, and only
 * for adverts their owners signed. Real participants and ledgers; the coordinator is this test.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { x25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesEqual } from '../../chain/bytes.ts';
import {
  announcement,
  COORD,
  cleanup,
  coordinatorKeys,
  honestUnmask,
  type Keys,
  type Node,
  participants,
  type RoundState,
  runToMasked,
} from '../../testing/fl-round-rig.ts';
import { layoutDim, roundQuantiser } from '../local-round.ts';
import { decodeShare, encodeAdvertisement, type KeyAdvertisement, SecAggError } from '../secagg/messages.ts';
import {
  createParticipant,
  pairwiseSeed,
  receiveShares,
  type SecAggConfig,
  shareKeys,
} from '../secagg/protocol.ts';
import { addInto, dequantise, expandMask, subInto } from '../secagg/ring.ts';
import { combineShares } from '../secagg/shamir.ts';
import { advertSigningMessage, decodeSignedAdvert, encodeSignedAdvert } from './advert-signature.ts';
import { SecAggRefused } from './participant.ts';

after(cleanup);

/**
 * The coordinator's forged shares request against participant `victimId` (1-based): the
 * victim's own advert, and for everyone else adverts carrying key pairs the coordinator made,
 * signed with the coordinator's own key (it holds no other member's).
 */
async function forgedRequest(
  sa: SecAggConfig,
  roster: readonly string[],
  victimId: number,
  victimAdvert: Uint8Array,
  keys: Keys,
) {
  let ctr = 99;
  const rand = (k: number) => sha256(new Uint8Array([ctr & 255, (ctr++ >> 8) & 255, 7, 7])).slice(0, k);
  const expect = { roundId: sa.roundId, participants: new Set(sa.participants) };
  const real = decodeSignedAdvert(victimAdvert, expect).advert;
  const forged = sa.participants.filter((id) => id !== victimId).map((id) => createParticipant(sa, id, rand));
  const advertList: KeyAdvertisement[] = sa.participants.map((id) =>
    id === victimId ? real : forged.find((f) => f.id === id)!.advertisement,
  );
  const statement = { roundId: sa.roundId, threshold: sa.threshold, participants: roster };
  const adverts = await Promise.all(
    advertList.map(async (a) => {
      if (a.from === victimId) return victimAdvert;
      const bytes = encodeAdvertisement(a);
      return encodeSignedAdvert(bytes, await keys.sign(advertSigningMessage(bytes, statement)));
    }),
  );
  return { adverts, advertList, forged, rand, real };
}

/**
 * The re-share attack: were the forged request answered, the coordinator would decrypt t shares,
 * rebuild the victim's mask key and self-mask seed and return the victim's own update.
 */
async function reshareAttack(
  victim: Node,
  victimId: number,
  s: RoundState,
  keys: Keys,
): Promise<Uint32Array> {
  const { sa } = s;
  const f = await forgedRequest(sa, s.roster, victimId, s.advertBytes[victimId - 1]!, keys);
  const shareBytes = await victim.p.shares(COORD, { roundId: sa.roundId, adverts: f.adverts });
  const maskShares: { x: number; y: Uint8Array }[] = [];
  const selfShares: { x: number; y: Uint8Array }[] = [];
  for (const b of shareBytes) {
    const share = decodeShare(b, s.expect);
    const holder = f.forged.find((p) => p.id === share.to)!;
    const got = receiveShares(
      shareKeys(holder, f.advertList, f.rand).participant,
      [victimId, holder.id],
      [share],
    );
    const h = got.held!.get(victimId)!;
    maskShares.push({ x: holder.id, y: h.mask });
    selfShares.push({ x: holder.id, y: h.self });
  }
  const maskSecret = combineShares(maskShares, sa.threshold);
  const selfSeed = combineShares(selfShares, sa.threshold);
  assert.ok(bytesEqual(x25519.getPublicKey(maskSecret), f.real.maskPublic), 'mask key rebuilt');
  assert.ok(bytesEqual(sha256(selfSeed), f.real.selfMaskCommitment), 'self seed rebuilt');
  const x = Uint32Array.from(s.masked.find((m) => m.from === victimId)!.masked);
  subInto(x, expandMask(selfSeed, sa.dim));
  for (const w of s.routed.u2) {
    if (w === victimId) continue;
    const mask = expandMask(
      pairwiseSeed(sa.roundId, maskSecret, s.adverts[w - 1]!.maskPublic, victimId, w),
      sa.dim,
    );
    // maskUpdate added PRG(s_uw) for w > u and subtracted it for w < u.
    if (w > victimId) subInto(x, mask);
    else addInto(x, mask);
  }
  return x;
}

const refused = (reason: string) => (e: unknown) =>
  e instanceof SecAggRefused && e instanceof SecAggError && e.step === 'shares' && e.reason === reason;

describe('a coordinator asking fl-shares again', async () => {
  const keys = await coordinatorKeys();

  test('a participant answers fl-shares once per round (a second request is refused)', async () => {
    const nodes = await participants(3, keys);
    const s = await runToMasked(nodes, new Uint8Array(32).fill(0x31));
    // Same adverts again: refused too, as a new set of shares of the same secrets goes to
    // whoever the adverts name.
    for (const n of nodes)
      await assert.rejects(
        n.p.shares(COORD, { roundId: s.sa.roundId, adverts: s.advertBytes }),
        refused('asked-twice'),
      );
  });

  test('the re-share attack rebuilds nobody’s update; the honest sum still unmasks', async () => {
    const nodes = await participants(3, keys);
    const s = await runToMasked(nodes, new Uint8Array(32).fill(0x32));
    for (const [i, n] of nodes.entries())
      await assert.rejects(reshareAttack(n, i + 1, s, keys), refused('asked-twice'));
    // The refusals cost the round nothing: the sum of the three unmasks as before.
    const sum = dequantise(await honestUnmask(nodes, s, keys), roundQuantiser(s.a.dp, 3, s.sa.threshold));
    const P = s.a.paramCount;
    // Layout: delta (P) | weight | clip bits: three participants' weights of 1 each.
    assert.ok(Math.abs(sum[P]! - 3) < 1e-3, `weight ${sum[P]}`);
  });

  test('forged adverts in the first shares request are refused as unsigned by their members', async () => {
    const nodes = await participants(3, keys);
    const roundId = new Uint8Array(32).fill(0x33);
    const a = announcement(roundId);
    for (const n of nodes) assert.equal((await n.p.announce(COORD, a)).accept, true);
    const roster = nodes.map((n) => n.name);
    const sa: SecAggConfig = { roundId, participants: [1, 2, 3], threshold: 2, dim: layoutDim(a.paramCount) };
    const advertBytes = await Promise.all(
      nodes.map((n) => n.p.keys(COORD, { roundId, threshold: 2, participants: roster })),
    );
    const f = await forgedRequest(sa, roster, 1, advertBytes[0]!, keys);
    await assert.rejects(
      nodes[0]!.p.shares(COORD, { roundId, adverts: f.adverts }),
      refused('bad-advert-signature'),
    );
    // Once refused, the round's shares step is over for the victim: even an honest retry.
    await assert.rejects(
      nodes[0]!.p.shares(COORD, { roundId, adverts: advertBytes }),
      refused('asked-twice'),
    );
    // The others, asked honestly, answer: one share each for the two other members.
    for (const n of nodes.slice(1))
      assert.equal((await n.p.shares(COORD, { roundId, adverts: advertBytes })).length, 2);
  });
});
