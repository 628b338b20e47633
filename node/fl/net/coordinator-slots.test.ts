/**
 * Attack review ATK-16 (MEDIUM, fixed): one coordinator took every round slot a participant has,
 * for free, and every other coordinator's round was declined as `busy`.
 *
 * FlParticipant holds at most MAX_HELD_ROUNDS (4) rounds; a round is freed by its commit, by its
 * own coordinator's fl-end, or deadline + 60 s after it was announced, and the announcement
 * chooses the deadline up to MAX_DEADLINE_MS (10 min). An announcement costs the announcer
 * nothing (no training, no ε), so a single member holding `coordinate` that announced 4 rounds
 * with a 10-minute deadline to every trainer, again every 11 minutes, kept every node out of
 * every honest round with 4 small messages per node per 11 minutes.
 *
 * The fix (participant.ts coordinatorShare): one coordinator holds at most half of a
 * participant's slots at once (at least 1); a further announcement of its own is declined as
 * `busy-coordinator` (counted in cairn_fl_announce_declined_total), so another coordinator
 * always finds a slot.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { announcement, cleanup, coordinatorKeys, participants } from '../../testing/fl-round-rig.ts';
import { coordinatorShare, MAX_HELD_ROUNDS } from './participant.ts';
import { MAX_DEADLINE_MS } from './wire.ts';

after(cleanup);

test('a coordinator holds at most half of a participant’s round slots, at least one', () => {
  assert.equal(coordinatorShare(MAX_HELD_ROUNDS), 2);
  assert.equal(coordinatorShare(5), 2);
  assert.equal(coordinatorShare(2), 1);
  assert.equal(coordinatorShare(1), 1);
});

test('one coordinator cannot take every round slot a participant has', async () => {
  let clock = Date.now();
  const [n] = await participants(1, await coordinatorKeys(), { now: () => clock });
  const p = n!.p;
  const mallory = [];
  for (let k = 0; k < MAX_HELD_ROUNDS; k++)
    mallory.push(
      await p.announce('mallory', {
        ...announcement(new Uint8Array(32).fill(0x80 + k)),
        deadlineMs: MAX_DEADLINE_MS,
      }),
    );
  // Its share taken, mallory's further rounds are declined with their reason; nothing is charged.
  assert.deepEqual(
    mallory.map((r) => r.accept),
    [true, true, false, false],
  );
  for (const r of mallory.slice(2))
    assert.match(r.reason, /^busy-coordinator: this coordinator holds 2 of 4/);
  const honest = await p.announce('boss', announcement(new Uint8Array(32).fill(1)));
  clock += MAX_DEADLINE_MS + 59_000;
  const later = await p.announce('boss', announcement(new Uint8Array(32).fill(2)));
  const figures = `at t=0: ${honest.accept ? 'accepted' : honest.reason}; at t=${(MAX_DEADLINE_MS + 59_000) / 1000}s: ${later.accept ? 'accepted' : later.reason}; rounds charged ${n!.g.status()!.rounds}`;
  assert.ok(honest.accept, figures);
  assert.ok(later.accept, figures);
  // mallory's two (held to 660 s) and boss's second; boss's first expired at 90 s.
  assert.equal(p.active, 3);
  assert.ok((await p.announce('carol', announcement(new Uint8Array(32).fill(3)))).accept);
  // Now the participant is full: a fourth coordinator is declined as plain `busy`.
  assert.equal((await p.announce('dave', announcement(new Uint8Array(32).fill(4)))).reason, 'busy');
  assert.equal(n!.g.status()!.rounds, 0);
});
