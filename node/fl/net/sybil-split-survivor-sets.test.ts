/**
 * Finding (HIGH, open; what is left of the split-survivor-sets finding after the fl-confirm
 * consistency step): a coordinator with one second identity on the roster still rebuilds one
 * member's update from two survivor sets.
 *
 * node/fl/net/split-survivor-sets.test.ts is the case of the coordinator's own slot: its
 * confirmation is not counted among "the others" (survivor-set.ts confirmationQuorum), so each
 * half falls one short. But a coordinator that is not on the roster and has one identity S there
 * instead (free on an open network, where anyone claiming `train` is invited; on a roster network
 * a colluding member) is an honest-looking member: with n = 5 and t = 3 it tells V and W that
 * U3 = {S, V, W} and X and Y that U3 = {S, X, Y}; each half shows S's confirmation and its own two,
 * 3 of the 5 members besides the coordinator, the quorum. S's slot answers both ways, as before.
 * This is the bound of Bonawitz et al. 2017 (safe only while 2t − n exceeds the corrupt members):
 * here 2t − n = 1 and one member is corrupt.
 *
 * Today: all four honest participants reveal and recoverInput returns x_V.
 *
 * Run: npm exec -- node --test attack/fl-trust2/sybil-split-survivor-sets.attack.ts
 *
 * Fixes that would make it pass: participants require confirmations from more than (n + k)/2
 * members for k tolerated corrupt members (k = 1 at least, the coordinator's slot or one other);
 * that costs the one-dropout tolerance of a roster of 4 with the coordinator on it (t = 3, then
 * 3 of 3 others needed). Or refuse thresholds with 2t − n ≤ k. Either changes which rounds run.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { announcement, COORD, cleanup, coordinatorKeys, participants } from '../../testing/fl-round-rig.ts';
import { describeRebuilt, splitSurvivorSets } from '../../testing/survivor-split.ts';
import { SecAggRefused } from './participant.ts';
import { confirmationQuorum } from './survivor-set.ts';

after(cleanup);

test('a coordinator with one identity on the roster cannot rebuild one member’s update from two survivor sets', async () => {
  const out = await splitSurvivorSets('second-identity');
  // Each half: S's confirmation and two honest ones, of the five members; with a collusion
  // tolerance of 1, more than (5 + 1)/2, so 4, are needed.
  assert.deepEqual(out.refusals, Array(4).fill('too-few-confirmations'));
  assert.equal(out.crossConfirmRefusal, 'second-survivor-set');
  for (const [id, input] of out.rebuilt) assert.fail(describeRebuilt(id, input, out.refusals));
});

test('the confirmation quorum grows with the collusion tolerance; a roster that cannot reach it is refused at keys', async () => {
  // Members besides the coordinator needed: more than (m + k)/2.
  assert.deepEqual(confirmationQuorum(5, false, 3, 0), { total: 3, others: 3 });
  assert.deepEqual(confirmationQuorum(5, false, 3, 1), { total: 3, others: 4 });
  assert.deepEqual(confirmationQuorum(5, true, 3, 1), { total: 3, others: 3 });
  assert.deepEqual(confirmationQuorum(3, false, 2, 1), { total: 2, others: 3 });
  const keys = await coordinatorKeys();
  // k = 3 on a roster of 3 with an outside coordinator: 4 confirmations of 3 members, never.
  const [n] = await participants(1, keys, { collusionTolerance: 3 });
  const roundId = new Uint8Array(32).fill(0x3a);
  assert.ok((await n!.p.announce(COORD, announcement(roundId))).accept);
  const others = await Promise.all(
    [0, 1].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()),
  );
  await assert.rejects(
    n!.p.keys(COORD, { roundId, threshold: 2, participants: [n!.name, ...others] }),
    (e: unknown) => e instanceof SecAggRefused && e.reason === 'quorum-unreachable',
  );
});
