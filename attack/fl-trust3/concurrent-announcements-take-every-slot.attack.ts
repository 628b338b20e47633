/**
 * Finding (MEDIUM, open; the one-coordinator-holds-every-slot finding again, through a race):
 * one coordinator that sends its announcements at once still takes all of a participant's round
 * slots, and announcements at once exceed MAX_HELD_ROUNDS itself.
 *
 * Mechanism. FlParticipant.announce counts the announcer's rounds (coordinatorShare) and all
 * rounds (MAX_HELD_ROUNDS) before `await this.o.resolveModel(...)`, and inserts the round only
 * after it. Every announcement in flight passes both counts against the same, not yet updated,
 * map. In FlService the resolver fetches a model the participant lacks from the announcer itself
 * (`models.resolve(hash, count, [from], …)`), so the announcer chooses how long the window stays
 * open (the fl-announce timeout is 15 s), and reqresp admits 4 concurrent requests per protocol
 * and peer (maxConcurrentPerPeer default), exactly MAX_HELD_ROUNDS. Even the rig's resolver,
 * which answers at once (an async function: one microtask), leaves the window open.
 *
 * Measured today (real FlParticipant of the rig, record-level ledger):
 *  - mallory's 4 announcements sent together: 4 accepted (share 2), then boss's: `busy`;
 *  - mallory and mallory-2 sending 4 each together: 8 rounds held (MAX_HELD_ROUNDS 4).
 * Sent one after another the same 4 give accept, accept, busy-coordinator, busy-coordinator
 * (node/fl/net/coordinator-slots.test.ts), so the share holds only for sequential requests.
 *
 * Run: npm exec -- node --import tsx --test attack/fl-trust3/concurrent-announcements-take-every-slot.attack.ts
 *
 * Fix that would make it pass: reserve the slot before the await (insert a pending entry, or
 * count pending announcements per coordinator and in all, released when resolveModel fails or
 * the announcement is declined), so the counts see every announcement in flight.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { coordinatorShare, MAX_HELD_ROUNDS } from '../../node/fl/net/participant.ts';
import { MAX_DEADLINE_MS } from '../../node/fl/net/wire.ts';
import { announcement, cleanup, coordinatorKeys, participants } from '../../node/testing/fl-round-rig.ts';

after(cleanup);

const at = (k: number) => ({ ...announcement(new Uint8Array(32).fill(k)), deadlineMs: MAX_DEADLINE_MS });

test('one coordinator’s announcements sent together take no more than its share of the slots', async () => {
  const [n] = await participants(1, await coordinatorKeys());
  const p = n!.p;
  const replies = await Promise.all([0, 1, 2, 3].map((k) => p.announce('mallory', at(0x80 + k))));
  const honest = await p.announce('boss', at(1));
  const figures = `mallory: ${replies.map((r) => (r.accept ? 'accept' : r.reason.split(':')[0])).join(', ')}; boss: ${honest.accept ? 'accept' : honest.reason}; held ${p.active}`;
  assert.ok(replies.filter((r) => r.accept).length <= coordinatorShare(MAX_HELD_ROUNDS), figures);
  assert.ok(honest.accept, figures);
});

test('announcements sent together never hold more than MAX_HELD_ROUNDS rounds', async () => {
  const [n] = await participants(1, await coordinatorKeys());
  const p = n!.p;
  const replies = await Promise.all(
    ['mallory', 'mallory-2'].flatMap((who, c) =>
      [0, 1, 2, 3].map((k) => p.announce(who, at(0x40 + 8 * c + k))),
    ),
  );
  const figures = `${replies.filter((r) => r.accept).length} of ${replies.length} accepted; held ${p.active}`;
  assert.ok(p.active <= MAX_HELD_ROUNDS, figures);
});
