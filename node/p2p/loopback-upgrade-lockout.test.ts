/**
 * ATK-13 finding 4 (MEDIUM, fixed): 16 silent sockets from a local stranger kept every loopback
 * peer from connecting to a node. All of loopback shares one budget of 16 upgrades in flight
 * (maxPendingExempt); a local user holding 16 silent TCP sockets, reopened as the node dropped
 * them, had every other loopback dial refused `pending-per-ip` (an honest host's 5 dials over
 * ~6 s: 0 of 5 connected). Now a full budget evicts the upgrade pending longest once it is past
 * pendingEvictableAfterMs (500 ms): an honest handshake finishes in tens of ms, so the stranger's
 * reopened sockets evict only its own older ones (cairn_p2p_upgrades_evicted_total): 5 of 5.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { after, test } from 'node:test';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { ConnectionLimits } from './connection-limits.ts';

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
