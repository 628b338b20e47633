/**
 * Finding (MEDIUM): one coordinator takes every round slot a participant has, for free, and
 * every other coordinator's round is declined as `busy`.
 *
 * FlParticipant holds at most MAX_HELD_ROUNDS (4) rounds, in all, not per coordinator; a round is
 * freed by its commit, by its own coordinator's fl-end, or deadline + 60 s after it was announced,
 * and the announcement chooses the deadline up to MAX_DEADLINE_MS (10 min). An announcement costs
 * the announcer nothing: no training happens, no ε is charged (decide() only asks canAfford), and
 * FlService penalises nothing for it. So a single member holding `coordinate` (anyone on an open
 * network) that announces 4 rounds with a 10-minute deadline to every trainer, and again every
 * 11 minutes, keeps every node out of every honest round, indefinitely, with 4 small messages
 * per node per 11 minutes.
 *
 * Today: after mallory's 4 announcements, boss's round is declined `busy` at t = 0 and still at
 * t = 10 min 59 s; the participant's ledger shows 0 rounds charged.
 *
 * Run: npm exec -- node --test attack/fl-trust2/one-coordinator-holds-every-slot.attack.ts
 *
 * Fix that makes it pass: a per-coordinator share of the held rounds (e.g. at most 1 or 2 rounds
 * of one coordinator held at once, a new one from it declined as `busy-coordinator` and counted),
 * so another coordinator always finds a slot; optionally a shorter hold for rounds that never
 * reached their keys step.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MAX_DEADLINE_MS } from '../../node/fl/net/wire.ts';
import { announcement, cleanup, coordinatorKeys, participants } from '../../node/testing/fl-round-rig.ts';

after(cleanup);

test('one coordinator cannot take every round slot a participant has', async () => {
  let clock = Date.now();
  const [n] = await participants(1, await coordinatorKeys(), { now: () => clock });
  const p = n!.p;
  for (let k = 0; k < 4; k++) {
    const r = await p.announce('mallory', {
      ...announcement(new Uint8Array(32).fill(0x80 + k)),
      deadlineMs: MAX_DEADLINE_MS,
    });
    assert.ok(r.accept, r.reason);
  }
  const honest = await p.announce('boss', announcement(new Uint8Array(32).fill(1)));
  clock += MAX_DEADLINE_MS + 59_000;
  const later = await p.announce('boss', announcement(new Uint8Array(32).fill(2)));
  const figures = `at t=0: ${honest.accept ? 'accepted' : honest.reason}; at t=${(MAX_DEADLINE_MS + 59_000) / 1000}s: ${later.accept ? 'accepted' : later.reason}; rounds charged ${n!.g.status()!.rounds}`;
  assert.ok(honest.accept, figures);
  assert.ok(later.accept, figures);
});
