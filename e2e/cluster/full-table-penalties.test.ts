/**
 * ATK review of #11 (ban kept when the score table is full), finding (HIGH in open mode, fixed):
 * the fix kept a newcomer's record over a table full of bans only when that one call earned a
 * ban (`fatal`). Every other penalty of a newcomer was applied to a fresh record at 0 and then
 * dropped, so nothing added up: a peer that keeps sending clearly invalid data (`low-tolerance`,
 * −10 each: disconnected at −20, banned at −50) was back at 0 after every offence, never
 * disconnected, never banned, for as long as throwaway bans (16 here, one status each) filled
 * the table. Now bans live in their own store (peer-scores.ts), so the score table never fills
 * with bans and every newcomer's penalties add up.
 *
 * Rig: as score-table-saturation.test.ts: a real node process with `--max-scored-peers 16`,
 * 16 throwaway identities banned for a wrong-chain status, then mallory sends 6 well-framed
 * random-byte blocks-by-range requests (each penalised `low-tolerance`, as in byzantine.test.ts
 * step 4). Failed before the fix (23 s): every one of mallory's 6 penalties was logged at score
 * 0 with verdict ok, it stayed connected and was never listed banned.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { banTableRig, TABLE } from './ban-table-rig.ts';

const OFFENCES = 6;

test('over a score table full of bans, repeated low-tolerance offences still add up to a ban', {
  timeout: 120_000,
}, async (t) => {
  const { victim, watch, attacker, throwaway } = await banTableRig(t, 'cairn-atk-fulltable-');

  for (let i = 0; i < TABLE; i++) await throwaway(`sybil${i}`);
  assert.equal((await victim.status()).banned.length, TABLE, 'the throwaway bans fill the table');

  const mallory = await attacker('mallory');
  const outcomes: string[] = [];
  for (let i = 0; i < OFFENCES; i++) {
    const since = watch.penalties.length;
    const dialed = await mallory.dial(victim).then(
      () => true,
      () => false,
    );
    if (!dialed) {
      outcomes.push('refused');
      continue;
    }
    const noise = randomBytes(9);
    noise[0] = 0x42;
    await mallory.rawRequest(victim, 'blocks-by-range', Uint8Array.from([noise.length, ...noise]));
    const p = await watch.waitPenalty(mallory, /^blocks-by-range: /, since, 5_000).catch(() => undefined);
    outcomes.push(p ? `${p.action} ${p.score} ${p.verdict}` : 'no penalty');
    await sleep(200);
  }
  await sleep(500);
  const banned = (await victim.status()).banned.map((b) => b.peer);
  t.diagnostic(
    `mallory's ${OFFENCES} offences: ${JSON.stringify(outcomes)}; listed banned ${banned.includes(mallory.peerId)}; ` +
      `still connected ${mallory.isConnected(victim)}`,
  );
  const scores = watch.penaltiesOf(mallory).map((p) => p.score);
  assert.ok(
    Math.min(0, ...scores) <= -20,
    `mallory's penalties never added up: scores ${JSON.stringify(scores)}`,
  );
  assert.ok(banned.includes(mallory.peerId), `mallory, penalised ${OFFENCES} times low-tolerance, is banned`);
});
