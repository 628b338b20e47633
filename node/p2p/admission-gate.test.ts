/**
 * Issue 12 item 2 between real libp2p hosts on loopback, over TCP and WebRTC-direct: a stranger
 * (no certificate, a certificate for another key, or no handshake at all) is refused, gets no
 * status and no blocks, and its gossip reaches no one while members are admitted, served and
 * gossip with each other; revoking a member disconnects it at once and refuses its redials;
 * every refusal is counted by code and transport. mDNS-style discovery dials members only. A
 * node that is behind takes peers it cannot judge yet read-only: it fetches from them and
 * serves them nothing.
 *
 * The membership view is plain data implementing the contract (node/testing/static-roster.ts):
 * keys the "chain" records, keys holding a test certificate (`cert:<key>`), revoked keys.
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { Registry } from 'prom-client';
import type { Hex } from '../chain/bytes.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import { createLogger } from '../log.ts';
import type { MembershipView } from '../membership/view.ts';
import { createNodeMetrics } from '../metrics.ts';
import { forgeChain, knowledgeEntry, TEST_NOW, testChain, testKey } from '../testing/forge.ts';
import { startLoopbackHost, TCP_LOOPBACK, WEBRTC_DIRECT_LOOPBACK } from '../testing/loopback-host.ts';
import { StaticRoster, testCertificate, testMember } from '../testing/static-roster.ts';
import { AddressRefusals } from './address-refusals.ts';
import {
  AdmissionGate,
  type AdmissionGateOptions,
  createAdmissionMetrics,
  GOSSIP_SCORE,
  keyOf,
} from './admission-gate.ts';
import { Gossip, gossipTopics } from './gossip.ts';
import type { CairnLibp2p } from './host.ts';
import type { Status } from './messages.ts';
import { PeerManager } from './peer-manager.ts';
import type { PeerAction } from './peer-scores.ts';
import { PeerScores } from './peer-scores.ts';
import { BLOCKS_BY_RANGE, STATUS } from './protocols.ts';
import { ReqResp, ReqRespError } from './reqresp.ts';
import { serveChainProtocols } from './serve-chain.ts';

const log = createLogger('silent');
const TAG = 'adm-test';
const PROTOCOL = `/cairn/${TAG}/admission/1`;
const certFor = testCertificate;
const none = () => undefined;
const member = testMember;

interface Side {
  name: string;
  host: CairnLibp2p;
  id: PeerId;
  key: Hex;
  gate: AdmissionGate | undefined;
  registry: Registry;
  rr: ReqResp;
  gossip: Gossip;
  /** Entries that passed this side's gossip validation, with their sender. */
  entries: { from: string; content: string }[];
  /** Every gossip message this side's gossipsub delivered (passed validation), as text. */
  heard: string[];
  statusFrom: string[];
  penalties: { peer: string; action: PeerAction; reason: string }[];
  tcp: Multiaddr;
  webrtc: Multiaddr;
}

const roster = new StaticRoster();
const dirs: string[] = [];
const sides: Side[] = [];
const chainBlocks: SealedBlock[] = [];
const t0 = testChain();
let seeds = 40;

/**
 * A node with the gate (when `certificate` is not `'no-gate'`) and the real serving, gossip and
 * req/resp stack, listening on TCP and WebRTC-direct.
 */
