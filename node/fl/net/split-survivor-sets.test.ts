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
import { cleanup } from '../../testing/fl-round-rig.ts';
import { describeRebuilt, splitSurvivorSets } from '../../testing/survivor-split.ts';

after(cleanup);

test('a coordinator on the roster cannot rebuild one member’s update from two survivor sets', async () => {
  const out = await splitSurvivorSets('coordinator');
  // Each half: C's confirmation and two honest ones, of the four members besides C; 3 needed.
  assert.deepEqual(out.refusals, Array(4).fill('too-few-confirmations'));
  // Nor does either honest half sign the other half's set.
  assert.equal(out.crossConfirmRefusal, 'second-survivor-set');
  for (const [id, input] of out.rebuilt) assert.fail(describeRebuilt(id, input, out.refusals));
});
