/**
 * Member relays across real node processes on loopback (issue 15, deliverables 1–3):
 *  - a relay member (the `relay` capability) reserves slots for members with `--relay`;
 *  - a member that listens only on `/p2p-circuit` + `/webrtc` (no TCP) is reached through the
 *    relay, the dialer upgrades to private-to-private WebRTC, the relayed connection is closed,
 *    and /status shows the kind (`webrtc-via-relay`);
 *  - a non-member holds no reservation and is reached by nobody through the relay;
 *  - a node starts while its relay is down, and after the relay restarts every reservation
 *    comes back within 60 s with no operator action (the watchdog; js-libp2p #3601).
 * The NAT matrix (namespaces, nftables, coturn) is e2e/cluster/nat.test.ts's job.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster, type ClusterNode } from './harness.ts';

const BLOCK_MS = 2_000;

const reserved = async (n: ClusterNode) => {
  const s = await n.status();
  return s.relays.length > 0 && s.relays.every((r) => r.reserved);
};
const kindsTo = async (n: ClusterNode, peerId: string) =>
  (await n.status()).peers.find((p) => p.peerId === peerId)?.kinds ?? [];

test('member relays: reservations, WebRTC upgrade, members only, relay restart', {
  timeout: 240_000,
}, async (t) => {
  const cluster = new Cluster({ network: { blockTimeMs: BLOCK_MS }, roster: { size: 4 } });
  t.diagnostic(`run dir ${cluster.runDir} (removed if the test passes)`);
  let passed = false;
  try {
    const relay = await cluster.addNode({ name: 'relay', mine: true });
    const relayAddr = relay.addrsOf('tcp')[0]!;
    assert.ok(relayAddr, relay.addrs.join(' '));
    const viaRelay = ['--relay', relayAddr];
    const bob = await cluster.addNode({
      name: 'bob',
      listen: ['/p2p-circuit'],
      bootstrap: [relayAddr],
      args: viaRelay,
    });
    await cluster.waitFor(() => reserved(bob), {
      timeoutMs: 20_000,
      description: 'bob to hold a reservation',
      nodes: ['bob'],
    });
    // Neither has a TCP listener: the relay is the only way between them.
    const alice = await cluster.addNode({
      name: 'alice',
      listen: ['/p2p-circuit'],
      bootstrap: [relayAddr, `${relayAddr}/p2p-circuit/p2p/${bob.peerId}`],
      args: viaRelay,
      logLevel: 'debug',
    });
    const t0 = Date.now();

    await t.test(
      'alice reaches bob through the relay and upgrades to WebRTC; the relayed one closes',
      async () => {
        await cluster.waitFor(
          async () => {
            const kinds = await kindsTo(alice, bob.peerId);
            return kinds.includes('webrtc-via-relay') && !kinds.includes('relayed');
          },
          {
            timeoutMs: 30_000,
            description: 'alice↔bob over WebRTC, relayed connection closed',
            nodes: ['alice'],
          },
        );
        t.diagnostic(`alice ready → direct WebRTC to bob: ${Date.now() - t0} ms`);
        assert.deepEqual(await kindsTo(bob, alice.peerId), ['webrtc-via-relay']);
        // Either end may have dialled first (bob learns alice's relay address from identify).
        const upgraded = async (n: ClusterNode) =>
          (await n.metric('cairn_relay_upgrades_total', { outcome: 'direct' })) ?? 0;
        assert.ok((await upgraded(alice)) + (await upgraded(bob)) >= 1, 'an upgrade counted');
        assert.equal(await alice.metric('cairn_connections', { kind: 'webrtc-via-relay' }), 1);
        await cluster.waitForConverged({
          minHeight: 3,
          timeoutMs: 60_000,
          description: 'one chain on all three',
        });
      },
    );

    await t.test('a non-member gets no reservation and cannot be reached through the relay', async () => {
      const stranger = await cluster.addNode({
        name: 'stranger',
        member: false,
        networkConfig: undefined,
        bootstrap: [relayAddr],
        args: viaRelay,
      });
      // Several watchdog rounds (5 s) and reservation attempts.
      await new Promise((r) => setTimeout(r, 12_000));
      const s = await stranger.status();
      assert.equal(s.relays[0]?.reserved, false, JSON.stringify(s.relays));
      assert.ok(!s.addrs.some((a) => a.includes('/p2p-circuit')), s.addrs.join(' '));
      assert.ok(!(await relay.status()).peers.some((p) => p.peerId === stranger.peerId));
      await cluster.stop('stranger');
    });

    await t.test(
      'a node starts with its relay down; reservations return within 60 s of a restart',
      async () => {
        await cluster.stop('relay');
        await cluster.restart('bob');
        assert.equal(await reserved(bob), false);
        const t1 = Date.now();
        await cluster.restart('relay');
        await cluster.waitFor(async () => (await reserved(bob)) && (await reserved(alice)), {
          timeoutMs: 60_000,
          description: 'bob and alice reserved again',
          nodes: ['alice', 'bob'],
        });
        t.diagnostic(`relay restart → both reservations back: ${Date.now() - t1} ms`);
        // bob came back without alice's connection: she meets him again through the relay.
        await cluster.waitFor(async () => (await kindsTo(alice, bob.peerId)).some((k) => k !== 'relayed'), {
          timeoutMs: 60_000,
          description: 'alice↔bob direct again',
          nodes: ['alice', 'bob'],
        });
      },
    );
    passed = true;
  } finally {
    await cluster.stopAll();
    if (passed) await cluster.removeRunDir();
  }
});
