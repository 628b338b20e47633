/**
 * Attack review ATK-11, finding 2 (MEDIUM, fixed): address bans were keyed by the exact IP, so an
 * IPv6 host walked out of them by picking a new address in its /64 for each new identity. They
 * now count by `capKey` (an IPv6 /64, as the per-IP cap and address-refusals.ts do). This failed
 * before: after bans from 2001:db8:1:2::1 and ::2, a connection from ::3 was admitted.
 *
 * Run on the real gate classes, not a node process: on loopback it would need a second IPv6
 * address on `lo`, and all of 127.0.0.0/8 is one host to `capKey` and exempt by default.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { multiaddr } from '@multiformats/multiaddr';
import { AddressBans } from './address-bans.ts';
import { ConnectionLimits } from './connection-limits.ts';

const now = 1_000_000;

test('two bans from one IPv6 /64 refuse the rest of the /64', () => {
  const bans = new AddressBans({ threshold: 2 });
  const limits = new ConnectionLimits({ addressBans: bans, now: () => now });
  // What PeerManager.penalise records for two banned identities, each from a fresh address.
  bans.record('2001:db8:1:2::1', now);
  bans.record('2001:db8:1:2::2', now);
  const third = multiaddr('/ip6/2001:db8:1:2::3/tcp/4001');
  const refusal = limits.check(third);
  assert.equal(
    refusal,
    'address-banned',
    `a third identity from the same /64 is ${refusal ?? 'admitted'} (ban weights: ` +
      `::1 ${bans.weight('2001:db8:1:2::1', now)}, ::3 ${bans.weight('2001:db8:1:2::3', now)})`,
  );
});
