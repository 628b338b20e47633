/**
 * Finding 2 (MEDIUM): address bans are keyed by the exact IP, so an IPv6 host walks out of them.
 *
 * A banned peer comes back under a new peer id (free in open mode); what stops it is the address
 * ban (`AddressBans`, `--address-ban-threshold` 2: the second ban from one address refuses the
 * address for ~30 min). The per-IP connection cap counts an IPv6 host by its /64 (`capKey`:
 * "a host usually owns a whole /64 and can pick any address in it"), but `PeerManager.penalise`
 * records bans under `remoteIp()`, the exact address, and `ConnectionLimits.check` asks
 * `AddressBans.isBanned(ip)` with the exact address too. An attacker on one residential /64
 * (2^64 addresses) gives each new identity a new source address: no address ever collects two
 * bans, the address ban never triggers, and with finding 1 (score-table-saturation.attack.ts)
 * it needs no more than `maxScoredPeers` throwaway bans to make itself unbannable. (Checked and
 * held: rotating through 1,024 more addresses does not evict a live address ban from the bounded
 * table; the newcomer, at weight 1, is the weakest entry and is pruned itself.)
 *
 * Run on the real gate classes, not a node process: reproducing it on loopback needs a second
 * IPv6 address on `lo` (root, changing the shared host's interfaces), and all of 127.0.0.0/8 is
 * one host to `capKey` and exempt by default.
 *
 *   npm exec -- node --test attack/sync/ipv6-address-rotation.attack.ts
 *
 * Fails today: after bans from 2001:db8:1:2::1 and ::2, a connection from ::3 of the same /64 is
 * admitted (the ban weight of ::3 is 0). Passes when address bans are recorded and looked up by
 * `capKey` (an IPv6 /64, as the per-IP cap and address-refusals.ts already are).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { multiaddr } from '@multiformats/multiaddr';
import { AddressBans } from '../../node/p2p/address-bans.ts';
import { ConnectionLimits } from '../../node/p2p/connection-limits.ts';

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
