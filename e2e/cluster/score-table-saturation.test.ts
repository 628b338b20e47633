/**
 * Attack review ATK-11, finding 1 (HIGH in open mode, fixed): a score table full of bans made every
 * later peer unbannable. `PeerScores` is bounded (`--max-scored-peers`) and, so that strangers
 * scored cannot lift a ban, never evicted an active one: when the table held only bans, a
 * newcomer's record was dropped after each call, so its ban verdict was forgotten at once. In
 * open mode a peer id costs a key generation and a ban one message (a status of another chain
 * is `fatal`), so an attacker filled the table with throwaway bans and was then never banned.
 * Now bans live in their own store apart from the scores (peer-scores.ts, `--max-banned-peers`,
 * sized so a flood cannot fill it within one ban), so a peer that earns a ban is remembered and
 * none is forgotten for it; strangers merely penalised cannot push a ban out.
 *
 * Scaled down: the victim runs with `--max-scored-peers 16` (its minimum), so 16 throwaway bans
 * fill it (13.3 s in the review, 829 ms each). Failed before the fix: the 17th identity, penalised
 * fatally, was not listed as banned and its redial and status were answered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { STATUS } from '../../node/p2p/protocols.ts';
import { banTableRig, TABLE } from './ban-table-rig.ts';
import { counters } from './byzantine-watch.ts';

test('after the score table fills with bans, a peer that earns a ban is still banned', {
  timeout: 120_000,
}, async (t) => {
  const { honest, wrongChain, victim, watch, throwaway } = await banTableRig(t, 'cairn-attack11-table-');

  const t0 = performance.now();
  for (let i = 0; i < TABLE; i++) await throwaway(`sybil${i}`);
  const perBanMs = (performance.now() - t0) / TABLE;
  const listed = (await victim.status()).banned.length;
  t.diagnostic(
    `${TABLE} throwaway bans in ${(perBanMs * TABLE).toFixed(0)} ms (${perBanMs.toFixed(0)} ms each); ${listed} listed`,
  );
  assert.equal(listed, TABLE, 'the throwaway bans fill the table');

  // The real attacker, after the table is full.
  const before = await counters(victim);
  const mallory = await throwaway('mallory');
  const afterFirst = await counters(victim);
  // It comes straight back under the same id and lies again.
  await sleep(300);
  const redial = await mallory.dial(victim).then(
    () => 'connected',
    (e: Error) => e.message,
  );
  const answer = await mallory.request(victim, STATUS, honest).then(
    () => 'answered',
    (e: Error) => e.message,
  );
  await mallory.request(victim, STATUS, wrongChain).catch(() => {});
  await sleep(500);
  const after = await counters(victim);
  const banned = (await victim.status()).banned.map((b) => b.peer);
  const malloryPenalties = watch.penaltiesOf(mallory).map((p) => [p.action, p.score, p.verdict]);
  t.diagnostic(
    `mallory: redial ${redial}, status ${answer}; penalties ${JSON.stringify(malloryPenalties)}; ` +
      `bans counted ${after.bans - before.bans} (first ${afterFirst.bans - before.bans}); listed ${banned.includes(mallory.peerId)}`,
  );
  assert.ok(banned.includes(mallory.peerId), 'mallory, penalised fatally, is listed as banned');
  assert.notEqual(answer, 'answered', "mallory's status after its ban is not answered");
  assert.equal(after.bans - before.bans, 1, 'one ban counted for one banned peer');
  assert.equal(banned.length, TABLE + 1, 'bans have their own store: none was forgotten for the new one');
  assert.equal(await victim.metric('cairn_peer_bans_unrecorded_total'), 0, 'every ban verdict recorded');
});
