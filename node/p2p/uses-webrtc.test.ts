import assert from 'node:assert/strict';
import { test } from 'node:test';
import { usesWebrtc } from './host.ts';

const tcp = '/ip4/127.0.0.1/tcp/0';
const base = { listen: [tcp], bootstrap: [] as string[] };

test('WebRTC loads only where an address, a relay, an ICE server or the caller asks for it', () => {
  assert.equal(usesWebrtc(base), false, 'a TCP-only node on a LAN');
  assert.equal(usesWebrtc({ ...base, listen: [tcp, '/ip4/127.0.0.1/udp/0/webrtc-direct'] }), true);
  assert.equal(usesWebrtc({ ...base, listen: [tcp, '/webrtc'] }), true);
  assert.equal(
    usesWebrtc({ ...base, bootstrap: ['/ip4/10.0.0.2/udp/4002/webrtc-direct/certhash/uEi/p2p/12D3KooW'] }),
    true,
    'a bootstrap peer reachable over WebRTC only',
  );
  assert.equal(usesWebrtc({ ...base, relays: ['/ip4/10.0.0.1/tcp/4001/p2p/12D3KooW'] }), true);
  assert.equal(usesWebrtc({ ...base, iceServers: ['stun:10.0.0.1:3478'] }), true);
  assert.equal(usesWebrtc({ ...base, webrtc: true }), true, 'forced on (a joining device, a test stranger)');
  assert.equal(usesWebrtc({ ...base, listen: [tcp, '/webrtc'], webrtc: false }), false, 'forced off');
});