async function startSide(
  name: string,
  /** The certificate this node presents, given its key; `'no-gate'`: it never runs the handshake. */
  certificate: ((key: Hex) => Uint8Array | undefined) | 'no-gate',
  enroll?: (key: Hex) => void,
  gateOptions: Partial<AdmissionGateOptions> = {},
): Promise<Side> {
  const seed = seeds++;
  const { identityFromSeed } = await import('../identity/identity.ts');
  const key = (await identityFromSeed(new Uint8Array(32).fill(seed))).publicKeyHex;
  enroll?.(key);
  const registry = new Registry();
  const penalties: Side['penalties'] = [];
  const penalise = (peer: PeerId, action: PeerAction, reason: string) =>
    penalties.push({ peer: peer.toString(), action, reason });
  let gossipRef: Gossip | undefined;
  const gate =
    certificate === 'no-gate'
      ? undefined
      : new AdmissionGate({
          view: roster.view(certificate(key)),
          protocolId: PROTOCOL,
          penalise,
          metrics: createAdmissionMetrics(registry),
          log,
          onStateChange: (p) => gossipRef?.rescore(p),
          ...gateOptions,
        });
  const { host, identity } = await startLoopbackHost(seed, 'adm', dirs, {
    listen: [TCP_LOOPBACK, WEBRTC_DIRECT_LOOPBACK],
    gater: gate ?? {},
    appScore: gate ? (p) => gate.gossipScore(p) : undefined,
    admitted: gate ? (p) => gate.whenAdmitted(p) : undefined,
  });
  assert.equal(identity.publicKeyHex, key);
  await gate?.start(host);
  const admitted = gate ? (p: PeerId) => gate.whenAdmitted(p) : undefined;
  // As node.ts wires it: we fetch from read-only peers, and serve them nothing.
  const rr = new ReqResp(
    host,
    `/cairn/${TAG}`,
    {
      penalise,
      admitted: gate ? (p) => gate.whenFetchable(p) : undefined,
      refuses: (p) => gate?.isReadOnly(p) ?? false,
    },
    log,
  );
  const statusFrom: string[] = [];
  await serveChainProtocols(
    rr,
    t0.chain,
    { readEncodedBlocks: (hs) => new Map(hs.map((h) => [h, t0.stored.get(h)!.encoded] as const)) },
    {
      receiveStatus: (p: PeerId, s: Status) => {
        statusFrom.push(p.toString());
        return s;
      },
    },
  );
  const entries: Side['entries'] = [];
  const gossip = new Gossip(
    host.services.pubsub,
    gossipTopics(TAG),
    1024 * 1024,
    64 * 1024,
    {
      onBlock: async () => ({ status: 'duplicate' }) as never,
      onEntry: async (e: SealedEntry, from) => {
        entries.push({ from: from.toString(), content: (e.payload as { content: string }).content });
        return { status: 'added', evicted: [] };
      },
      penalise,
      admitted,
    },
    createNodeMetrics(),
  );
  gossipRef = gossip;
  gossip.start();
  const heard: string[] = [];
  host.services.pubsub.addEventListener('gossipsub:message', (evt) =>
    heard.push(new TextDecoder().decode(evt.detail.msg.data)),
  );
  const addrs = host.getMultiaddrs();
  const side: Side = {
    name,
    host,
    id: identity.peerId,
    key,
    gate,
    registry,
    rr,
    gossip,
    entries,
    heard,
    statusFrom,
    penalties,
    tcp: addrs.find((a) => a.toString().includes('/tcp/'))!,
    webrtc: addrs.find((a) => a.toString().includes('/webrtc-direct/'))!,
  };
  sides.push(side);
  return side;
}

async function refusals(side: Side, code: string, transport: string): Promise<number> {
  const m = await side.registry.getSingleMetric('cairn_membership_refusals_total')!.get();
  return m.values.find((v) => v.labels.code === code && v.labels.transport === transport)?.value ?? 0;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5_000): Promise<number> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
  return performance.now() - start;
}

const connected = (a: Side, b: Side) => a.host.getConnections(b.id).some((c) => c.status === 'open');
const subscribed = (a: Side, b: Side) =>
  a.host.services.pubsub.getSubscribers(gossipTopics(TAG).entries).some((p) => p.equals(b.id));

const inMesh = (a: Side, b: Side) =>
  (a.host.services.pubsub as unknown as { getMeshPeers(t: string): string[] })
    .getMeshPeers(gossipTopics(TAG).entries)
    .includes(b.id.toString());

