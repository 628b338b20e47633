/**
 * Finding (LOW, fixed; liveness of the busy-coordinator share `ef5489b` with the commit rule of
 * `b66ffa7`): after a round that completes, a participant left out at the keys or shares step is
 * told neither fl-commit nor fl-end, so it holds the round's slot until deadline + 60 s; twice in
 * that time and the same honest coordinator's next round is declined `busy-coordinator`.
 *
 * Mechanism. RoundRunner commits a completed round only to participants asked to train
 * (included, or left out at train/unmask: b66ffa7, since a commit of an untrained round is
 * refused) and sends fl-end only when a round fails. A participant that accepted the
 * announcement and whose keys answer was lost (a stream reset, a timeout) is left out at `keys`
 * and keeps the round (participant.ts expire: deadline + ROUND_STATE_GRACE_MS). coordinatorShare
 * lets one coordinator hold 2 of its 4 slots, so two such losses within 2 minutes (deadline 60 s)
 * lock it out of that coordinator's rounds until the first expires.
 *
 * Measured (real RoundRunner, coordinateRound and 5 FlParticipants in process, coordinator
 * `boss` off the roster, update mode; p4's keys answer lost in each round): rounds 1 and 2
 * complete with p0..p3 (4 included); p4 holds 1, 2, 2 rounds after rounds 1, 2, 3; round 3 is
 * declined by p4 as `busy-coordinator` (and completes without it).
 *
 * Fix (this test failed before it): a completed round sends fl-end to every invited participant
 * that gets no commit (round-runner.ts), as a failed round does to all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ModelPayload } from '../../chain/types.ts';
import { linkFrom } from '../../testing/coordinated-link.ts';
import { flIdentities } from '../../testing/fl-identities.ts';
import { offlineRunnerRig, testRunnerPolicy } from '../../testing/round-runner-policy.ts';
import { FlData } from './data.ts';
import { type AnnounceDecline, FlParticipant } from './participant.ts';
import type { FlRoundEvent } from './round-events.ts';
import { modelHeadOf, RoundRunner, type RoundRunnerDeps } from './round-runner.ts';

test('a participant left out at keys of a completed round holds no slot for it', async () => {
  const { store, metrics, log, keys, models } = await offlineRunnerRig('cairn-slots-');
  const ids = flIdentities();
  const declines: AnnounceDecline[] = [];
  const parts = [0, 1, 2, 3, 4].map(
    (k) =>
      new FlParticipant({
        self: `p${k}`,
        data: () => new FlData({ index: k % 3, of: 3, mode: 'iid', seed: 42 }, 42).train(),
        resolveModel: (h, n) => models.resolve(h, n),
        storeModel: (b) => store.putEncoded(b),
        verifySurvivors: keys.verify,
        sign: ids.signer(`p${k}`),
        verifyAdverts: ids.verify,
        ...(k === 4 ? { onDecline: (r: AnnounceDecline) => declines.push(r) } : {}),
      }),
  );
  const victim = parts[4]!;
  const links = parts.map((p, k) => {
    const l = linkFrom('boss', `p${k}`, p);
    // p4's keys answer is lost on the way back: the participant holds the round, the coordinator
    // leaves it out at keys.
    return k === 4
      ? {
          ...l,
          keys: async (req: Parameters<typeof l.keys>[0]) => {
            await l.keys(req);
            throw new Error('stream reset');
          },
        }
      : l;
  });
  let head: ModelPayload | undefined;
  let runner: RoundRunner | undefined;
  const rounds: FlRoundEvent[] = [];
  const held: number[] = [];
  const deps: RoundRunnerDeps = {
    self: 'boss',
    data: new FlData({ index: 0, of: 3, mode: 'iid', seed: 42 }, 42),
    store,
    models,
    modelHead: () => modelHeadOf(head),
    links: () => links,
    commitEntry: async (p) => {
      // Mined a moment later: the next round starts from it.
      setTimeout(() => {
        head = p;
        runner?.headMoved();
      }, 50);
      return 'id';
    },
    sign: keys.sign,
    verifyAdverts: ids.verify,
    ...testRunnerPolicy(),
    emitRound: (e) => {
      rounds.push(e);
      if (e.status !== 'running') held.push(victim.active);
    },
    metrics,
    log,
  };
  runner = new RoundRunner(deps);
  runner.schedule(
    [1, 2, 3].map((k) => new Uint8Array(32).fill(k)),
    { rounds: 3, noiseMultiplier: 0.05 },
  );
  await runner.idle();
  const done = rounds.filter((r) => r.status !== 'running');
  const figures =
    `rounds: ${done.map((r) => `${r.round} ${r.status} (${r.participants.length} included)`).join(', ')}; ` +
    `p4 holds after each: ${held.join(', ')}; p4 declined: ${declines.join(', ') || 'nothing'}`;
  assert.deepEqual(
    done.map((r) => r.status),
    ['completed', 'completed', 'completed'],
    figures,
  );
  assert.deepEqual(held, [0, 0, 0], figures);
  assert.deepEqual(declines, [], figures);
});
