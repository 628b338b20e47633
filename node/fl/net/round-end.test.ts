/**
 * A failed round is ended on its participants at once (`fl-end`): before, every participant that
 * got past the announcement held the round's state until its deadline + 60 s, so a few failed
 * rounds in a row (issue 16, finding 4) left honest nodes declining the next ones as `busy`.
 * The real round runner and participants, linked in process; one puts its update out of range.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import { flIdentities } from '../../testing/fl-identities.ts';
import { offlineRunnerRig, testRunnerPolicy } from '../../testing/round-runner-policy.ts';
import { FlData } from './data.ts';
import { localLink } from './links.ts';
import { FlParticipant } from './participant.ts';
import type { FlRoundEvent } from './round-events.ts';
import { RoundRunner } from './round-runner.ts';

/** Identity keys the participants sign their key adverts with (by name). */
const ids = flIdentities();

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

test('a round that fails at the range check is forgotten by every participant at once', async () => {
  const { dir, store, metrics, log, keys, models } = await offlineRunnerRig('cairn-round-end-');
  dirs.push(dir);
  const parts = [0, 1, 2].map(
    (k) =>
      new FlParticipant({
        self: `p${k}`,
        sign: ids.signer(`p${k}`),
        verifyAdverts: ids.verify,
        data: () => new FlData({ index: k, of: 3, mode: 'iid', seed: 42 }, 42).train(),
        resolveModel: (h, n) => models.resolve(h, n),
        storeModel: (b) => store.putEncoded(b),
        verifySurvivors: keys.verify,
        ...(k === 1 ? { misbehave: 'out-of-range' as const } : {}),
      }),
  );
  const rounds: FlRoundEvent[] = [];
  const runner = new RoundRunner({
    self: 'p0',
    verifyAdverts: ids.verify,
    data: new FlData({ index: 0, of: 3, mode: 'iid', seed: 42 }, 42),
    store,
    models,
    modelHead: () => undefined,
    links: () => parts.map((p, k) => localLink(`p${k}`, p)),
    commitEntry: async () => 'id',
    sign: keys.sign,
    ...testRunnerPolicy(),
    emitRound: (e) => rounds.push(e),
    metrics,
    log,
  });
  runner.schedule([new Uint8Array(32).fill(8)], { rounds: 1, noiseMultiplier: 0.05 });
  await runner.idle();
  assert.equal(rounds.at(-1)!.status, 'failed');
  assert.match(rounds.at(-1)!.error!, /aggregate out of range/);
  // The notices are not awaited by the runner; in process they land within a turn.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(
    parts.map((p) => p.active),
    [0, 0, 0],
    'each would hold it for deadline + 60 s',
  );
});