async function publish(side: Side, content: string, n: number): Promise<void> {
  await side.gossip.publishEntry(knowledgeEntry(testKey(n), TEST_NOW - 1000, content));
}

let a: Side; // on the chain (genesis member): presents no certificate
let b: Side; // holds a certificate
let c: Side; // holds a certificate; reaches a over WebRTC-direct

before(async () => {
  chainBlocks.push(...forgeChain(t0.chain, t0.chain.tip, 5));
  for (const blk of chainBlocks) assert.equal((await t0.submit(blk)).status, 'connected');
  // a judges expiring certificates every 300 ms (default 5 s).
  a = await startSide('a', none, (k) => roster.onChain.set(k, member(k, 'a')), { recheckMs: 300 });
  b = await startSide('b', certFor, (k) => roster.certified.set(k, member(k, 'b')));
  c = await startSide('c', certFor, (k) => roster.certified.set(k, member(k, 'c')));
});

after(async () => {
  await Promise.all(sides.flatMap((s) => s.host.getConnections().map((x) => x.abort(new Error('end')))));
  for (const s of sides) {
    await s.gate?.stop();
    s.gossip.stop();
  }
  await sleep(200);
  // Bounded, and said out loud if not: a libp2p stop that hangs must not hang the suite silently.
  await Promise.all(
    sides.map(async (s) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<false>((r) => {
        timer = setTimeout(() => r(false), 5_000);
      });
      const stopped = await Promise.race([
        Promise.resolve(s.host.stop()).then(
          () => true,
          () => true,
        ),
        late,
      ]);
      clearTimeout(timer);
      if (!stopped) process.stderr.write(`host ${s.name} did not stop within 5 s\n`);
    }),
  );
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  // node-datachannel's native threads outlive every closed WebRTC connection and, in about one
  // run in five, kept this process alive after everything above had finished: release them.
  (await import('node-datachannel')).cleanup();
});

describe('members', () => {
  test('a member with a certificate is admitted over TCP, served and heard', async () => {
    const started = performance.now();
    await b.host.dial(a.tcp);
    const [status] = await b.rr.request(a.id, STATUS, statusOf());
    const handshakeMs = performance.now() - started;
    assert.equal(status?.headHeight, 5);
    assert.ok(a.gate!.isAdmitted(b.id) && b.gate!.isAdmitted(a.id));
    assert.equal(a.gate!.member(b.id)?.name, 'b');
    assert.equal(b.gate!.member(a.id)?.name, 'a');
    assert.ok(handshakeMs < 1500, `connect + admission + status took ${handshakeMs.toFixed(0)} ms`);
    const blocks = await b.rr.request(a.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 5 });
    assert.deepEqual(
      blocks.map((x) => x.hashHex),
      chainBlocks.map((x) => x.hashHex),
    );
    assert.equal(a.gate!.gossipScore(b.id.toString()), GOSSIP_SCORE.admitted);
    await until('b to see a subscribed', () => subscribed(b, a));
    // Published until one arrives: gossipsub's own streams open a moment after the subscription.
    let n = 0;
    await until('a to accept b’s entry', async () => {
      await publish(b, `from member b ${n}`, 100 + n++);
      await sleep(100);
      return a.entries.some((e) => e.content.startsWith('from member b'));
    });
    assert.equal(a.entries.find((e) => e.content.startsWith('from member b'))?.from, b.id.toString());
    // Admitted members form a mesh (no PRUNE from a stale pending score): within a few heartbeats.
    await until('a and b in each other’s mesh', () => inMesh(a, b) && inMesh(b, a), 5_000);
    // Identify answered once admitted: b knows a's agent and both of its listen addresses.
    const seen = await b.host.peerStore.get(a.id);
    assert.ok(seen.metadata.has('AgentVersion'), 'b identified a');
    assert.ok(seen.addresses.some((x) => x.multiaddr.toString().includes('/webrtc-direct')));
  });

  test('a member is admitted over WebRTC-direct', async () => {
    const conn = await c.host.dial(a.webrtc);
    assert.ok(conn.remoteAddr.toString().includes('/webrtc-direct'));
    const [status] = await c.rr.request(a.id, STATUS, statusOf());
    assert.equal(status?.headHeight, 5);
    assert.ok(a.gate!.isAdmitted(c.id) && c.gate!.isAdmitted(a.id));
    assert.ok(a.statusFrom.includes(c.id.toString()));
  });
});

