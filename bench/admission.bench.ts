/**
 * bench:admission — what roster enforcement costs a connection, and whether a stranger ever gets
 * through (issue 12's `connectMsOpen`/`connectMsRoster` and `refusedAttempts`/`attempts`).
 *
 * Real libp2p hosts in this process on loopback, with the node's req/resp stack. A connection is
 * "usable" when the first status request is answered: in roster mode that includes the admission
 * handshake (the request waits for it). Open and roster pairs are timed alternately, 20 of each,
 * so both see the same load. Then a node without a certificate tries 50 times, alternating TCP
 * and WebRTC-direct; an attempt counts as refused when it gets no status. The membership view is
 * plain data (node/testing/static-roster.ts); the lead's bench:membership feeds the real roster.
 * Last line: one JSON object with the figures.
 */
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { Registry } from 'prom-client';
import { createLogger } from '../node/log.ts';
import { AdmissionGate, createAdmissionMetrics } from '../node/p2p/admission-gate.ts';
import type { CairnLibp2p } from '../node/p2p/host.ts';
import type { Status } from '../node/p2p/messages.ts';
import { STATUS } from '../node/p2p/protocols.ts';
import { ReqResp } from '../node/p2p/reqresp.ts';
import { testChain } from '../node/testing/forge.ts';
import { startLoopbackHost, TCP_LOOPBACK, WEBRTC_DIRECT_LOOPBACK } from '../node/testing/loopback-host.ts';
import { StaticRoster, testCertificate, testMember } from '../node/testing/static-roster.ts';
import { median } from './stats.ts';

const SAMPLES = Number(process.env.BENCH_CONNECT_SAMPLES ?? 20);
const ATTEMPTS = Number(process.env.BENCH_STRANGER_ATTEMPTS ?? 50);
const say = (msg: string) => process.stderr.write(`${msg}\n`);
const log = createLogger('silent');
const dirs: string[] = [];
const roster = new StaticRoster();
const t = testChain();
/** Status as the node serves it, without its per-peer rate limit (we ask 20 times in a row). */
const STATUS_UNLIMITED = { ...STATUS, rateLimit: { points: 100_000, durationSec: 1 } };
const status: Status = {
  chainId: t.chain.chainId,
  genesisHash: t.chain.genesis.hash,
  headHash: t.chain.tip.hash,
  headHeight: 0,
  totalWork: t.chain.tip.chainWork,
  role: 'submind',
  capabilities: [],
};

interface Node {
  host: CairnLibp2p;
  id: PeerId;
  rr: ReqResp;
  gate: AdmissionGate | undefined;
  registry: Registry;
  tcp: Multiaddr;
  webrtc: Multiaddr;
}

let seed = 1;
async function node(mode: 'open' | 'on-chain' | 'certified' | 'stranger'): Promise<Node> {
  const s = seed++;
  const { identityFromSeed } = await import('../node/identity/identity.ts');
  const key = (await identityFromSeed(new Uint8Array(32).fill(s))).publicKeyHex;
  if (mode === 'on-chain') roster.onChain.set(key, testMember(key, `n${s}`));
  if (mode === 'certified') roster.certified.set(key, testMember(key, `n${s}`));
  const registry = new Registry();
  const gate =
    mode === 'open'
      ? undefined
      : new AdmissionGate({
          view: roster.view(mode === 'certified' ? testCertificate(key) : undefined),
          protocolId: '/cairn/bench/admission/1',
          penalise: () => {},
          metrics: createAdmissionMetrics(registry),
          log,
        });
  const { host, identity } = await startLoopbackHost(s, 'bench-adm', dirs, {
    listen: [TCP_LOOPBACK, WEBRTC_DIRECT_LOOPBACK],
    gater: gate ?? {},
    appScore: gate ? (p) => gate.gossipScore(p) : undefined,
  });
  await gate?.start(host);
  const rr = new ReqResp(
    host,
    '/cairn/bench',
    { penalise: () => {}, admitted: gate ? (p) => gate.whenAdmitted(p) : undefined },
    log,
  );
  await rr.register(STATUS_UNLIMITED, () => [status]);
  const addrs = host.getMultiaddrs();
  return {
    host,
    id: identity.peerId,
    rr,
    gate,
    registry,
    tcp: addrs.find((a) => a.toString().includes('/tcp/'))!,
    webrtc: addrs.find((a) => a.toString().includes('/webrtc-direct/'))!,
  };
}

