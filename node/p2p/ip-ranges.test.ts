import assert from 'node:assert/strict';
import { test } from 'node:test';
import { multiaddr } from '@multiformats/multiaddr';
import { ipOf } from './admission-wire.ts';
import { remoteIp } from './connection-limits.ts';
import { capKey, ipRanges, plainIp } from './ip-ranges.ts';

test('IPv4-mapped IPv6 addresses are plain IPv4 hosts, each its own', () => {
  assert.equal(plainIp('::ffff:203.0.113.5'), '203.0.113.5');
  assert.equal(plainIp('::FFFF:198.51.100.9'), '198.51.100.9');
  assert.equal(plainIp('::ffff:cb00:7105'), '203.0.113.5', 'hex form');
  assert.equal(plainIp('0:0:0:0:0:ffff:cb00:7105'), '203.0.113.5', 'uncompressed');
  assert.equal(capKey('::ffff:203.0.113.5'), '203.0.113.5');
  assert.notEqual(capKey('::ffff:203.0.113.5'), capKey('::ffff:198.51.100.9'), 'not one /64 for all of IPv4');
  // Not mapped: left alone.
  assert.equal(plainIp('2001:db8::1'), '2001:db8::1');
  assert.equal(plainIp('::1'), '::1');
  assert.equal(plainIp('64:ff9b::cb00:7105'), '64:ff9b::cb00:7105', 'NAT64 is a v6 host');
  assert.equal(plainIp('192.0.2.1'), '192.0.2.1');
  assert.equal(capKey('2001:db8:1:2::ffff:1'), '2001:db8:1:2::/64');
});

test('connection addresses are read as plain IPv4 when mapped, so IPv4 ranges and bans match', () => {
  const ma = multiaddr('/ip6/::ffff:203.0.113.5/tcp/4001');
  assert.equal(ipOf(ma), '203.0.113.5');
  assert.equal(remoteIp(ma), '203.0.113.5');
  assert.equal(ipOf(multiaddr('/ip6/2001:db8::7/tcp/1')), '2001:db8::7');
  assert.equal(ipRanges(['127.0.0.0/8'])(plainIp('::ffff:127.0.0.1')), true, 'mapped loopback is exempt');
});