function statusOf(): Status {
  return {
    chainId: t0.chain.chainId,
    genesisHash: t0.chain.genesis.hash,
    headHash: t0.chain.tip.hash,
    headHeight: t0.chain.tip.height,
    totalWork: t0.chain.tip.chainWork,
    role: 'submind',
    capabilities: [],
  };
}

describe('strangers', () => {
  for (const transport of ['tcp', 'webrtc-direct'] as const) {
    test(`a node without a certificate is refused at once over ${transport}`, async () => {
      const s = await startSide(`nocert-${transport}`, none);
      const before = await refusals(a, 'no-certificate', transport);
      const started = performance.now();
      // The dial itself may succeed (the refusal comes one round trip later) or already fail.
      await s.host.dial(transport === 'tcp' ? a.tcp : a.webrtc).catch(() => {});
      await until(
        'a to refuse the stranger',
        async () => (await refusals(a, 'no-certificate', transport)) > before,
      );
      await until('the connection to close', () => !connected(a, s));
      const ms = performance.now() - started;
      assert.ok(ms < 1500, `refusal took ${ms.toFixed(0)} ms`);
      assert.equal(a.gate!.isAdmitted(s.id), false);
      // a told it why, and it recorded that a refused it rather than blaming a.
      assert.equal(s.gate!.isAdmitted(a.id), false);
      // A stranger never admitted gets no score record (its address answers for it).
      assert.equal(
        a.penalties.some((p) => p.peer === s.id.toString()),
        false,
      );
      await assert.rejects(s.rr.request(a.id, STATUS, statusOf()), ReqRespError);
      assert.equal(a.statusFrom.includes(s.id.toString()), false);
    });
  }

  test('a certificate naming another key is refused as wrong-subject, and not scored', async () => {
    const s = await startSide('forger', () => certFor(c.key));
    const before = await refusals(a, 'wrong-subject', 'tcp');
    await s.host.dial(a.tcp).catch(() => {});
    await until('a to refuse the forger', async () => (await refusals(a, 'wrong-subject', 'tcp')) > before);
    // Attack review #11: strangers' score records evicted members' bans; never-admitted peers
    // are the gate's and the address table's, not the score table's.
    assert.equal(
      a.penalties.some((p) => p.peer === s.id.toString()),
      false,
    );
    await until('the connection to close', () => !connected(a, s));
  });

  for (const transport of ['tcp', 'webrtc-direct'] as const) {
    test(`a stranger that skips the handshake learns nothing and its gossip reaches no one (${transport})`, async () => {
      // No gate at all: it speaks every Cairn protocol but never presents a certificate.
      // b, a member, is connected to a throughout: it must hear a, and nothing of the stranger.
      if (!connected(b, a)) await b.host.dial(a.tcp);
      await until('a and b to see each other subscribed', () => subscribed(a, b) && subscribed(b, a));
      const s = await startSide(`raw-${transport}`, 'no-gate');
      const identified: string[] = [];
      s.host.addEventListener('peer:identify', (evt) => identified.push(evt.detail.peerId.toString()));
      const heardBefore = s.heard.length;
      const before = await refusals(a, 'handshake-timeout', transport);
      const started = performance.now();
      await s.host.dial(transport === 'tcp' ? a.tcp : a.webrtc);
      await until('s to see a subscribed', () => subscribed(s, a));
      // While pending: a's score keeps it out of meshes and below the publish threshold.
      assert.equal(a.gate!.gossipScore(s.id.toString()), GOSSIP_SCORE.pending);
      const asked = Promise.allSettled([
        s.rr.request(a.id, STATUS, statusOf()),
        s.rr.request(a.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 5 }),
      ]);
      // What may wait for its verdict is bounded: beyond 128 waiters, refused at once.
      let early = 0;
      const waits = Array.from({ length: 200 }, () => a.gate!.whenAdmitted(s.id) as Promise<boolean>);
      for (const w of waits) void w.then(() => early++);
      await sleep(50);
      assert.ok(early >= 72 && early < 200, `${early} of 200 answered before the verdict`);
      await publish(s, `stranger gossip ${transport}`, 2);
      await publish(a, `member gossip while ${transport} stranger pending`, 3);
      const [status, blocks] = await asked;
      assert.equal(status.status, 'rejected', 'a stranger got a status');
      // A reset stream reads as an empty answer to a protocol with no minimum of chunks.
      assert.ok(blocks.status === 'rejected' || blocks.value.length === 0, 'a stranger got blocks');
      await until(
        'a to refuse the silent stranger',
        async () => (await refusals(a, 'handshake-timeout', transport)) > before,
        4_000,
      );
      const ms = performance.now() - started;
      assert.ok(ms >= 1_900 && ms < 3_500, `refused after ${ms.toFixed(0)} ms (deadline 2 s)`);
      await until('the connection to close', () => !connected(a, s));
      await sleep(300);
      assert.equal(a.statusFrom.includes(s.id.toString()), false, 'a took a stranger’s status');
      for (const m of [a, b, c])
        assert.equal(
          m.entries.some((e) => e.content === `stranger gossip ${transport}`),
          false,
          `${m.name} accepted the stranger’s gossip`,
        );
      assert.equal(
        b.heard.some((h) => h.includes(`stranger gossip ${transport}`)),
        false,
        'relayed to b',
      );
      assert.equal(s.heard.length, heardBefore, `the stranger heard gossip: ${s.heard.slice(heardBefore)}`);
      // Identify was not answered while it was pending: no agent, no other listen address of a.
      assert.equal(identified.includes(a.id.toString()), false, 'the stranger identified a');
      const seen = await s.host.peerStore.get(a.id);
      assert.equal(seen.metadata.has('AgentVersion'), false, 'the stranger read a’s agent version');
      const other = transport === 'tcp' ? '/webrtc-direct' : '/tcp/';
      assert.equal(
        seen.addresses.some((x) => x.multiaddr.toString().includes(other)),
        false,
        `the stranger learnt a's ${other} address`,
      );
      // b, a member connected to a, did get a's message.
      await until('b to hear a’s message', () =>
        b.heard.some((h) => h.includes(`member gossip while ${transport}`)),
      );
    });
  }
});

