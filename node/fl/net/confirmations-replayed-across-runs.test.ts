/**
 * Finding (HIGH, fixed; reopened both split findings fixed by the fl-confirm step, `45d164e` and
 * `2c7115d`): a coordinator rebuilds one member's update by running the same round id twice and
 * relaying the first run's confirmations in the second. Two cases, roster of 5, t = 3, k = 1:
 *  - the coordinator's sybil S in slot 1, the coordinator off the roster (open networks): 4
 *    confirmations from members besides the coordinator needed;
 *  - the coordinator itself in slot 1 (a member holding coordinate and train: roster networks
 *    too, no second identity): 3 needed, its own not counted.
 *
 * Mechanism. A confirmation signs confirmationMessage(round id, U3): nothing fresh in the run.
 * The round id is the coordinator's choice, and a participant forgets a round at its fl-end
 * (participant.ts end) or commit, after which the same id is accepted again as new. So run 1
 * (honest up to the masked updates) shows W U3 = B = {S, W, X, Y} and X U3 = A = {S, V, W, X},
 * keeps both signatures, and ends the round. Run 2, same round id, same roster [S, V, W, X, Y],
 * fresh secagg keys: V and W are shown A, X and Y are shown B. A then carries S, V, W (run 2) and
 * X (run 1); B carries S, X, Y (run 2) and W (run 1): 4 members besides the coordinator each (3
 * when S is the coordinator). Every honest member signed one set per run and reveals once per
 * run; slot 1 answers both ways. V's self-mask seed comes from S, V, W, its mask key from S, X, Y.
 *
 * Measured today: run 2's four honest members all reveal, recoverInput returns
 * x_V, 16 387 of 16 387 words within ±2^24 (a quantised update, not mask noise); the honest
 * participants reject nothing: all 4 take the second announcement of the same round id (the
 * per-coordinator uncommitted-spend cap lets run 2 in), 0 refusals at confirm and unmask.
 * Control: the same requests without the two run-1 signatures are refused (too-few-confirmations)
 * and nothing is rebuilt, in both cases (both tests pass with those two lines removed).
 * Wire form checked: both unmask requests survive encodeUnmaskRequest/decodeUnmaskRequest.
 * Cost to the attacker: one extra run to the masked updates (each honest member's ledger is
 * charged one uncommitted round for run 1). What is lost is secure aggregation's promise: in
 * record mode (this rig) x_V is V's DP-SGD delta, whose record-level ε the ledger still covers;
 * in update mode each update carries only its share of the sum's noise (local-round.ts
 * noiseStds over the minimum survivors; read, not measured here), so one rebuilt update voids
 * that round's ε. HIGH, as the split and sybil-split findings this extends.
 *
 * Fix (these tests failed before it): a participant remembers the round ids it forgot
 * (participant.ts MAX_ENDED_ROUNDS) and declines a repeat as `duplicate`; and, for a rerun past
 * that memory, each confirmation signs the run digest too (advert-signature.ts runDigest:
 * roster, threshold and the signed adverts relayed at the shares step), so run 1's signatures
 * are `bad-confirmation` in run 2. The review's suggestion: bind each confirmation to this run, not only to the round id:
 * sign H(keys request ‖ the U1 signed adverts as relayed) with U3 (the adverts hold fresh
 * keys each run, so a first run's confirmation verifies in no other), and check relayed
 * confirmations against that; or remember (persisted, per coordinator or in all) every round id
 * ever taken part in and decline a repeat as `duplicate`.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import {
  announcement,
  cleanup,
  coordinatorKeys,
  type Keys,
  type Node,
  participants,
} from '../../testing/fl-round-rig.ts';
import { recoverInput } from '../../testing/secagg-attack.ts';
import { runToMasked } from '../../testing/survivor-split.ts';
import { decodeUnmask, type KeyAdvertisement, type UnmaskingShares } from '../secagg/messages.ts';
import { revealShares } from '../secagg/protocol.ts';
import { ENDED_ROUND_MEMORY_MS, UnmaskRefused } from './participant.ts';
import { confirmationMessage, type SurvivorConfirmation, survivorSetMessage } from './survivor-set.ts';
import { decodeUnmaskRequest, encodeUnmaskRequest, type UnmaskRequest } from './wire.ts';

after(cleanup);

/** The coordinator's signed U3 as the confirm and unmask requests carry it. */
const named = async (keys: Keys, roundId: Uint8Array, survivors: number[]) => ({
  roundId,
  survivors,
  signature: await keys.sign(survivorSetMessage(roundId, survivors)),
});

