/**
 * ATK review of #11 (ban kept when the score table is full), finding (LOW at the default table
 * size, fixed): a new ban over a table full of bans took the place of the ban ending soonest,
 * and every ban lasts banMs, so that was the oldest: a banned peer's friends laundered its ban
 * by earning `--max-scored-peers` more throwaway bans (one key and one wrong-chain status each).
 * Failed before the fix (34 s): 16 more throwaway bans in 11.5 s, 12 s into mallory's 1,800 s
 * ban, mallory was no longer listed, its redial connected and its status was answered.
 *
 * Now bans have their own store (peer-scores.ts, `--max-banned-peers`, 16,384 by default: 30 min
 * of bans at the 5 connections a second libp2p takes from one host) and none is forgotten before
 * its end; a ban the full store cannot hold bans the peer's address instead (peer-manager.ts).
 * Here the victim runs with `--max-scored-peers 16`: 33 bans, all kept.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { STATUS } from '../../node/p2p/protocols.ts';
import { banTableRig, TABLE } from './ban-table-rig.ts';

test('throwaway bans cannot push a real ban out of a full score table before it ends', {
  timeout: 120_000,
}, async (t) => {
  const { honest, victim, throwaway } = await banTableRig(t, 'cairn-atk-launder-');

  const t0 = performance.now();
  for (let i = 0; i < TABLE; i++) await throwaway(`sybil${i}`);
  const perBanMs = (performance.now() - t0) / TABLE;
  const listed = (await victim.status()).banned.length;
  t.diagnostic(
    `${TABLE} throwaway bans in ${(perBanMs * TABLE).toFixed(0)} ms (${perBanMs.toFixed(0)} ms each); ${listed} listed`,
  );
  assert.equal(listed, TABLE, 'the throwaway bans fill the table');

  // Mallory earns its ban over the full table: kept, in place of the ban ending soonest.
  const mallory = await throwaway('mallory');
  assert.ok(
    (await victim.status()).banned.some((b) => b.peer === mallory.peerId),
    'mallory is banned',
  );
  const bannedAt = Date.now();
  // Its friends then earn TABLE more throwaway bans: each takes the place of the ban ending
  // soonest, and the table's bans all last banMs, so mallory's is the TABLE-th to go.
  const t1 = performance.now();
  for (let i = 0; i < TABLE; i++) await throwaway(`launder${i}`);
  const launderMs = performance.now() - t1;
  await sleep(300);
  const stillBanned = (await victim.status()).banned.some((b) => b.peer === mallory.peerId);
  const redial = await mallory.dial(victim).then(
    () => 'connected',
    (e: Error) => e.message.slice(0, 80),
  );
  const answer = await mallory.request(victim, STATUS, honest).then(
    () => 'answered',
    (e: Error) => e.message.slice(0, 80),
  );
  const unrecorded = await victim.metric('cairn_peer_bans_unrecorded_total');
  t.diagnostic(
    `${TABLE} more throwaway bans in ${launderMs.toFixed(0)} ms, ${((Date.now() - bannedAt) / 1000).toFixed(1)} s into mallory's ` +
      `${(30 * 60).toFixed(0)} s ban: mallory still listed ${stillBanned}, redial ${redial}, status ${answer}; bans unrecorded ${unrecorded}`,
  );
  assert.ok(stillBanned, "mallory's ban was forgotten long before its end");
  assert.equal(unrecorded, 0, 'the ban store held every ban');
  assert.notEqual(answer, 'answered', "mallory's status during its ban is not answered");
});