describe('revocation', () => {
  test('a revoked member is disconnected at once and refused on reconnect, on both transports', async () => {
    await until('b connected to a', () => connected(a, b) && a.gate!.isAdmitted(b.id));
    await until('c connected to a', () => connected(a, c) && a.gate!.isAdmitted(c.id));
    const started = performance.now();
    roster.revoke(b.key);
    const ms = await until('a to drop b', () => !connected(a, b), 2_000);
    assert.ok(ms < 1000, `disconnected after ${(performance.now() - started).toFixed(0)} ms`);
    assert.equal(await refusals(a, 'revoked', 'tcp'), 1);
    assert.ok(a.penalties.some((p) => p.peer === b.id.toString() && p.action === 'fatal'));
    // c, not revoked, stays.
    assert.ok(connected(a, c) && a.gate!.isAdmitted(c.id));
    // b notices the reset (a dial while its side still looks open would just return that one).
    await until('b to see the connection gone', () => !connected(b, a), 3_000);
    for (const addr of [a.tcp, a.webrtc]) {
      const attempt = await b.host
        .dial(addr, { signal: AbortSignal.timeout(3_000) })
        .then(() => 'connected')
        .catch(() => 'refused');
      if (attempt === 'connected') await until('a to drop b again', () => !connected(a, b), 2_000);
      assert.equal(a.gate!.isAdmitted(b.id), false);
    }
    assert.ok((await refusals(a, 'revoked', 'tcp')) >= 2, 'the TCP redial was refused as revoked');
    assert.ok(
      (await refusals(a, 'revoked', 'webrtc-direct')) >= 1,
      'the WebRTC redial was refused as revoked',
    );
    // a does not dial it either (libp2p's own redials included).
    await assert.rejects(a.host.dial(b.tcp));
  });
});

