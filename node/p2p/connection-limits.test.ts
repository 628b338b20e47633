/**
 * Sybil and eclipse limits: the per-IP cap, the reserved outbound slots and address bans, first
 * as pure counting, then on real libp2p hosts on loopback TCP (clients are bare libp2p nodes
 * with fresh peer ids, as a Sybil would run them).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { noise } from '@chainsafe/libp2p-noise';
import type { MultiaddrConnection } from '@libp2p/interface';
import { tcp } from '@libp2p/tcp';
import { yamux } from '@libp2p/yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { Registry } from 'prom-client';
import { P2P_DEFAULTS } from '../options.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { AddressBans } from './address-bans.ts';
import {
  ConnectionLimits,
  type ConnectionRefusedError,
  capKey,
  createConnectionLimitMetrics,
  REFUSAL,
  relayIp,
  remoteIp,
} from './connection-limits.ts';

/** A raw inbound connection as a transport hands it to the gater: an address, a status, a close event. */
class FakeConn extends EventTarget {
  status: MultiaddrConnection['status'] = 'open';
  readonly remoteAddr;
  constructor(remoteAddr = multiaddr('/ip4/192.0.2.1/tcp/4001')) {
    super();
    this.remoteAddr = remoteAddr;
  }
  close() {
    this.status = 'closed';
    this.dispatchEvent(new Event('close'));
  }
  abortedWith: Error | undefined;
  abort(err: Error) {
    this.abortedWith = err;
    this.close();
  }
}
const refusedBy = async (m: ReturnType<typeof createConnectionLimitMetrics>, reason: string) =>
  (await m.refused.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
const conn = (addr: string) => new FakeConn(multiaddr(addr)) as unknown as MultiaddrConnection & FakeConn;

describe('counting', () => {
  test('the ninth inbound connection from one IPv4 is refused; a close frees a place', () => {
    const refusals: ConnectionRefusedError[] = [];
    const l = new ConnectionLimits({ ipLimitExempt: [], onRefuse: (e) => refusals.push(e) });
    const conns = Array.from({ length: 8 }, (_, i) => conn(`/ip4/192.0.2.1/tcp/${4000 + i}`));
    for (const c of conns) {
      assert.equal(l.denyInboundConnection(c), false);
      assert.equal(
        l.denyInboundUpgradedConnection(undefined as never, c),
        false,
        'upgraded: no longer pending',
      );
    }
    assert.equal(l.inboundFrom('192.0.2.1'), 8);
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.1/tcp/5000')), true);
    assert.equal(refusals[0]?.code, REFUSAL.perIpCap);
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.2/tcp/5000')), false, 'another IP is fine');
    conns[0]!.close();
    assert.equal(l.inboundFrom('192.0.2.1'), 7);
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.1/tcp/5001')), false);
    // A connection that closed without its event (status only) is released too.
    conns[1]!.status = 'closed';
    assert.equal(l.inboundFrom('192.0.2.1'), 7);
  });

  test('upgrades in flight are capped per IP; a finished or abandoned one frees its place', () => {
    const refusals: ConnectionRefusedError[] = [];
    const abandoned: string[] = [];
    const l = new ConnectionLimits({
      ipLimitExempt: [],
      maxPendingPerIp: 2,
      onRefuse: (e) => refusals.push(e),
      onAbandoned: (a) => abandoned.push(a),
    });
    const [a, b] = [conn('/ip4/192.0.2.7/tcp/1'), conn('/ip4/192.0.2.7/tcp/2')];
    assert.equal(l.denyInboundConnection(a), false);
    assert.equal(l.denyInboundConnection(b), false);
    assert.equal(l.pendingFrom('192.0.2.7'), 2);
    // Idle sockets from one address cannot take a third upgrade slot.
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.7/tcp/3')), true);
    assert.equal(refusals.at(-1)?.code, REFUSAL.pendingPerIp);
    assert.equal(
      l.denyInboundConnection(conn('/ip4/192.0.2.8/tcp/1')),
      false,
      'another address is not held up',
    );
    // One finishes its handshake, the other times out idle: both places free, one counted abandoned.
    l.denyInboundUpgradedConnection(undefined as never, a);
    b.close();
    assert.equal(l.pendingFrom('192.0.2.7'), 0);
    assert.deepEqual(abandoned, ['/ip4/192.0.2.7/tcp/2']);
    assert.equal(l.inboundFrom('192.0.2.7'), 1, 'the upgraded one still counts against the per-IP cap');
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.7/tcp/4')), false);
    // Exempt (loopback by default) addresses share a larger budget: a local cluster handshakes at once.
    const local = new ConnectionLimits();
    for (let i = 0; i < 6; i++)
      assert.equal(local.denyInboundConnection(conn(`/ip4/127.0.0.1/tcp/${i + 1}`)), false);
  });

  test('upgrades in flight from all of 127.0.0.0/8 share one budget: half the pending slots stay free', () => {
    // Attack review #13 (finding 4): idle sockets from 127.0.0.2…127.0.0.13, 4 each, were all
    // accepted (48 in flight; libp2p holds 32), so no other peer could start an upgrade.
    const refusals: ConnectionRefusedError[] = [];
    const l = new ConnectionLimits({ onRefuse: (e) => refusals.push(e) });
    let accepted = 0;
    for (let a = 2; a <= 13; a++)
      for (let k = 0; k < 4; k++)
        if (!l.denyInboundConnection(conn(`/ip4/127.0.0.${a}/tcp/${1000 + k}`))) accepted++;
    assert.equal(accepted, l.maxPendingExempt);
    assert.ok(accepted <= P2P_DEFAULTS.maxPendingTotal / 2, `${accepted} in flight from one local host`);
    assert.equal(refusals.at(-1)?.code, REFUSAL.pendingPerIp);
    assert.equal(l.pendingFrom('::1'), accepted, 'IPv6 loopback shares it');
    // A peer elsewhere still gets an upgrade slot.
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.9/tcp/1')), false);
  });

  test('a full pending budget evicts the upgrade pending longest once it is past pendingEvictableAfterMs', async () => {
    // ATK-13 finding 4: 16 silent sockets, reopened as they timed out, held every loopback place.
    let now = 1_000_000;
    const refusals: ConnectionRefusedError[] = [];
    const abandoned: string[] = [];
    const m = createConnectionLimitMetrics(new Registry());
    const l = new ConnectionLimits({
      now: () => now,
      onRefuse: (e) => refusals.push(e),
      onAbandoned: (a) => abandoned.push(a),
      onEvicted: m.onEvicted,
    });
    const silent = Array.from({ length: l.maxPendingExempt }, (_, i) =>
      conn(`/ip4/127.0.0.2/tcp/${2000 + i}`),
    );
    for (const c of silent) {
      assert.equal(l.denyInboundConnection(c), false);
      now += 10;
    }
    // Young upgrades are honest ones mid-handshake: nobody takes their place.
    assert.equal(l.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/9000')), true);
    assert.equal(refusals.at(-1)?.code, REFUSAL.pendingPerIp);
    now += P2P_DEFAULTS.pendingEvictableAfterMs;
    const honest = conn('/ip4/127.0.0.1/tcp/9001');
    assert.equal(l.denyInboundConnection(honest), false, 'the honest dial gets the oldest silent place');
    assert.match(silent[0]!.abortedWith?.message ?? '', /evicted/);
    assert.equal(silent[1]!.abortedWith, undefined, 'one place, one eviction');
    assert.deepEqual(abandoned, [], 'an eviction is not counted as abandoned');
    assert.equal((await m.evicted.get()).values[0]?.value, 1);
    assert.equal(l.pendingFrom('127.0.0.1'), l.maxPendingExempt);
    // The stranger reopens at once: it evicts its own older sockets, never the young honest one.
    for (let i = 0; i < l.maxPendingExempt; i++)
      l.denyInboundConnection(conn(`/ip4/127.0.0.2/tcp/${3000 + i}`));
    assert.equal(honest.abortedWith, undefined);
    l.denyInboundUpgradedConnection(undefined as never, honest);
    assert.equal(l.inboundFrom('127.0.0.1'), 0, 'loopback is exempt from the per-IP cap');
  });

  test('the node-wide pending total is ours, under libp2p cap, and evicts from the budget holding most', () => {
    // Attack review of #13 (pending-cap-hosts): 8 hosts x 4 silent sockets, each within its own
    // budget, filled libp2p's 32 before any gater hook ran: every peer refused, nothing evicted.
    assert.ok(
      P2P_DEFAULTS.maxIncomingPendingConnections > P2P_DEFAULTS.maxPendingTotal,
      "libp2p's cap is never reached first",
    );
    let now = 1_000_000;
    const refusals: ConnectionRefusedError[] = [];
    const l = new ConnectionLimits({ now: () => now, onRefuse: (e) => refusals.push(e) });
    const held: (MultiaddrConnection & FakeConn)[] = [];
    for (let h = 0; h < 8; h++)
      for (let k = 0; k < l.maxPendingPerIp; k++) {
        const c = conn(`/ip4/10.98.0.${h + 2}/tcp/${5000 + k}`);
        assert.equal(l.denyInboundConnection(c), false, `host ${h} socket ${k}`);
        held.push(c);
        now += 1;
      }
    assert.equal(l.pendingCount, l.maxPendingTotal);
    // Young: nothing goes, the newcomer is refused with its own code.
    assert.equal(l.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/9000')), true);
    assert.equal(refusals.at(-1)?.code, REFUSAL.pendingTotal);
    now += P2P_DEFAULTS.pendingEvictableAfterMs;
    // One host's budget holds one more: its oldest goes first, not an older one of a smaller budget.
    held[0]!.close();
    assert.equal(l.denyInboundConnection(conn('/ip4/192.0.2.50/tcp/1')), false, 'a free place is taken');
    const honest = conn('/ip4/127.0.0.1/tcp/9001');
    assert.equal(l.denyInboundConnection(honest), false, 'the honest dial gets a place');
    assert.equal(held[1]!.abortedWith, undefined, 'host 0 holds 3 now: not the budget holding most');
    assert.match(held[4]!.abortedWith?.message ?? '', /evicted/, "host 1's oldest went");
    assert.equal(l.pendingCount, l.maxPendingTotal);
  });

  test('silent upgrades go sooner, and a crowded source in the shared budget gives way to another', () => {
    // Attack review of #13 (timed-eviction-lockout): a stranger replacing its 16 silent sockets
    // just past 500 ms kept every loopback place young: 1 of 10 honest dials.
    let now = 1_000_000;
    const l = new ConnectionLimits({ now: () => now });
    const silent = (addr: string) => Object.assign(conn(addr), { socket: { bytesRead: 0 } });
    const talking = (addr: string) => Object.assign(conn(addr), { socket: { bytesRead: 40 } });
    // Same source (127.0.0.0/24) as the newcomer: only age decides, silent ones sooner.
    const mid = talking('/ip4/127.0.0.3/tcp/1');
    assert.equal(l.denyInboundConnection(mid), false);
    const own = Array.from({ length: l.maxPendingExempt - 1 }, (_, i) =>
      silent(`/ip4/127.0.0.2/tcp/${100 + i}`),
    );
    for (const c of own) assert.equal(l.denyInboundConnection(c), false);
    now += P2P_DEFAULTS.silentEvictableAfterMs - 1;
    assert.equal(l.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/9000')), true, 'all young');
    now += 1;
    assert.equal(
      l.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/9001')),
      false,
      'a silent one is past its age',
    );
    assert.equal(mid.abortedWith, undefined, 'the older one that talks stays: it is mid-handshake');
    assert.match(own[0]!.abortedWith?.message ?? '', /evicted/);

    // Another /24 holding the budget: its oldest silent place goes to a newcomer from elsewhere at once.
    const m = new ConnectionLimits({ now: () => now });
    const crowd = Array.from({ length: m.maxPendingExempt }, (_, i) => silent(`/ip4/127.0.1.${i + 2}/tcp/1`));
    for (const c of crowd) {
      assert.equal(m.denyInboundConnection(c), false);
      now += 1;
    }
    assert.equal(
      m.denyInboundConnection(silent('/ip4/127.0.1.200/tcp/1')),
      true,
      'the crowd itself waits for the age',
    );
    assert.equal(
      m.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/9002')),
      false,
      'a lone dialler from 127.0.0/24 gets in',
    );
    assert.match(crowd[0]!.abortedWith?.message ?? '', /evicted/);
    assert.equal(crowd[1]!.abortedWith, undefined);
  });

  test('IPv6 addresses are capped per /64', () => {
    assert.equal(capKey('2001:db8:1:2:aa::1'), '2001:db8:1:2::/64');
    assert.equal(capKey('2001:0db8:0001:0002:ffff:0:0:7'), '2001:db8:1:2::/64');
    assert.equal(capKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(capKey('192.0.2.1'), '192.0.2.1');
    for (const lo of ['127.0.0.1', '127.0.0.2', '127.255.0.9', '::1', '::ffff:127.0.0.3'])
      assert.equal(capKey(lo), 'loopback', `${lo} is this machine`);
    const l = new ConnectionLimits({ ipLimitExempt: [], maxInboundPerIp: 2 });
    assert.equal(l.denyInboundConnection(conn('/ip6/2001:db8:1:2::a/tcp/1')), false);
    assert.equal(l.denyInboundConnection(conn('/ip6/2001:db8:1:2::b/tcp/1')), false);
    assert.equal(l.denyInboundConnection(conn('/ip6/2001:db8:1:2:ffff::c/tcp/1')), true, 'same /64');
    assert.equal(l.denyInboundConnection(conn('/ip6/2001:db8:1:3::a/tcp/1')), false, 'another /64');
  });

  test('loopback is exempt from the per-IP cap by default, but not from the inbound slots', () => {
    // (Upgrades in flight from loopback are capped apart, below: lifted here.)
    const l = new ConnectionLimits({ maxConnections: 30, reservedOutbound: 10, maxPendingExempt: 30 });
    for (let i = 0; i < 20; i++)
      assert.equal(l.denyInboundConnection(conn(`/ip4/127.0.0.1/tcp/${i + 1}`)), false);
    assert.equal(l.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/99')), true, 'inbound slots are full');
    assert.equal(l.check(multiaddr('/ip4/127.0.0.1/tcp/99')), REFUSAL.inboundSlotsFull);
  });

  test('inbound connections never take the reserved outbound slots', () => {
    const l = new ConnectionLimits({ maxConnections: 10, reservedOutbound: 4, ipLimitExempt: [] });
    assert.equal(l.maxInbound, 6);
    for (let i = 0; i < 6; i++)
      assert.equal(l.denyInboundConnection(conn(`/ip4/198.51.100.${i}/tcp/1`)), false);
    assert.equal(l.check(multiaddr('/ip4/198.51.100.99/tcp/1')), REFUSAL.inboundSlotsFull);
    // Six inbound open: the node can still dial out four more of its own choosing.
    assert.equal(l.canDialOut(6), true);
    assert.equal(l.canDialOut(9), true);
    assert.equal(l.canDialOut(10), false);
    assert.throws(() => new ConnectionLimits({ maxConnections: 4, reservedOutbound: 4 }), RangeError);
  });

  test('relayed connections count toward the slots only; the relay address is not the peer', () => {
    const relayed =
      '/ip4/192.0.2.50/tcp/4001/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq/p2p-circuit';
    assert.equal(remoteIp(multiaddr(relayed)), undefined);
    assert.equal(relayIp(multiaddr(relayed)), '192.0.2.50');
    assert.equal(remoteIp(multiaddr('/ip6/2001:db8::1/tcp/1')), '2001:db8::1');
    assert.equal(relayIp(multiaddr('/ip4/192.0.2.50/tcp/1')), undefined);
    const l = new ConnectionLimits({ ipLimitExempt: [], maxInboundPerIp: 1 });
    for (let i = 0; i < 5; i++) assert.equal(l.denyInboundConnection(conn(relayed)), false);
    assert.equal(l.inboundCount, 5);
  });

  test('a banned address is refused both ways; exempt addresses never are', async () => {
    const bans = new AddressBans({ threshold: 1, exempt: [] });
    bans.record('203.0.113.5', Date.now());
    const registry = new Registry();
    const metrics = createConnectionLimitMetrics(registry);
    const l = new ConnectionLimits({
      addressBans: bans,
      ipLimitExempt: ['127.0.0.0/8'],
      onRefuse: metrics.onRefuse,
    });
    assert.equal(l.denyInboundConnection(conn('/ip4/203.0.113.5/tcp/1')), true);
    assert.equal(l.denyOutboundConnection({} as never, conn('/ip4/203.0.113.5/tcp/1')), true);
    assert.equal(l.denyOutboundConnection({} as never, conn('/ip4/203.0.113.6/tcp/1')), false);
    bans.record('127.0.0.1', Date.now()); // not exempt in `bans`, but exempt in the limits
    assert.equal(l.denyInboundConnection(conn('/ip4/127.0.0.1/tcp/1')), false);
    assert.equal(await refusedBy(metrics, REFUSAL.addressBanned), 2);
  });
});

describe('on real libp2p hosts', () => {
  const dirs: string[] = [];
  const nodes: Libp2p[] = [];
  after(async () => {
    await Promise.all(nodes.map((n) => Promise.resolve(n.stop()).catch(() => {})));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
  });

  /** A bare libp2p client with a fresh peer id: what a Sybil costs. */
  const client = async () => {
    const n = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
      connectionMonitor: { enabled: false },
    });
    nodes.push(n);
    return n;
  };
  type Addr = ReturnType<Libp2p['getMultiaddrs']>[number];
  const dialAll = (clients: Libp2p[], target: Addr) =>
    Promise.allSettled(clients.map((c) => c.dial(target, { signal: AbortSignal.timeout(10_000) })));
  /** libp2p itself refuses more than 5 new connections a second from one host: dial 4 a second. */
  const dialPaced = async (clients: Libp2p[], target: Addr) => {
    const out: PromiseSettledResult<unknown>[] = [];
    for (let i = 0; i < clients.length; i += 4) {
      if (i > 0) await sleep(1100);
      out.push(...(await dialAll(clients.slice(i, i + 4), target)));
    }
    return out;
  };
  const settle = async (cond: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!cond() && Date.now() < end) await sleep(50);
  };

  test('a 9th connection from one IPv4 is refused; when one closes, another gets in', async () => {
    const registry = new Registry();
    const metrics = createConnectionLimitMetrics(registry);
    // Loopback is exempt by default; here it plays one ordinary IPv4 address.
    const limits = new ConnectionLimits({ ipLimitExempt: [], onRefuse: metrics.onRefuse });
    const { host } = await startLoopbackHost(41, 'limits-ip', dirs, {
      gater: {
        denyInboundConnection: limits.denyInboundConnection,
        denyInboundUpgradedConnection: limits.denyInboundUpgradedConnection,
      },
    });
    nodes.push(host as unknown as Libp2p);
    const target = host.getMultiaddrs()[0]!;
    const clients = await Promise.all(Array.from({ length: 9 }, () => client()));
    const first = await dialPaced(clients.slice(0, 8), target);
    assert.deepEqual(
      first.map((r) => r.status),
      Array(8).fill('fulfilled'),
    );
    await sleep(1100);
    const ninth = await dialAll(clients.slice(8), target);
    assert.equal(ninth[0]!.status, 'rejected', 'the ninth connection from 127.0.0.1 got through');
    await settle(() => host.getConnections().length === 8);
    assert.equal(host.getConnections().length, 8);
    assert.equal(limits.inboundFrom('127.0.0.1'), 8);
    assert.equal(await refusedBy(metrics, REFUSAL.perIpCap), 1, 'refused by the cap, not by the rate');

    await clients[0]!.stop();
    await settle(() => limits.inboundFrom('127.0.0.1') === 7);
    assert.equal(limits.inboundFrom('127.0.0.1'), 7, 'a closed connection is released');
    const again = await dialAll(clients.slice(8), target);
    assert.equal(again[0]!.status, 'fulfilled');
  });

  test('with the defaults a loopback cluster of 12 connects in full to one node', async () => {
    const limits = new ConnectionLimits();
    const { host } = await startLoopbackHost(42, 'limits-loop', dirs, {
      gater: { denyInboundConnection: limits.denyInboundConnection },
    });
    nodes.push(host as unknown as Libp2p);
    const clients = await Promise.all(Array.from({ length: 12 }, () => client()));
    const r = await dialPaced(clients, host.getMultiaddrs()[0]!);
    assert.deepEqual(
      r.map((x) => x.status),
      Array(12).fill('fulfilled'),
    );
    await settle(() => host.getConnections().length === 12);
    assert.equal(host.getConnections().length, 12, `open: ${host.getConnections().map((c) => c.status)}`);
  });

  test('strangers filling every inbound slot cannot stop the node dialling out', async () => {
    const limits = new ConnectionLimits({ maxConnections: 6, reservedOutbound: 2 });
    const { host } = await startLoopbackHost(43, 'limits-out', dirs, {
      gater: { denyInboundConnection: limits.denyInboundConnection },
      limits: { maxConnections: 6 },
    });
    nodes.push(host as unknown as Libp2p);
    const strangers = await Promise.all(Array.from({ length: 5 }, () => client()));
    const r = await dialPaced(strangers, host.getMultiaddrs()[0]!);
    assert.equal(r.filter((x) => x.status === 'fulfilled').length, 4, 'inbound is capped at 6 − 2');
    await settle(() => host.getConnections().length === 4);
    const friend = await client();
    await host.dial(friend.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) });
    assert.equal(host.getConnections().length, 5);
    assert.ok(host.getConnections().some((c) => c.direction === 'outbound'));
  });
});
