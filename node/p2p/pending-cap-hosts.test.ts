/**
 * ATK review of #13 (pending upgrade eviction), finding (MEDIUM, fixed): the eviction ran only
 * inside one budget of ConnectionLimits (one IP's 4, or loopback's shared 16), but libp2p's own
 * cap on upgrades in flight (maxIncomingPendingConnections, then 32) is checked first, in
 * `acceptIncomingConnection`, before any gater hook. 8 hosts x maxPendingPerIp (4) silent
 * sockets filled it, each host within its own budget, so the gater was never asked and nothing
 * was evicted: every inbound connection, loopback included, was refused by libp2p. 8 IPv4
 * addresses on a LAN, or 8 /64s of one IPv6 /61. Now ConnectionLimits owns a node-wide budget
 * (maxPendingTotal, 32) that evicts from the budget holding most, and libp2p's cap sits at 64.
 *
 * Rig: a real libp2p host with the node's ConnectionLimits gater (its defaults), in a network
 * namespace the test makes (unshare -n, as e2e/demo/console-proxy-sockets.test.ts): 10.98.0.2–9
 * on its loopback are the 8 LAN hosts (127.0.0.0/8 is one host to the caps), the honest peer
 * dials from 127.0.0.1. Nothing leaves the namespace. Needs root or unprivileged user
 * namespaces and iproute2; CAIRN_SKIP_NETNS=1 skips it.
 *
 * Before the fix: 0 of 5 honest dials connected (libp2p's count 32, 0 evicted, 0 gater
 * refusals). After: 5 of 5, 10 upgrades evicted.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { netnsSupport } from '../../e2e/cluster/netns.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { ConnectionLimits } from './connection-limits.ts';

const dirs: string[] = [];
const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** Keeps one silent socket from `localAddress` open to `port`, reopening it whenever it closes. */
function silentSocket(port: number, localAddress: string): () => void {
  let stopped = false;
  let sock: net.Socket | undefined;
  const open = () => {
    if (stopped) return;
    sock = net.connect({ port, host: '127.0.0.1', localAddress });
    sock.on('error', () => {});
    sock.on('close', () => setImmediate(open));
  };
  open();
  return () => {
    stopped = true;
    sock?.destroy();
  };
}

const INSIDE = process.env.CAIRN_ATK_PENDING_NETNS === '1';
const HOSTS = Array.from({ length: 8 }, (_, h) => `10.98.0.${h + 2}`);

if (!INSIDE) {
  test('8 hosts within their own pending budgets do not lock every peer out of a node (in a netns)', {
    timeout: 90_000,
    skip: process.env.CAIRN_SKIP_NETNS === '1' ? 'CAIRN_SKIP_NETNS=1' : false,
  }, async () => {
    const support = netnsSupport();
    assert.ok(support.ok, support.ok ? '' : `this test needs a network namespace: ${support.reason}`);
    const file = fileURLToPath(import.meta.url);
    const setup = [
      'ip link set lo up',
      ...HOSTS.map((ip) => `ip addr add ${ip}/32 dev lo`),
      `exec "${process.execPath}" --import tsx --test "${file}"`,
    ].join(' && ');
    const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
    const child = spawn('unshare', [...support.unshareArgs, 'sh', '-c', setup], {
      env: { ...env, CAIRN_ATK_PENDING_NETNS: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.stderr!.on('data', (d) => {
      out += d;
    });
    const [code] = await once(child, 'exit');
    console.log(
      out
        .split('\n')
        .filter((l) => l.includes('ℹ') || l.includes('✖') || l.includes('✔'))
        .join('\n'),
    );
    assert.equal(code, 0, `inside the namespace:\n${out.slice(-6000)}`);
  });
} else
  test('8 hosts within their own pending budgets do not lock every peer out of a node', async (t) => {
    let evicted = 0;
    const refused: string[] = [];
    const limits = new ConnectionLimits({
      onEvicted: () => evicted++,
      onRefuse: (e) => refused.push(e.code),
    });
    const { host } = await startLoopbackHost(73, 'atk-pending-victim', dirs, {
      gater: {
        denyInboundConnection: limits.denyInboundConnection,
        denyOutboundConnection: limits.denyOutboundConnection,
        denyInboundUpgradedConnection: limits.denyInboundUpgradedConnection,
      },
    });
    closers.push(() => host.stop());
    const addr = host.getMultiaddrs().find((a) => a.toString().includes('/tcp/'))!;
    const port = Number(addr.toString().split('/tcp/')[1]!.split('/')[0]);
    const { host: honest } = await startLoopbackHost(74, 'atk-pending-honest', dirs);
    closers.push(() => honest.stop());
    const dialOnce = async () => {
      try {
        const c = await honest.dial(addr, { signal: AbortSignal.timeout(2_000) });
        await c.close();
        return true;
      } catch {
        return false;
      }
    };
    assert.equal(await dialOnce(), true, 'control: the honest dial works');
    await new Promise((r) => setTimeout(r, 500));

    const hosts = HOSTS.length;
    const perHost = limits.maxPendingPerIp;
    const stops: (() => void)[] = [];
    for (const ip of HOSTS) for (let i = 0; i < perHost; i++) stops.push(silentSocket(port, ip));
    closers.push(() => {
      for (const s of stops) s();
    });
    await new Promise((r) => setTimeout(r, 700));
    const held = HOSTS.map((ip) => limits.pendingFrom(ip));
    const libp2pPending = (
      host as unknown as { components: { connectionManager: { incomingPendingConnections: number } } }
    ).components.connectionManager.incomingPendingConnections;

    let connected = 0;
    for (let i = 0; i < 5; i++) {
      if (await dialOnce()) connected++;
      await new Promise((r) => setTimeout(r, 700));
    }
    t.diagnostic(
      `${hosts} hosts x ${perHost} silent sockets (pending per host: ${held.join(',')}; libp2p's count ${libp2pPending}); honest dials connected ${connected}/5; ` +
        `upgrades evicted ${evicted}; gater refusals ${refused.length}`,
    );
    assert.ok(connected >= 4, `only ${connected} of 5 honest dials connected`);
  });
