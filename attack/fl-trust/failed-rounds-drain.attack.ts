/**
 * Finding 4 (HIGH): one malicious `train` member makes every round fail at the range check
 * (an out-of-range masked update), after every honest participant has charged its ledger. It
 * cannot be told apart from the honest ones (only the sum is checked), so it is never penalised
 * or left out, and 20 such rounds spend the whole default budget (ε = 3) of every honest node
 * with no version committed. Failed rounds stay held until deadline + 60 s (4 at most), so the
 * drain runs at 4 rounds per ~90 s at the 30 s deadline used here: the 20 rounds take ~8 min. The network's federated learning then stops until operators raise
 * budgets — and the data was spent for nothing.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/failed-rounds-drain.attack.ts
 *
 * Fails until participants stop spending on rounds that keep failing (e.g. a cap on ε charged to
 * rounds that never reached their commit, per coordinator or in all), or the coordinator can
 * exclude the culprit (per-update range proofs, or re-running without suspects).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { zeroParams } from '../../node/fl/logistic.ts';
import { coordinateRound, RoundFailed } from '../../node/fl/net/coordinator.ts';
import { localLink } from '../../node/fl/net/links.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import { announcement, cleanup, coordinatorKeys, data, participants } from './lib.ts';

after(cleanup);

describe('attack: a participant that fails every round drains every honest budget', async () => {
  const keys = await coordinatorKeys();

  test('20 rounds failed at the range check leave honest participants at least half their budget', async () => {
    // Failed rounds are held until deadline + 60 s (4 at most): the attacker just waits that out.
    let clock = Date.now();
    const nodes = await participants(4, keys, { misbehave: 'out-of-range', now: () => clock });
    const { ex } = data();
    const reasons: string[] = [];
    const t0 = Date.now();
    let rounds = 0;
    for (let r = 0; r < 25; r++) {
      clock += 120_000;
      const roundId = new Uint8Array(32).fill(r + 1);
      const a = announcement(roundId);
      try {
        await coordinateRound(
          { hash: null, params: zeroParams(ex.dim) },
          nodes.map((n) => localLink(n.name, n.p)),
          { roundId, round: 1, dp: a.dp, train: a.train, deadlineMs: a.deadlineMs, privacy: a.privacy },
          { sign: keys.sign },
        );
        reasons.push('completed');
      } catch (err) {
        assert.ok(err instanceof RoundFailed, (err as Error).message);
        reasons.push(err.reason);
        // Stop once no honest node joins any more: FL is over for this network.
        if (err.reason === 'too-few-participants') break;
      }
      rounds++;
    }
    const honest = nodes.slice(0, 3).map((n) => n.g.status()!);
    console.log(
      JSON.stringify({
        rounds,
        ms: Date.now() - t0,
        outcomes: Object.fromEntries(
          [...new Set(reasons)].map((x) => [x, reasons.filter((y) => y === x).length]),
        ),
        honestEpsilon: honest.map((s) => Number(s.epsilonTotal.toFixed(4))),
        honestRounds: honest.map((s) => s.rounds),
        budget: FL_DEFAULTS.privacy.budgetEpsilon,
      }),
    );
    assert.ok(!reasons.includes('completed'), 'no round completed');
    for (const s of honest)
      assert.ok(
        s.epsilonTotal < s.budgetEpsilon / 2,
        `an honest node spent ε ${s.epsilonTotal.toFixed(3)} of ${s.budgetEpsilon} on ${s.rounds} rounds that all failed`,
      );
  });
});
