/**
 * Issue 12 attack findings A.3 and A.4, on the gate alone with a controlled clock: an excused
 * refusal (we are behind, the stranger's issuer is unknown, as for any self-signed certificate)
 * still charges its address, and a read-only peer that serves nothing that connects gives its
 * slot up after `readOnlyIdleMs` and is not taken read-only again during the cooldown. The host
 * is a plain connection list (the gate asks it for connections only); real-host behaviour of
 * read-only peers is in admission-gate.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Connection, PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { Registry } from 'prom-client';
import { createLogger } from '../log.ts';
import { MEMBERSHIP_DEFAULTS } from '../options.ts';
import { StaticRoster, testCertificate, testMember } from '../testing/static-roster.ts';
import { AddressRefusals } from './address-refusals.ts';
import {
  AdmissionGate,
  type AdmissionGateOptions,
  type AdmissionHost,
  createAdmissionMetrics,
  keyOf,
} from './admission-gate.ts';
import type { RefusalCode } from './admission-wire.ts';

const log = createLogger('silent');

interface FakeConn {
  id: string;
  remotePeer: PeerId;
  remoteAddr: ReturnType<typeof multiaddr>;
  status: 'open' | 'closed';
  direction: 'inbound' | 'outbound';
  close(): Promise<void>;
  abort(): void;
}

async function setup(o: Partial<AdmissionGateOptions> = {}) {
  const clock = { now: 1_800_000_000_000 };
  const conns: FakeConn[] = [];
  const open = (p?: PeerId) => conns.filter((c) => c.status === 'open' && (!p || c.remotePeer.equals(p)));
  const host = {
    handle: async () => {},
    unhandle: async () => {},
    getConnections: (p?: PeerId) => open(p) as unknown as Connection[],
    addEventListener: () => {},
    removeEventListener: () => {},
  } as unknown as AdmissionHost;
  const penalties: string[] = [];
  const registry = new Registry();
  const addressRefusals = new AddressRefusals({ exempt: [] });
  const roster = new StaticRoster();
  const gate = new AdmissionGate({
    view: roster.view(undefined),
    protocolId: '/cairn/t/admission/1',
    log,
    penalise: (p, a, r) => penalties.push(`${p} ${a} ${r}`),
    metrics: createAdmissionMetrics(registry),
    addressRefusals,
    now: () => clock.now,
    behind: () => true,
    recheckMs: 3_600_000,
    ...o,
  });
  await gate.start(host);
  let n = 0;
  /** A stranger connecting from `ip` with a self-signed certificate: judged as the listener does. */
  const stranger = async (ip: string) => {
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    const conn: FakeConn = {
      id: `c${n++}`,
      remotePeer: peer,
      remoteAddr: multiaddr(`/ip4/${ip}/tcp/${1000 + n}`),
      status: 'open',
      direction: 'inbound',
      close: async () => {
        conn.status = 'closed';
      },
      abort: () => {
        conn.status = 'closed';
      },
    };
    conns.push(conn);
    const code = judge(gate, conn, testCertificate(keyOf(peer)!));
    if (code) gate.refuse(peer, code, conn.remoteAddr);
    return { peer, conn, code };
  };
  const refusals = async (code: string) =>
    (await registry.getSingleMetric('cairn_membership_refusals_total')!.get()).values
      .filter((v) => v.labels.code === code)
      .reduce((a, v) => a + v.value, 0);
  return { gate, clock, penalties, addressRefusals, roster, stranger, refusals, conns };
}

/** The listener's judgement of a dialer's certificate (the part of `answer` that is not I/O). */
function judge(gate: AdmissionGate, conn: FakeConn, cert: Uint8Array): RefusalCode | undefined {
  return (
    gate as unknown as { judge(c: FakeConn, cert: Uint8Array, act: boolean): RefusalCode | undefined }
  ).judge(conn, cert, false);
}

const recheck = (gate: AdmissionGate) => gate.rejudge();

test('excused refusals (slots full while behind) cost no penalty but still charge the address', async () => {
  const t = await setup();
  const ip = '203.0.113.7';
  let readOnly = 0;
  let refused = 0;
  for (let i = 0; i < 48; i++) {
    const s = await t.stranger(ip);
    if (s.code) refused++;
    else if (t.gate.isReadOnly(s.peer)) readOnly++;
  }
  assert.equal(readOnly, MEMBERSHIP_DEFAULTS.maxReadOnlyPeers);
  assert.equal(refused, 48 - MEMBERSHIP_DEFAULTS.maxReadOnlyPeers);
  assert.deepEqual(t.penalties, [], 'excused: no peer penalty');
  // 40 excused refusals at half weight, no time passed: 20, the ban threshold.
  assert.equal(t.addressRefusals.count(ip, t.clock.now), 20);
  assert.equal(t.addressRefusals.isBanned(ip, t.clock.now), true, 'a host churning strangers gets banned');
  await t.gate.stop();
});