describe('expiry and address bans', () => {
  test('a member whose certificate expires is disconnected and then refused as expired', async () => {
    const f = await startSide('f', certFor);
    roster.certified.set(f.key, { ...member(f.key, 'f'), expiresAtMs: Date.now() + 1_000 });
    await f.host.dial(a.tcp);
    const [status] = await f.rr.request(a.id, STATUS, statusOf());
    assert.equal(status?.headHeight, 5);
    await until('a to drop f once its certificate expired', () => !connected(a, f), 3_000);
    assert.equal(await refusals(a, 'expired', 'tcp'), 1);
    await until('f to see the connection gone', () => !connected(f, a), 3_000);
    await f.host.dial(a.tcp).catch(() => {});
    await until('the redial refused as expired', async () => (await refusals(a, 'expired', 'tcp')) === 2);
  });

  test('an address that keeps failing is refused at the gater, for non-members only', async () => {
    const g = await startSide('g', none, (k) => roster.onChain.set(k, member(k, 'g')), {
      // Three refusals (decayed a little between them) reach 2.5. Loopback stands in for a LAN
      // address here (it is exempt by default).
      addressRefusals: new AddressRefusals({ banAt: 2.5, halfLifeMs: 3_600_000, exempt: [] }),
    });
    // A device admitted by its certificate alone (g's chain does not record it), before the ban.
    const cert = await startSide('g-cert', certFor, (k) => roster.certified.set(k, member(k, 'g-cert')));
    await cert.host.dial(g.tcp);
    await until('g to admit the certified device', () => g.gate!.isAdmitted(cert.id));
    await cert.host.hangUp(g.id);
    await until('g to forget it', () => !connected(g, cert));
    for (let i = 0; i < 3; i++) {
      const s = await startSide(`flood-${i}`, none);
      await s.host.dial(g.tcp).catch(() => {});
      await until('g to refuse it', async () => (await refusals(g, 'no-certificate', 'tcp')) === i + 1);
    }
    assert.ok(g.gate!.addressRefusals.isBanned('127.0.0.1', Date.now()));
    // A fourth stranger (a fresh key) from the same address: refused before any handshake.
    const late = await startSide('flood-late', none);
    await assert.rejects(late.host.dial(g.tcp));
    assert.equal(await refusals(g, 'banned-address', 'tcp'), 1);
    assert.equal(await refusals(g, 'no-certificate', 'tcp'), 3, 'no handshake ran for it');
    // A member the chain records, from the same address, still gets in.
    await a.host.dial(g.tcp);
    await until('g to admit a', () => g.gate!.isAdmitted(a.id));
    // So does the certified device that passed the handshake before: the ban is for strangers.
    await cert.host.dial(g.tcp);
    await until('g to admit the certified device again', () => g.gate!.isAdmitted(cert.id));
    assert.equal(await refusals(g, 'banned-address', 'tcp'), 1);
  });
});