async function disconnected(a: Node, b: Node): Promise<void> {
  await a.host.hangUp(b.id).catch(() => {});
  const until = Date.now() + 5_000;
  while (a.host.getConnections(b.id).length || b.host.getConnections(a.id).length) {
    if (Date.now() > until) throw new Error('connection did not close');
    await sleep(5);
  }
}

/** Dial to first status answer, in ms. */
async function connectMs(from: Node, to: Node, addr: Multiaddr): Promise<number> {
  const started = performance.now();
  await from.host.dial(addr);
  await from.rr.request(to.id, STATUS_UNLIMITED, status);
  const ms = performance.now() - started;
  await disconnected(from, to);
  // libp2p resets more than 5 inbound connections per second from one address (the connection
  // manager's inboundConnectionThreshold): keep each server under it.
  await sleep(250);
  return ms;
}

const openServer = await node('open');
const openClient = await node('open');
const rosterServer = await node('on-chain');
const rosterClient = await node('certified');
const open: Record<string, number[]> = { tcp: [], webrtc: [] };
const gated: Record<string, number[]> = { tcp: [], webrtc: [] };
// One warm-up pair each (first-dial costs: address books, WebRTC certificate handling).
await connectMs(openClient, openServer, openServer.tcp);
await connectMs(rosterClient, rosterServer, rosterServer.tcp);
for (let i = 0; i < SAMPLES; i++) {
  for (const tr of ['tcp', 'webrtc'] as const) {
    open[tr]!.push(
      await connectMs(openClient, openServer, tr === 'tcp' ? openServer.tcp : openServer.webrtc),
    );
    gated[tr]!.push(
      await connectMs(rosterClient, rosterServer, tr === 'tcp' ? rosterServer.tcp : rosterServer.webrtc),
    );
  }
}
const r1 = (x: number) => Math.round(x * 10) / 10;
const connectMsOpen = r1(median(open.tcp!));
const connectMsRoster = r1(median(gated.tcp!));
say(`connect (TCP, median of ${SAMPLES}): open ${connectMsOpen} ms, roster ${connectMsRoster} ms`);
say(`connect (WebRTC-direct): open ${r1(median(open.webrtc!))} ms, roster ${r1(median(gated.webrtc!))} ms`);

const stranger = await node('stranger');
let refusedAttempts = 0;
for (let i = 0; i < ATTEMPTS; i++) {
  const addr = i % 2 === 0 ? rosterServer.tcp : rosterServer.webrtc;
  const got = await stranger.host
    .dial(addr, { signal: AbortSignal.timeout(5_000) })
    .then(() => stranger.rr.request(rosterServer.id, STATUS_UNLIMITED, status, 3_000))
    .then(
      () => true,
      () => false,
    );
  if (!got) refusedAttempts++;
  await disconnected(stranger, rosterServer).catch(() => {});
  // Forget the failures, so libp2p's dial backoff does not refuse the next attempt locally:
  // every attempt reaches the server.
  await stranger.host.peerStore.delete(rosterServer.id).catch(() => {});
  await sleep(250);
}
const counted = await rosterServer.registry.getSingleMetric('cairn_membership_refusals_total')!.get();
const byCode = Object.fromEntries(
  counted.values.map((v) => [`${v.labels.code}/${v.labels.transport}`, v.value] as const),
);
say(`stranger: ${refusedAttempts}/${ATTEMPTS} refused; counted ${JSON.stringify(byCode)}`);

for (const n of [openServer, openClient, rosterServer, rosterClient, stranger])
  for (const c of n.host.getConnections()) c.abort(new Error('bench over'));
await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
console.log(
  JSON.stringify({
    connectMsOpen,
    connectMsRoster,
    connectRatio: r1(connectMsRoster / connectMsOpen),
    connectMsOpenWebrtc: r1(median(open.webrtc!)),
    connectMsRosterWebrtc: r1(median(gated.webrtc!)),
    samples: SAMPLES,
    refusedAttempts,
    attempts: ATTEMPTS,
    refusalsCounted: byCode,
  }),
);
// WebRTC listeners are left to the process exit (node-datachannel aborts on teardown under STUN).
process.exit(0);
