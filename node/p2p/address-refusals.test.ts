/**
 * The address-refusal rule (address-refusals.ts): one host is an IPv4 address or an IPv6 /64,
 * exempt ranges (loopback by default, bootstrap addresses the node adds) are never banned, and a
 * ban refuses only keys that never passed the handshake.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressRefusals } from './address-refusals.ts';
import { addressRanges } from './ip-ranges.ts';

const member = 'a'.repeat(64);
const stranger = 'b'.repeat(64);

test('IPv6 refusals count per /64; IPv4 per address, never per /24', () => {
  const r = new AddressRefusals({ banAt: 2, exempt: [] });
  r.refused('2001:db8:1:2::a', 0);
  assert.equal(r.refused('2001:db8:1:2:ffff::b', 0), true, 'another address in the same /64');
  assert.ok(r.isBanned('2001:db8:1:2::1234', 1));
  assert.equal(r.isBanned('2001:db8:1:3::a', 1), false, 'another /64');
  r.refused('192.168.1.50', 0);
  assert.equal(r.refused('192.168.1.50', 0), true);
  assert.equal(r.isBanned('192.168.1.51', 1), false, 'a neighbour on the LAN is not banned');
});

test('loopback is exempt by default, so one stranger on 127.0.0.1 locks out no one', () => {
  const r = new AddressRefusals({ banAt: 2 });
  for (let i = 0; i < 50; i++) assert.equal(r.refused('127.0.0.1', i), false);
  assert.equal(r.refuses('127.0.0.1', stranger, 50), false);
  assert.equal(r.refused('::1', 0), false);
  assert.equal(r.size, 0, 'exempt hosts take no table slot');
});

test('configured bootstrap addresses are never banned', () => {
  const exempt = addressRanges([
    '/ip4/192.0.2.7/tcp/4001/p2p/12D3Koo',
    '/ip6/2001:db8::7/udp/1/webrtc-direct',
  ]);
  assert.deepEqual(exempt, ['192.0.2.7/32', '2001:db8::7/128']);
  assert.deepEqual(addressRanges(['/dns4/hub.local/tcp/4001']), [], 'names are not addresses');
  const r = new AddressRefusals({ banAt: 1, exempt });
  assert.equal(r.refused('192.0.2.7', 0), false);
  assert.equal(r.isBanned('192.0.2.7', 0), false);
  assert.equal(r.refused('192.0.2.8', 0), true, 'its neighbour is not exempt');
});

test('a ban refuses unauthenticated attempts only, never a key that passed the handshake', () => {
  const r = new AddressRefusals({ banAt: 3, exempt: [], maxAdmittedKeys: 2 });
  r.admitted(member);
  for (let i = 0; i < 3; i++) r.refused('10.0.0.1', 0);
  assert.equal(r.refuses('10.0.0.1', stranger, 1), true);
  assert.equal(r.refuses('10.0.0.1', undefined, 1), true);
  assert.equal(r.refuses('10.0.0.1', member, 1), false, 'an admitted key from a banned host');
  // The memory is bounded: the least recently admitted key goes first.
  r.admitted('c'.repeat(64));
  r.admitted('d'.repeat(64));
  assert.equal(r.refuses('10.0.0.1', member, 1), true);
});

test('IPv4 clients of a dual-stack listener (IPv4-mapped IPv6) are banned one host at a time', () => {
  const r = new AddressRefusals({ exempt: [] });
  for (let i = 0; i < r.banAt; i++) r.refused('::ffff:203.0.113.5', 1000);
  assert.equal(r.refuses('::ffff:203.0.113.5', undefined, 1000), true);
  assert.equal(r.refuses('203.0.113.5', undefined, 1000), true, 'the same host, written as IPv4');
  assert.equal(r.refuses('::ffff:198.51.100.9', undefined, 1000), false, 'another IPv4 client is not');
});

test('a full table forgets hosts that are not banned before a ban', () => {
  const r = new AddressRefusals({ exempt: [], maxAddresses: 64 });
  for (let i = 0; i < r.banAt; i++) r.refused('2001:db8:1:1::1', 1000);
  assert.equal(r.refuses('2001:db8:1:1::2', undefined, 1000), true);
  // One refusal each from many other /64s, many times the table's size.
  for (let i = 0; i < 64 * 10; i++) r.refused(`2001:db8:2:${i.toString(16)}::1`, 1001);
  assert.equal(r.size, 64);
  assert.equal(r.refuses('2001:db8:1:1::2', undefined, 1002), true, 'the ban survived the flood');
  // Only bans left: the least recently refused goes then.
  const full = new AddressRefusals({ exempt: [], maxAddresses: 2 });
  for (const host of ['192.0.2.1', '192.0.2.2', '192.0.2.3'])
    for (let i = 0; i < full.banAt; i++) full.refused(host, 1000);
  assert.equal(full.size, 2);
  assert.equal(full.isBanned('192.0.2.1', 1000), false);
  assert.equal(full.isBanned('192.0.2.3', 1000), true);
});
