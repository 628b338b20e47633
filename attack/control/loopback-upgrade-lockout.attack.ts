/**
 * ATK-13 finding 4 (MEDIUM): 16 silent sockets from a local stranger keep every loopback peer
 * from connecting to a node.
 *
 * The fix for attack review #13's slowloris put all of loopback (127.0.0.0/8, ::1) on one budget
 * of 16 upgrades in flight (node/options.ts maxPendingExempt), so a stranger binding many 127.x
 * addresses no longer holds all 32 of libp2p's pending slots. But the 16 are now a lock of their
 * own: `npm start`, the cluster harness and any single-host deployment run every node on
 * 127.0.0.1, where the stranger's sockets and the honest peers' are the same "host". A local user
 * who keeps 16 TCP sockets open to a node's libp2p port, sending nothing and reopening each one
 * the moment the node drops it (after inboundUpgradeTimeoutMs, 3 s), has every inbound connection
 * from the other demo nodes refused (`pending-per-ip`) for as long as it likes: a restarted or
 * disconnected node cannot rejoin, and a node whose peers all dropped is partitioned. Spread over
 * 16 source addresses (127.0.0.2…17) the reconnects (one per address per 3 s) stay under
 * libp2p's per-address rate (inboundConnectionThreshold 5/s). Cost to the stranger: 16 sockets.
 * The same holds off loopback with 8 LAN addresses × maxPendingPerIp 4 = the 32 global slots
 * (the comment in options.ts counts it), not tested here.
 *
 * Figures: a real libp2p host with the node's own ConnectionLimits gater; the stranger's 16
 * sockets from 127.0.0.2–17; an honest host on 127.0.0.1 dials 5 times over ~6 s: 0 of 5
 * connect; with 15 silent sockets instead, 5 of 5 connect; without the stranger, 1 of 1.
 *
 * Run: npm exec -- node --test attack/control/loopback-upgrade-lockout.attack.ts
 *
 * Fixes that make it pass: a socket that sends no noise bytes within a short first-byte deadline
 * (e.g. 250 ms) gives its pending place up at once, and pending places held longest are evicted
 * for new ones (so silent sockets cannot hold the budget against fresh dials); or part of the
 * pending budget is kept for connections the node can tie to a known member (e.g. its
 * bootstrap/peer-store addresses' ports, or a first-message key check).
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { after, test } from 'node:test';
import { ConnectionLimits } from '../../node/p2p/connection-limits.ts';
import { startLoopbackHost } from '../../node/testing/loopback-host.ts';

const dirs: string[] = [];
const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function victim() {
  const limits = new ConnectionLimits({});
  const { host } = await startLoopbackHost(71, 'atk13-victim', dirs, {
    gater: {
      denyInboundConnection: limits.denyInboundConnection,
      denyOutboundConnection: limits.denyOutboundConnection,
      denyInboundUpgradedConnection: limits.denyInboundUpgradedConnection,
    },
  });
  closers.push(() => host.stop());
  const addr = host.getMultiaddrs().find((a) => a.toString().includes('/tcp/'))!;
  return { host, addr, port: Number(addr.toString().split('/tcp/')[1]!.split('/')[0]) };
}

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

async function dialOnce(dialer: Awaited<ReturnType<typeof startLoopbackHost>>['host'], addr: unknown) {
  try {
    const c = await dialer.dial(addr as never, { signal: AbortSignal.timeout(2_000) });
    await c.close();
    return true;
  } catch {
    return false;
  }
}

test('a local stranger’s 16 silent sockets do not keep a loopback peer out', async (t) => {
  const { addr, port } = await victim();
  const { host: honest } = await startLoopbackHost(72, 'atk13-honest', dirs);
  closers.push(() => honest.stop());
  // Control: with nobody in the way the honest peer connects.
  assert.equal(await dialOnce(honest, addr), true, 'control: the honest dial works');
  await new Promise((r) => setTimeout(r, 500));
  const stops = Array.from({ length: 16 }, (_, i) => silentSocket(port, `127.0.0.${i + 2}`));
  closers.push(() => {
    for (const s of stops) s();
  });
  await new Promise((r) => setTimeout(r, 500));
  let connected = 0;
  for (let i = 0; i < 5; i++) {
    if (await dialOnce(honest, addr)) connected++;
    await new Promise((r) => setTimeout(r, 700));
  }
  t.diagnostic(`honest loopback dials that connected while 16 silent sockets were held: ${connected}/5`);
  assert.ok(connected >= 4, `only ${connected} of 5 honest dials connected`);
});
