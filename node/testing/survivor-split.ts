/**
 * The split-survivor-sets attack on real FlParticipants (attack review ATK-16), shared by the
 * tests of its two forms: slot 1 of a roster of 5 (t = 3) is held either by the coordinator
 * itself or by a second identity of the coordinator's, and the coordinator tells V and W that
 * U3 = {1, V, W}, X and Y that U3 = {1, X, Y}. Slot 1 runs the plain protocol functions and
 * answers both ways; the four honest participants answer as they would on the wire. Returns
 * what the honest ones refused and whether V's own update could be rebuilt from the reveals.
 */
import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { layoutDim } from '../fl/local-round.ts';
import {
  advertSigningMessage,
  decodeSignedAdvert,
  encodeSignedAdvert,
  runDigest,
} from '../fl/net/advert-signature.ts';
import { UnmaskRefused } from '../fl/net/participant.ts';
import { confirmationMessage, survivorSetMessage } from '../fl/net/survivor-set.ts';
import { routeShares } from '../fl/secagg/aggregator.ts';
import {
  decodeMasked,
  decodeUnmask,
  encodeAdvertisement,
  encodeShare,
  type KeyAdvertisement,
  type UnmaskingShares,
} from '../fl/secagg/messages.ts';
import {
  createParticipant,
  type Delivered,
  type Participant,
  receiveShares,
  revealShares,
  type SecAggConfig,
  shareKeys,
} from '../fl/secagg/protocol.ts';
import { announcement, coordinatorKeys, type Node, participants } from './fl-round-rig.ts';
import { recoverInput } from './secagg-attack.ts';

export interface SplitOutcome {
  /** The honest participants' unmask refusals (reasons), in roster order. */
  readonly refusals: readonly string[];
  /** Whether an honest participant of one half signed the other half's set when asked. */
  readonly crossConfirmRefusal: string | undefined;
  /** Per honest roster id (2..5): the rebuilt update, or undefined when it could not be rebuilt. */
  readonly rebuilt: ReadonlyMap<number, Uint32Array>;
}

export async function splitSurvivorSets(slot1: 'coordinator' | 'second-identity'): Promise<SplitOutcome> {
  const keys = await coordinatorKeys();
  const honest = await participants(4, keys); // V, W, X, Y: real FlParticipants with ledgers
  const bossKey = await generateKeyPair('Ed25519');
  const boss = peerIdFromPrivateKey(bossKey).toString();
  const slotKey = slot1 === 'coordinator' ? bossKey : await generateKeyPair('Ed25519');
  const roundId = new Uint8Array(32).fill(0x5e);
  const roster = [peerIdFromPrivateKey(slotKey).toString(), ...honest.map((n) => n.name)];
  const { sa, adverts, routed, masked, mine, run } = await runToMasked(
    honest,
    boss,
    slotKey,
    roster,
    roundId,
  );

  // Two signed survivor sets, each ≥ 3, ≥ t, within U2; each participant is asked once. Slot 1
  // confirms both and the coordinator relays each half's own confirmations, all it can get.
  const setA = [1, 2, 3]; // shown to V and W: V survived
  const setB = [1, 4, 5]; // shown to X and Y: V dropped
  const reveals: UnmaskingShares[] = [revealShares(mine, setA), revealShares(mine, setB)];
  const refusals: string[] = [];
  const requests = [];
  for (const set of [setA, setB]) {
    const named = { roundId, survivors: set, signature: await keys.sign(survivorSetMessage(roundId, set)) };
    const confirmations = [
      {
        id: 1,
        signature: await slotKey.sign(confirmationMessage(roundId, run, set)),
      },
    ];
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
  // Nor may an honest member of one half sign the other half's set.
  let crossConfirmRefusal: string | undefined;
  try {
    await honest[0]!.p.confirm(boss, {
      roundId,
      survivors: setB,
      signature: await keys.sign(survivorSetMessage(roundId, setB)),
    });
  } catch (err) {
    crossConfirmRefusal = err instanceof UnmaskRefused ? err.reason : (err as Error).message;
  }

  const advertMap = new Map<number, KeyAdvertisement>(adverts.map((ad) => [ad.from, ad]));
  const rebuilt = new Map<number, Uint32Array>();
  for (const id of [2, 3, 4, 5]) {
    const r = recoverInput(sa, advertMap, id, masked[id - 2]!.masked, reveals);
    if ('input' in r) rebuilt.set(id, r.input);
  }
  return { refusals, crossConfirmRefusal, rebuilt };
}

/** The failure message of a rebuilt update: how much of it sits near 0, as a quantised update does. */
export function describeRebuilt(id: number, input: ArrayLike<number>, refusals: readonly string[]): string {
  let small = 0;
  for (let i = 0; i < input.length; i++) if (Math.abs(input[i]! | 0) < 2 ** 24) small++;
  return (
    `the coordinator rebuilt x_${id} (${small} of ${input.length} words within ±2^24; uniform noise ` +
    `would have ~0.4 %); refusals: ${refusals.length ? refusals.join('; ') : 'none'}`
  );
}

/**
 * One run of round `roundId` up to the masked updates, slot 1 (the coordinator itself or its
 * second identity, `slotKey`) run by the plain protocol functions.
 */
export async function runToMasked(
  honest: readonly Node[],
  boss: string,
  slotKey: PrivateKey,
  roster: readonly string[],
  roundId: Uint8Array,
) {
  const a = announcement(roundId);
  const accepted = [];
  for (const n of honest) accepted.push((await n.p.announce(boss, a)).accept);
  assert.deepEqual(accepted, [true, true, true, true], 'every honest member takes the round');
  const threshold = 3;
  const sa: SecAggConfig = {
    roundId,
    participants: [1, 2, 3, 4, 5],
    threshold,
    dim: layoutDim(a.paramCount),
  };
  const expect = { roundId, participants: new Set(sa.participants) };
  let mine: Participant = createParticipant(sa, 1);
  const statement = { roundId, threshold, participants: [...roster] };
  const myAdvert = encodeAdvertisement(mine.advertisement);
  const advertBytes = [
    encodeSignedAdvert(myAdvert, await slotKey.sign(advertSigningMessage(myAdvert, statement))),
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
  return { sa, adverts, routed, masked, mine, run: runDigest(statement, advertBytes) };
}
