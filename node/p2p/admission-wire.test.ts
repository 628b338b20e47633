import assert from 'node:assert/strict';
import { test } from 'node:test';
import { multiaddr } from '@multiformats/multiaddr';
import { AddressRefusals } from './address-refusals.ts';
import { decodeAnswer, encodeAnswer, ipOf, refusalSeverity, transportOf } from './admission-wire.ts';

test('admission answers round-trip; anything else is refused as garbled', () => {
  const cert = new Uint8Array([9, 8, 7]);
  assert.deepEqual(decodeAnswer(encodeAnswer({ ok: true, certificate: cert })), {
    ok: true,
    certificate: cert,
  });
  assert.deepEqual(decodeAnswer(encodeAnswer({ ok: true, certificate: undefined })), {
    ok: true,
    certificate: undefined,
  });
  assert.deepEqual(decodeAnswer(encodeAnswer({ ok: false, code: 'expired' })), {
    ok: false,
    code: 'expired',
  });
  // A refusal code is cut to 64 bytes when written, and a longer one is not accepted when read.
  assert.equal(encodeAnswer({ ok: false, code: 'x'.repeat(500) }).length, 65);
  assert.throws(() => decodeAnswer(new Uint8Array([1, ...new Uint8Array(65).fill(65)])));
  assert.throws(() => decodeAnswer(new Uint8Array(0)));
  assert.throws(() => decodeAnswer(new Uint8Array([7, 1, 2])));
  // A stranger's refusal text cannot put control characters into our logs.
  assert.deepEqual(decodeAnswer(new Uint8Array([1, 0x65, 0x0a, 0x1b])), { ok: false, code: 'e??' });
});

test('transport and address of a remote multiaddr', () => {
  assert.equal(transportOf('/ip4/127.0.0.1/tcp/4001'), 'tcp');
  assert.equal(transportOf('/ip4/127.0.0.1/udp/4001/webrtc-direct/certhash/uEiA'), 'webrtc-direct');
  assert.equal(transportOf('/ip4/127.0.0.1/udp/4001/quic-v1'), 'other');
  assert.equal(ipOf(multiaddr('/ip4/10.1.2.3/tcp/1')), '10.1.2.3');
  assert.equal(ipOf(multiaddr('/ip6/::1/tcp/1')), '::1');
  assert.equal(ipOf(multiaddr('/dns4/example.org/tcp/1')), undefined);
});

test('forgeries and revoked keys are banned at once; late or early devices are not', () => {
  for (const c of ['revoked', 'bad-signature', 'wrong-subject', 'wrong-network'] as const)
    assert.equal(refusalSeverity(c), 'fatal', c);
  for (const c of [
    'no-certificate',
    'expired',
    'not-yet-valid',
    'unknown-issuer',
    'handshake-timeout',
  ] as const)
    assert.equal(refusalSeverity(c), 'low-tolerance', c);
});

test('address bans: refusals decay, pile up to a ban that ends, and the table is bounded', () => {
  const bans = new AddressRefusals({ banAt: 3, halfLifeMs: 1000, banMs: 5000, maxAddresses: 2 });
  assert.equal(bans.refused('1.1.1.1', 0), false);
  assert.equal(bans.refused('1.1.1.1', 0), false);
  // Two half-lives later the two refusals count as 0.5: a third does not ban.
  assert.equal(bans.refused('1.1.1.1', 2000), false);
  assert.ok(Math.abs(bans.count('1.1.1.1', 2000) - 1.5) < 1e-9);
  assert.equal(bans.refused('1.1.1.1', 2000), false);
  assert.equal(bans.refused('1.1.1.1', 2000), true);
  assert.equal(bans.isBanned('1.1.1.1', 6999), true);
  assert.equal(bans.isBanned('1.1.1.1', 7000), false);
  assert.equal(bans.isBanned('2.2.2.2', 0), false);
  bans.refused('2.2.2.2', 10);
  bans.refused('3.3.3.3', 20);
  // The least recently refused address that is not banned went first; the ban stays.
  assert.equal(bans.size, 2);
  assert.equal(bans.count('2.2.2.2', 20), 0);
  assert.equal(bans.isBanned('1.1.1.1', 20), true);
  assert.ok(bans.count('3.3.3.3', 20) > 0);
  // Its ban over, 1.1.1.1 is the least recently refused, and goes.
  bans.refused('4.4.4.4', 8000);
  assert.equal(bans.size, 2);
  assert.equal(bans.count('1.1.1.1', 8000), 0);
  assert.ok(bans.count('3.3.3.3', 8000) > 0);
});

test('a relayed connection charges no address: its only IP is the relay’s', () => {
  assert.equal(
    ipOf(
      multiaddr(
        '/ip4/198.51.100.20/tcp/4001/p2p/12D3KooWSjyzTaqMqg1s3NRkQisyyRpMP7q4QpEmV8ysDkjb1g45/p2p-circuit',
      ),
    ),
    undefined,
  );
  assert.equal(ipOf(multiaddr('/ip4/198.51.100.20/tcp/4001')), '198.51.100.20');
  assert.equal(ipOf(multiaddr('/ip6/::ffff:198.51.100.20/tcp/4001')), '198.51.100.20');
});
