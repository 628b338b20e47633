/**
 * Gossipsub's IP-colocation penalty: twelve hosts on 127.0.0.1 form a mesh with Cairn's
 * whitelist, and (the control) form none with gossipsub's defaults, where every peer beyond ten
 * on one IP scores below zero and is never grafted.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { IpWhitelist, ipColocationParams, relayedThrough } from './gossip-score.ts';
import type { CairnLibp2p } from './host.ts';

const RELAY = '/ip4/192.0.2.50/tcp/4001/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq/p2p-circuit';

test('the whitelist holds ranges, exact addresses and relays in use', () => {
  const open: { remoteAddr: ReturnType<typeof multiaddr> }[] = [];
  const w = new IpWhitelist(
    ['127.0.0.0/8', '::1/128', '198.51.100.7'],
    relayedThrough(() => open as Connection[]),
  );
  assert.ok(w.has('127.0.0.1') && w.has('127.3.2.1') && w.has('::1') && w.has('198.51.100.7'));
  assert.ok(!w.has('198.51.100.8') && !w.has('10.0.0.1') && !w.has('not-an-ip'));
  assert.ok(!w.has('192.0.2.50'), 'a relay with no relayed connection open is an ordinary address');
  open.push({ remoteAddr: multiaddr(`${RELAY}/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq`) });
  assert.ok(w.has('192.0.2.50'), 'peers behind an active relay share its IP without penalty');
  open.length = 0;
  assert.ok(!w.has('192.0.2.50'));
  const p = ipColocationParams({ ipColocationWhitelist: [] });
  assert.deepEqual([p.IPColocationFactorWeight, p.IPColocationFactorThreshold], [-5, 10]);
  assert.ok(!p.IPColocationFactorWhitelist.has('127.0.0.1'));
});

describe('twelve gossipsub hosts on one IP', () => {
  const dirs: string[] = [];
  const hosts: CairnLibp2p[] = [];
  after(async () => {
    await Promise.all(hosts.map((h) => Promise.resolve(h.stop()).catch(() => {})));
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
  });

  const N = 12;
  const TOPIC = '/cairn/test/colocation/1';

  async function cluster(seed: number, whitelist?: readonly string[]) {
    const group = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        startLoopbackHost(seed + i, `p6-${seed}`, dirs, {
          ...(whitelist ? { gossipScore: { ipColocationWhitelist: whitelist } } : {}),
        }).then((r) => r.host),
      ),
    );
    hosts.push(...group);
    for (const h of group) h.services.pubsub.subscribe(TOPIC);
    // Full mesh: in round r every host dials the one r places on, so each host gets one or two
    // new connections a round (libp2p refuses more than 5 a second from one IP). Under load a
    // dial can time out: rounds repeat for the pairs still missing.
    const end = Date.now() + 60_000;
    while (Date.now() < end && group.some((h) => h.getPeers().length < N - 1)) {
      for (let r = 1; r <= N / 2; r++) {
        await Promise.allSettled(
          group.map((h, i) => {
            const other = group[(i + r) % N]!;
            if (h.getConnections(other.peerId).length) return undefined;
            return h.dial(other.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) });
          }),
        );
        await sleep(500);
      }
    }
    for (const h of group) assert.equal(h.getPeers().length, N - 1, 'the full mesh of connections is up');
    return group;
  }
  /** Gossipsub's own view (its exported interface leaves these out). */
  const sub = (h: CairnLibp2p) =>
    h.services.pubsub as unknown as { getMeshPeers(t: string): string[]; getScore(p: string): number };
  const meshSizes = (group: CairnLibp2p[]) => group.map((h) => sub(h).getMeshPeers(TOPIC).length);

  test("with Cairn's whitelist (loopback) every host has a mesh and a message reaches all", async () => {
    const group = await cluster(60);
    const end = Date.now() + 15_000;
    while (Date.now() < end && meshSizes(group).some((n) => n < 4)) await sleep(200);
    assert.ok(
      meshSizes(group).every((n) => n >= 4),
      `mesh sizes ${meshSizes(group)}`,
    );
    const got = new Set<number>();
    for (const [i, h] of group.entries())
      h.services.pubsub.addEventListener('message', (e) => {
        if (e.detail.topic === TOPIC) got.add(i);
      });
    await group[0]!.services.pubsub.publish(TOPIC, new TextEncoder().encode('hello'));
    const until = Date.now() + 10_000;
    while (Date.now() < until && got.size < N - 1) await sleep(100);
    assert.equal(got.size, N - 1);
    const score = sub(group[0]!).getScore(group[1]!.peerId.toString());
    assert.ok(score >= 0, `score ${score}`);
  });

  test("control: with gossipsub's defaults every mesh ends empty", async () => {
    const group = await cluster(80, []);
    // Peers grafted while fewer than eleven were connected are pruned at the next heartbeats.
    const end = Date.now() + 20_000;
    while (Date.now() < end && meshSizes(group).some((n) => n > 0)) await sleep(200);
    assert.deepEqual(meshSizes(group), Array(N).fill(0));
    const score = sub(group[0]!).getScore(group[1]!.peerId.toString());
    assert.ok(score < 0, `score ${score}`);
  });
});
