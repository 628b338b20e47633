/**
 * A ban counts against the banned peer's address, except when the caller says the offence is
 * one a stranger can fabricate for free (an admission refusal): then only the key is banned, so
 * a stranger cannot get an address members share (a NAT, an uplink, a CGNAT) refused.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, test } from 'node:test';
import type { PeerId } from '@libp2p/interface';
import { createLogger } from '../log.ts';
import { createNodeMetrics } from '../metrics.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import { AddressBans } from './address-bans.ts';
import { PeerManager } from './peer-manager.ts';
import { PeerScores } from './peer-scores.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 }))));

test('a fatal penalty bans the key; only a chargeable one counts against its address', async () => {
  const server = await startLoopbackHost(71, 'pm-bans', dirs);
  const a = await startLoopbackHost(72, 'pm-bans', dirs);
  const b = await startLoopbackHost(73, 'pm-bans', dirs);
  try {
    // Loopback plays an ordinary shared address here; one ban is enough to refuse it.
    const bans = new AddressBans({ threshold: 1, exempt: [] });
    const scores = new PeerScores();
    const pm = new PeerManager({
      host: server.host,
      reqresp: undefined as never,
      scores,
      ourStatus: () => undefined as never,
      metrics: createNodeMetrics(),
      log: createLogger('silent'),
      addressBans: bans,
    });
    const connected = async (h: typeof a) => {
      await h.host.dial(server.host.getMultiaddrs()[0]!);
      return h.identity.peerId as PeerId;
    };
    const stranger = await connected(a);
    pm.penalise(stranger, 'fatal', 'admission: wrong-network', { chargeAddress: false });
    assert.equal(scores.isBanned(stranger.toString(), Date.now()), true, 'the key is banned');
    assert.equal(bans.isBanned('127.0.0.1', Date.now()), false, 'its address is not');

    const liar = await connected(b);
    pm.penalise(liar, 'fatal', 'invalid block: wrong-chain-id');
    assert.equal(bans.isBanned('127.0.0.1', Date.now()), true, 'a chargeable ban counts against the address');
  } finally {
    await Promise.all([server, a, b].map((h) => h.host.stop()));
  }
});

test('in roster mode a peer that is not admitted (pending, read-only) never charges its address', async () => {
  const server = await startLoopbackHost(74, 'pm-bans', dirs);
  const a = await startLoopbackHost(75, 'pm-bans', dirs);
  const b = await startLoopbackHost(76, 'pm-bans', dirs);
  try {
    const bans = new AddressBans({ threshold: 1, exempt: [] });
    const scores = new PeerScores();
    const admitted = new Set<string>();
    const pm = new PeerManager({
      host: server.host,
      reqresp: undefined as never,
      scores,
      ourStatus: () => undefined as never,
      metrics: createNodeMetrics(),
      log: createLogger('silent'),
      addressBans: bans,
      addressAnswersFor: (p) => admitted.has(p.toString()),
    });
    const connected = async (h: typeof a) => {
      await h.host.dial(server.host.getMultiaddrs()[0]!);
      return h.identity.peerId as PeerId;
    };
    // A read-only stranger whose status names another genesis: what PeerManager.accept does.
    const stranger = await connected(a);
    pm.penalise(stranger, 'fatal', 'status of another chain (chain id or genesis differ)');
    assert.equal(scores.isBanned(stranger.toString(), Date.now()), true, 'the key is banned');
    assert.equal(bans.isBanned('127.0.0.1', Date.now()), false, 'its (shared) address is not');

    // An admitted member that misbehaves still answers with its address.
    const member = await connected(b);
    admitted.add(member.toString());
    pm.penalise(member, 'fatal', 'invalid block: wrong-chain-id');
    assert.equal(bans.isBanned('127.0.0.1', Date.now()), true, "an admitted peer's ban counts");
  } finally {
    await Promise.all([server, a, b].map((h) => h.host.stop()));
  }
});

test('a ban the full ban store cannot hold bans the address at once (no older ban is forgotten)', async () => {
  const server = await startLoopbackHost(77, 'pm-bans', dirs);
  const a = await startLoopbackHost(78, 'pm-bans', dirs);
  try {
    // Two bans at an address would ban it; one recorded ban does not.
    const bans = new AddressBans({ threshold: 2, exempt: [] });
    const scores = new PeerScores({ maxBans: 16 });
    const now = Date.now();
    for (let i = 0; i < 16; i++) scores.apply(`earlier-${i}`, 'fatal', 'wrong chain', now);
    const pm = new PeerManager({
      host: server.host,
      reqresp: undefined as never,
      scores,
      ourStatus: () => undefined as never,
      metrics: createNodeMetrics(),
      log: createLogger('silent'),
      addressBans: bans,
    });
    await a.host.dial(server.host.getMultiaddrs()[0]!);
    const liar = a.identity.peerId as PeerId;
    pm.penalise(liar, 'fatal', 'invalid block: wrong-chain-id');
    assert.equal(scores.isBanned(liar.toString(), Date.now()), false, 'the full store does not hold it');
    assert.equal(scores.bansUnrecorded, 1);
    assert.equal(scores.banned(Date.now()).length, 16, 'no earlier ban was forgotten');
    assert.equal(
      bans.isBanned('127.0.0.1', Date.now()),
      true,
      'its address is banned instead, at the first ban',
    );
  } finally {
    await Promise.all([server, a].map((h) => h.host.stop()));
  }
});
