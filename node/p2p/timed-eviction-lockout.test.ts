/**
 * ATK review of #13 (pending upgrade eviction after 500 ms), finding (MEDIUM, a local user, as
 * ATK-13 finding 4; fixed): all of loopback shares one budget of 16 upgrades in flight, and a
 * full budget let a new connection take the place of the oldest only once that was 500 ms old.
 * A stranger opening each replacement socket just past 500 ms after the one it replaces kept
 * all 16 places younger than that, and an honest dial arriving at almost any moment was refused
 * `pending-per-ip`. It costs about 32 sockets a second, from rotating 127.x source addresses (so
 * libp2p's 5-per-second host rate never applies). Before the fix, on this 2-core host at load
 * 18-34: 1/10, 1/10, 1/10 honest dials connected (0/10 at load 7-10).
 *
 * Now (connection-limits.ts): inside the shared budget a newcomer whose source (a /24 of 127/8)
 * holds two fewer places than another's takes that source's oldest silent place whatever its
 * age, and a socket that has sent no byte is evictable after 200 ms (silentEvictableAfterMs)
 * rather than 500. Rig: a real libp2p host with the node's ConnectionLimits gater (defaults),
 * the stranger's 16 slots from 127.0.1.x each replacing its socket 503 ms after opening it
 * (ATK_MARGIN_MS=3), the honest peer dialling from 127.0.0.1 10 times over ~12 s; at least 8
 * must connect.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { P2P_DEFAULTS } from '../options.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { ConnectionLimits } from './connection-limits.ts';

const dirs: string[] = [];
const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const MARGIN_MS = Number(process.env.ATK_MARGIN_MS ?? 3);
/** Slots beyond the budget: refused until a place is evictable, they retry every RETRY_MS. */
const EXTRA = Number(process.env.ATK_EXTRA ?? 0);
const RETRY_MS = 10;

test('a local stranger that replaces its silent sockets just past 500 ms does not keep a loopback peer out', async (t) => {
  let evicted = 0;
  const refusals: string[] = [];
  const limits = new ConnectionLimits({ onEvicted: () => evicted++, onRefuse: (e) => refusals.push(e.code) });
  const { host } = await startLoopbackHost(75, 'atk-timed-victim', dirs, {
    gater: {
      denyInboundConnection: limits.denyInboundConnection,
      denyOutboundConnection: limits.denyOutboundConnection,
      denyInboundUpgradedConnection: limits.denyInboundUpgradedConnection,
    },
  });
  closers.push(() => host.stop());
  const addr = host.getMultiaddrs().find((a) => a.toString().includes('/tcp/'))!;
  const port = Number(addr.toString().split('/tcp/')[1]!.split('/')[0]);
  const { host: honest } = await startLoopbackHost(76, 'atk-timed-honest', dirs);
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
  await sleep(500);

  // The stranger: 16 slots (the exempt budget); each opens a silent socket, and just past the
  // eviction age opens the next one, which takes the oldest place (its own). Fresh 127.x source
  // addresses keep libp2p's per-host rate out of the way.
  let running = true;
  let next = 0;
  const sockets = new Set<net.Socket>();
  const open = () =>
    new Promise<{ sock: net.Socket; accepted: boolean }>((resolve) => {
      const a = next++ % 250;
      const sock = net.connect({
        port,
        host: '127.0.0.1',
        localAddress: `127.0.${1 + Math.floor(a / 250)}.${a + 2}`,
      });
      sockets.add(sock);
      let settled = false;
      sock.on('error', () => {});
      sock.on('close', () => {
        sockets.delete(sock);
        if (!settled) {
          settled = true;
          resolve({ sock, accepted: false });
        }
      });
      // Refused connections are closed by the node at once; a socket still open after 30 ms holds a place.
      sock.on('connect', () =>
        setTimeout(() => {
          if (!settled) {
            settled = true;
            resolve({ sock, accepted: !sock.destroyed });
          }
        }, 30),
      );
    });
  const slot = async () => {
    while (running) {
      const started = performance.now();
      const { accepted } = await open();
      if (!accepted) {
        await sleep(RETRY_MS);
        continue;
      }
      const wait = P2P_DEFAULTS.pendingEvictableAfterMs + MARGIN_MS - (performance.now() - started);
      if (wait > 0) await sleep(wait);
    }
  };
  const slots = Array.from({ length: limits.maxPendingExempt + EXTRA }, () => slot());
  closers.push(async () => {
    running = false;
    for (const s of sockets) s.destroy();
    await Promise.all(slots);
  });
  await sleep(1_500);
  const refusedBefore = refusals.length;
  const DIALS = 10;
  let connected = 0;
  for (let i = 0; i < DIALS; i++) {
    if (await dialOnce()) connected++;
    await sleep(700);
  }
  running = false;
  t.diagnostic(
    `honest loopback dials that connected: ${connected}/${DIALS}; stranger sockets opened ${next}, ` +
      `upgrades evicted ${evicted}, refusals during the dials ${refusals.length - refusedBefore} (${[...new Set(refusals)].join(',')})`,
  );
  assert.ok(connected >= 8, `only ${connected} of ${DIALS} honest dials connected`);
});