describe('catching up', () => {
  // Each behind side judges read-only peers on the timer only when told to (rejudge).
  const slow = { recheckMs: 60_000 };
  const penalisedFor = (side: Side, peer: Side) =>
    side.penalties.filter((p) => p.peer === peer.id.toString());

  test('behind, a peer whose issuer we do not know yet serves us read-only, and is served nothing', async () => {
    let behind = true;
    // m holds a certificate from an admin j's roster does not know (not in `certified`).
    const m = await startSide('m', certFor);
    const j = await startSide('j', certFor, (k) => roster.certified.set(k, member(k, 'j')), {
      ...slow,
      behind: () => behind,
    });
    await j.host.dial(m.tcp);
    await until('j to take m read-only', () => j.gate!.isReadOnly(m.id));
    await until('m to admit j', () => m.gate!.isAdmitted(j.id));
    assert.equal(j.gate!.isAdmitted(m.id), false);
    // We fetch from it: its status and its blocks.
    const [status] = await j.rr.request(m.id, STATUS, statusOf());
    assert.equal(status?.headHeight, 5);
    const blocks = await j.rr.request(m.id, BLOCKS_BY_RANGE, { startHeight: 1, count: 5 });
    assert.deepEqual(
      blocks.map((x) => x.hashHex),
      chainBlocks.map((x) => x.hashHex),
    );
    // We serve it nothing: no status, no identify; and none of its gossip is taken.
    await assert.rejects(m.rr.request(j.id, STATUS, statusOf()), ReqRespError);
    assert.equal(j.statusFrom.includes(m.id.toString()), false);
    assert.equal((await m.host.peerStore.get(j.id)).metadata.has('AgentVersion'), false, 'm identified j');
    assert.equal(j.gate!.gossipScore(m.id.toString()), GOSSIP_SCORE['read-only']);
    await until('m to see j subscribed', () => subscribed(m, j));
    for (let i = 0; i < 3; i++) await publish(m, `read-only gossip ${i}`, 700 + i);
    await sleep(500);
    assert.equal(
      j.entries.some((e) => e.from === m.id.toString()),
      false,
      'j took gossip from m',
    );
    // No penalty, no refusal, while behind.
    assert.deepEqual(penalisedFor(j, m), []);
    assert.equal(await refusals(j, 'unknown-issuer', 'tcp'), 0);
    // Caught up, and our roster still does not vouch for it: refused, and it costs now.
    behind = false;
    j.gate!.rejudge();
    assert.equal(j.gate!.isReadOnly(m.id), false);
    assert.equal(await refusals(j, 'unknown-issuer', 'tcp'), 1);
    assert.ok(penalisedFor(j, m).some((p) => /unknown-issuer/.test(p.reason)));
    await until('j to drop m', () => !connected(j, m));
  });

  test('a peer we take read-only is not shown our certificate', async () => {
    // j is on the chain, so m admits it without a certificate; m records what j's answer carried.
    let mKey: Hex | undefined;
    const shown = new Map<Hex, Uint8Array | undefined>();
    const base = roster.view(undefined);
    const recording: MembershipView = {
      ...base,
      admit: (key, cert, now) => {
        shown.set(key, cert);
        return base.admit(key, cert, now);
      },
      ownCertificate: () => (mKey ? certFor(mKey) : undefined),
    };
    const m = await startSide(
      'm4',
      certFor,
      (k) => {
        mKey = k;
      },
      { view: recording },
    );
    const j = await startSide('j4', certFor, (k) => roster.onChain.set(k, member(k, 'j4')), {
      ...slow,
      behind: () => true,
    });
    await m.host.dial(j.tcp);
    await until('j4 to take m4 read-only', () => j.gate!.isReadOnly(m.id));
    await until('m4 to admit j4', () => m.gate!.isAdmitted(j.id));
    assert.ok(shown.has(j.key), 'm4 judged j4');
    assert.equal(shown.get(j.key), undefined, "j4's answer carried its certificate to a read-only peer");
  });

  test('a read-only peer is admitted once the roster we synced vouches for it', async () => {
    const m = await startSide('m2', certFor);
    const j = await startSide('j2', certFor, (k) => roster.certified.set(k, member(k, 'j2')), {
      ...slow,
      behind: () => true,
    });
    await j.host.dial(m.tcp);
    await until('j2 to take m2 read-only', () => j.gate!.isReadOnly(m.id));
    // The block naming m2's admin arrives: our tip moved.
    roster.certified.set(m.key, member(m.key, 'm2'));
    j.gate!.rejudge();
    assert.ok(j.gate!.isAdmitted(m.id));
    assert.equal(j.gate!.member(m.id)?.name, 'm2');
    const [status] = await m.rr.request(j.id, STATUS, statusOf());
    assert.equal(status?.headHeight, 5, 'j2 serves m2 now');
  });

  test('not-yet-valid counts only within the clock skew; read-only peers are bounded', async () => {
    const soon = await startSide('soon', certFor, (k) =>
      roster.certified.set(k, member(k, 'soon', { issuedAtMs: Date.now() + 60_000 })),
    );
    const later = await startSide('later', certFor, (k) =>
      roster.certified.set(k, member(k, 'later', { issuedAtMs: Date.now() + 10 * 60_000 })),
    );
    const extra = await startSide('extra', certFor);
    const j = await startSide('j3', certFor, (k) => roster.certified.set(k, member(k, 'j3')), {
      ...slow,
      behind: () => true,
      maxReadOnlyPeers: 1,
    });
    await j.host.dial(soon.tcp);
    await until('j3 to take soon read-only', () => j.gate!.isReadOnly(soon.id));
    await j.host.dial(later.tcp).catch(() => {});
    await until('j3 to refuse later', async () => (await refusals(j, 'not-yet-valid', 'tcp')) === 1);
    // Over the bound: refused, though it would qualify.
    await j.host.dial(extra.tcp).catch(() => {});
    await until('j3 to refuse extra', async () => (await refusals(j, 'unknown-issuer', 'tcp')) === 1);
    assert.equal(j.gate!.isReadOnly(extra.id), false);
    assert.ok(j.gate!.isReadOnly(soon.id));
    // Behind, neither refusal costs the peer anything.
    assert.deepEqual([...penalisedFor(j, later), ...penalisedFor(j, extra)], []);
  });
});