test('a read-only peer serving nothing is dropped after readOnlyIdleMs and cooled down; one that serves stays', async () => {
  const t = await setup();
  const idle = await t.stranger('198.51.100.1');
  const useful = await t.stranger('198.51.100.2');
  assert.ok(t.gate.isReadOnly(idle.peer) && t.gate.isReadOnly(useful.peer));
  t.clock.now += MEMBERSHIP_DEFAULTS.readOnlyIdleMs / 2;
  t.gate.served(useful.peer);
  t.clock.now += MEMBERSHIP_DEFAULTS.readOnlyIdleMs / 2;
  recheck(t.gate);
  assert.ok(t.gate.isReadOnly(idle.peer), 'not idle yet: exactly the bound');
  t.clock.now += 1;
  recheck(t.gate);
  assert.equal(t.gate.isReadOnly(idle.peer), false, 'idle past the bound: dropped');
  assert.equal(idle.conn.status, 'closed');
  assert.ok(t.gate.isReadOnly(useful.peer), 'served a batch that connected half-way: stays');
  assert.equal(await t.refusals('read-only-idle'), 1);
  assert.deepEqual(t.penalties, [], 'idling breaks no rule: no peer penalty');
  assert.equal(t.addressRefusals.count('198.51.100.1', t.clock.now), 1, 'its address pays a full refusal');
  // Serving stopped: the useful one goes too, readOnlyIdleMs after its last batch.
  t.clock.now += MEMBERSHIP_DEFAULTS.readOnlyIdleMs / 2;
  recheck(t.gate);
  assert.equal(t.gate.isReadOnly(useful.peer), false);

  // The idle key comes back during its cooldown: not taken read-only (refused, excused).
  const again = {
    ...idle.conn,
    id: 'again',
    status: 'open' as const,
    close: async () => {},
    abort: () => {},
  };
  t.conns.push(again);
  // Its state went with its connection (peer:disconnect): a fresh judgement.
  (t.gate as unknown as { peers: Map<string, unknown> }).peers.delete(idle.peer.toString());
  assert.equal(judge(t.gate, again, testCertificate(keyOf(idle.peer)!)), 'unknown-issuer');
  assert.equal(t.gate.isReadOnly(idle.peer), false);
  // After the cooldown it qualifies again.
  t.clock.now += MEMBERSHIP_DEFAULTS.readOnlyCooldownMs;
  (t.gate as unknown as { peers: Map<string, unknown> }).peers.delete(idle.peer.toString());
  assert.equal(judge(t.gate, again, testCertificate(keyOf(idle.peer)!)), undefined);
  assert.ok(t.gate.isReadOnly(idle.peer));
  await t.gate.stop();
});

test('admittedCount counts admitted peers only, not read-only ones', async () => {
  const t = await setup();
  const ro = await t.stranger('198.51.100.3');
  assert.ok(t.gate.isReadOnly(ro.peer));
  assert.equal(t.gate.admittedCount(), 0);
  // The roster we synced vouches for it now: admitted, and counted.
  const key = keyOf(ro.peer)!;
  t.roster.certified.set(key, testMember(key, 'ro'));
  recheck(t.gate);
  assert.ok(t.gate.isAdmitted(ro.peer));
  assert.equal(t.gate.admittedCount(), 1);
  await t.gate.stop();
});

test('only peers we chose serve read-only: strangers self-signing certificates get no slot (attack A1/A2)', async () => {
  // As node.ts wires it: the read-only sources are the bootstrap peers.
  const chosen = new Set<string>();
  const t = await setup({ readOnlySource: (p) => chosen.has(p.toString()) });
  // 40 strangers from many hosts, each with a certificate it signed itself (unknown issuer).
  for (let i = 0; i < 40; i++) {
    const s = await t.stranger(`203.0.113.${i + 1}`);
    assert.equal(s.code, 'unknown-issuer');
    assert.equal(t.gate.isReadOnly(s.peer), false);
  }
  assert.equal(await t.refusals('unknown-issuer'), 40);
  // A bootstrap peer whose issuer our stale roster does not know yet still serves us, with all
  // read-only slots free for it (the deadlock read-only exists for).
  const key = await generateKeyPair('Ed25519');
  chosen.add(peerIdFromPrivateKey(key).toString());
  const conn: FakeConn = {
    id: 'boot',
    remotePeer: peerIdFromPrivateKey(key),
    remoteAddr: multiaddr('/ip4/192.0.2.9/tcp/4001'),
    status: 'open',
    direction: 'outbound',
    close: async () => {},
    abort: () => {},
  };
  t.conns.push(conn);
  assert.equal(judge(t.gate, conn, testCertificate(keyOf(conn.remotePeer)!)), undefined);
  assert.equal(t.gate.isReadOnly(conn.remotePeer), true);
  await t.gate.stop();
});
