import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import pino from 'pino';
import { Registry } from 'prom-client';
import { RELAY_DEFAULTS } from '../options.ts';
import {
  configuredRelaysFilter,
  connectionKind,
  countKinds,
  createRelayMetrics,
  relayGater,
  relayPeerId,
  relayServerInit,
} from './relay.ts';
import { webrtcAddrOf } from './relay-upgrade.ts';

const peer = async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
const R = '12D3KooWRJbbqG7rVhZDN6DbyB9U5hXoM9Vdq1x6jyNyEDTwK6Xn';
const B = '12D3KooWPzMqTfRp9PYtu5yHJbFHPC6tDTAhKDQW9hnVMZpS9KbW';

test('connection kinds from remote addresses', () => {
  assert.equal(connectionKind(`/ip4/127.0.0.1/tcp/4001/p2p/${B}`), 'tcp');
  assert.equal(
    connectionKind(
      '/ip4/127.0.0.1/udp/4001/webrtc-direct/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ',
    ),
    'webrtc-direct',
  );
  assert.equal(connectionKind(`/ip4/100.64.0.10/tcp/4001/p2p/${R}/p2p-circuit/p2p/${B}`), 'relayed');
  assert.equal(
    connectionKind(`/ip4/100.64.0.10/tcp/4001/p2p/${R}/p2p-circuit/webrtc/p2p/${B}`),
    'webrtc-via-relay',
  );
  assert.equal(connectionKind('/ip4/127.0.0.1/udp/4001/quic-v1'), 'other');
  const kinds = countKinds([
    { remoteAddr: multiaddr('/ip4/127.0.0.1/tcp/1') },
    { remoteAddr: multiaddr(`/ip4/100.64.0.10/tcp/4001/p2p/${R}/p2p-circuit/p2p/${B}`) },
  ]);
  assert.deepEqual(kinds, { tcp: 1, 'webrtc-direct': 0, relayed: 1, 'webrtc-via-relay': 0, other: 0 });
});

test('the WebRTC address of a relayed peer goes through the same relay', () => {
  const relayed = multiaddr(`/ip4/100.64.0.10/tcp/4001/p2p/${R}/p2p-circuit/p2p/${B}`);
  assert.equal(
    webrtcAddrOf(relayed, B).toString(),
    `/ip4/100.64.0.10/tcp/4001/p2p/${R}/p2p-circuit/webrtc/p2p/${B}`,
  );
  assert.throws(() => webrtcAddrOf(multiaddr('/ip4/127.0.0.1/tcp/1'), B), /not a relayed address/);
  assert.equal(relayPeerId(`/ip4/100.64.0.10/tcp/4001/p2p/${R}`), R);
  assert.throws(() => relayPeerId('/ip4/100.64.0.10/tcp/4001'), /needs \/p2p/);
});

test('relay limits: none per connection by default (members), libp2p limits once configured', () => {
  const d = relayServerInit();
  assert.equal(d.reservations?.applyDefaultLimit, false);
  assert.equal(d.reservations?.maxReservations, RELAY_DEFAULTS.maxReservations);
  const l = relayServerInit({ durationLimitMs: 60_000, dataLimitBytes: 1 << 20 });
  assert.equal(l.reservations?.applyDefaultLimit, true);
  assert.equal(l.reservations?.defaultDurationLimit, 60_000);
  assert.equal(l.reservations?.defaultDataLimit, 1n << 20n);
});

test('the relay gater serves members only, counts and charges each refusal', async () => {
  const [member, stranger, other] = await Promise.all([peer(), peer(), peer()]);
  const registry = new Registry();
  const metrics = createRelayMetrics(registry);
  const charged: string[] = [];
  const g = relayGater({
    isMember: async (p) => p.equals(member) || p.equals(other),
    metrics,
    penalise: (p, action) =>
      charged.push(`${p.toString() === stranger.toString() ? 'stranger' : 'member'}:${action}`),
    log: pino({ level: 'silent' }),
  });
  assert.equal(await g.denyInboundRelayReservation(member), false);
  assert.equal(await g.denyInboundRelayReservation(stranger), true);
  assert.equal(await g.denyOutboundRelayedConnection(member, other), false);
  assert.equal(await g.denyOutboundRelayedConnection(stranger, member), true);
  // A member asking for a stranger is refused; the member who asked is charged.
  assert.equal(await g.denyOutboundRelayedConnection(member, stranger), true);
  const counts = Object.fromEntries(
    (await metrics.refusals.get()).values.map((v) => [v.labels.reason as string, v.value]),
  );
  assert.deepEqual(counts, {
    'reservation-not-member': 1,
    'relay-source-not-member': 1,
    'relay-target-not-member': 1,
  });
  assert.deepEqual(charged, ['stranger:low-tolerance', 'stranger:low-tolerance', 'member:low-tolerance']);
});

test('discovery reserves on configured relays only, once per connection', async () => {
  const [relay, other] = await Promise.all([peer(), peer()]);
  const f = configuredRelaysFilter(new Set([relay.toString()]));
  assert.equal(f.has(other), true, 'a relay not configured is never offered');
  assert.equal(f.has(relay), false);
  f.add(relay);
  assert.equal(f.has(relay), true);
  f.remove(relay);
  assert.equal(f.has(relay), false, 'offered again after a reconnect');
});