async function splitWithReplay(onRoster: boolean): Promise<void> {
  const keys = await coordinatorKeys();
  let clock = Date.now();
  const honest = await participants(4, keys, { now: () => clock }); // V, W, X, Y (ids 2..5)
  const sybilKey = await generateKeyPair('Ed25519');
  // Slot 1: the coordinator's own slot (a member holding coordinate and train), or its sybil S.
  const boss = peerIdFromPrivateKey(onRoster ? sybilKey : await generateKeyPair('Ed25519')).toString();
  const roster = [peerIdFromPrivateKey(sybilKey).toString(), ...honest.map((n) => n.name)];
  const roundId = new Uint8Array(32).fill(0x7a);
  const setA = [1, 2, 3, 4]; // V survived
  const setB = [1, 3, 4, 5]; // V dropped
  const [, W, X] = honest as [Node, Node, Node, Node];

  // Run 1: honest to the masked updates; W confirms B, X confirms A; then the round is ended.
  await runToMasked(honest, boss, sybilKey, roster, roundId);
  const wOnB = await W.p.confirm(boss, await named(keys, roundId, setB));
  const xOnA = await X.p.confirm(boss, await named(keys, roundId, setA));
  for (const n of honest) n.p.end(boss, { roundId });
  // A repeat announcement of the round id is declined while it is remembered...
  for (const n of honest) {
    const r = await n.p.announce(boss, announcement(roundId));
    assert.equal(r.accept, false);
    assert.match(r.reason, /already taken part in/);
  }
  // ...and past that memory the run digest refuses run 1's confirmations on its own.
  clock += ENDED_ROUND_MEMORY_MS + 1;

  // Run 2: the same round id again, fresh keys.
  const run = await runToMasked(honest, boss, sybilKey, roster, roundId);
  const sybilSigns = (set: number[]) => sybilKey.sign(confirmationMessage(roundId, run.run, set));
  const reqA = await named(keys, roundId, setA);
  const reqB = await named(keys, roundId, setB);
  const confA: SurvivorConfirmation[] = [
    { id: 1, signature: await sybilSigns(setA) },
    { id: 2, signature: await honest[0]!.p.confirm(boss, reqA) },
    { id: 3, signature: await W.p.confirm(boss, reqA) },
    { id: 4, signature: xOnA }, // from run 1
  ];
  const confB: SurvivorConfirmation[] = [
    { id: 1, signature: await sybilSigns(setB) },
    { id: 3, signature: wOnB }, // from run 1
    { id: 4, signature: await X.p.confirm(boss, reqB) },
    { id: 5, signature: await honest[3]!.p.confirm(boss, reqB) },
  ];
  // Through the wire form, as FlService's handler receives them.
  const wire = (u: UnmaskRequest) => decodeUnmaskRequest(encodeUnmaskRequest(u));
  const unmaskA = wire({ ...reqA, confirmations: confA });
  const unmaskB = wire({ ...reqB, confirmations: confB });

  const reveals: UnmaskingShares[] = [revealShares(run.mine, setA), revealShares(run.mine, setB)];
  const refusals: string[] = [];
  for (const [i, n] of honest.entries()) {
    try {
      const bytes = await n.p.unmask(boss, i < 2 ? unmaskA : unmaskB);
      reveals.push(decodeUnmask(bytes, { roundId, participants: new Set(run.routed.u2) }));
    } catch (err) {
      refusals.push(err instanceof UnmaskRefused ? err.reason : (err as Error).message);
    }
  }
  const advertMap = new Map<number, KeyAdvertisement>(run.adverts.map((ad) => [ad.from, ad]));
  const rebuilt = recoverInput(run.sa, advertMap, 2, run.masked[0]!.masked, reveals);
  if ('input' in rebuilt) {
    const small = rebuilt.input.filter((w) => Math.abs(w | 0) < 2 ** 24).length;
    assert.fail(
      `the coordinator rebuilt x_V from run 2 (${small} of ${rebuilt.input.length} words within ±2^24); ` +
        `refusals: ${refusals.length ? refusals.join('; ') : 'none'}`,
    );
  }
  // Every unmask request carries one replayed confirmation (X's in A, W's in B): all four refuse.
  assert.deepEqual(refusals, [
    'bad-confirmation',
    'bad-confirmation',
    'bad-confirmation',
    'bad-confirmation',
  ]);
}

test('a first run’s confirmations do not count in a second run of the same round id (sybil S on the roster)', () =>
  splitWithReplay(false));

test('a first run’s confirmations do not count in a second run of the same round id (coordinator on the roster)', () =>
  splitWithReplay(true));