describe('discovery', () => {
  test('discovered peers are dialled only when the chain records them as members', async () => {
    const d = await startSide('d', none, (k) => roster.onChain.set(k, member(k, 'd')));
    const stranger = await startSide('e', none);
    const pm = new PeerManager({
      host: a.host,
      reqresp: a.rr,
      scores: new PeerScores(),
      ourStatus: statusOf,
      metrics: createNodeMetrics(),
      log,
      mayDial: (p) => a.gate!.mayDial(p),
    });
    pm.start();
    try {
      assert.equal(a.gate!.mayDial(d.id), true);
      assert.equal(a.gate!.mayDial(stranger.id), false);
      assert.equal(a.gate!.mayDial(b.id), false, 'a revoked member is not dialled');
      for (const s of [stranger, d]) {
        // What libp2p does with a discovery before announcing it: the addresses go to the peer store.
        await a.host.peerStore.merge(s.id, { multiaddrs: [s.tcp] });
        a.host.safeDispatchEvent('peer:discovery', { detail: { id: s.id, multiaddrs: [s.tcp] } });
      }
      await until('a to dial d', () => connected(a, d) && a.gate!.isAdmitted(d.id));
      await sleep(300);
      assert.equal(connected(a, stranger), false, 'a dialled a discovered stranger');
    } finally {
      pm.stop();
    }
  });
});

test('keyOf reads the Ed25519 key of a peer id', () => {
  assert.equal(keyOf(a.id), a.key);
});
