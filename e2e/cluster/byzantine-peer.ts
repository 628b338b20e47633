/**
 * A Byzantine peer for cluster tests: a real libp2p node in the test process (the node's own
 * host: TCP on loopback, noise, yamux, identify, gossipsub with Cairn's message ids) that
 * speaks Cairn's gossip topics and req/resp protocols, and says whatever the test wants.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep, setImmediate as yieldToLoop } from 'node:timers/promises';
import type { PeerId, Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { Registry } from 'prom-client';
import { signBlock } from '../../node/chain/authoring.ts';
import { encodeHeader } from '../../node/chain/block-codec.ts';
import type { BlockNode } from '../../node/chain/block-tree.ts';
import { Chain } from '../../node/chain/chain.ts';
import { chainIdHex, type NetworkConfig } from '../../node/chain/network-config.ts';
import type { SigningKey } from '../../node/chain/signature.ts';
import type { BlockHeader, SealedBlock, SealedEntry } from '../../node/chain/types.ts';
import { identityFromSeed, type NodeIdentity } from '../../node/identity/identity.ts';
import { createLogger } from '../../node/log.ts';
import type { Member, MembershipView } from '../../node/membership/view.ts';
import { searchNonce } from '../../node/mining/nonce-search.ts';
import { AdmissionGate, createAdmissionMetrics } from '../../node/p2p/admission-gate.ts';
import { type GossipTopics, gossipTopics } from '../../node/p2p/gossip.ts';
import { type CairnLibp2p, createHost } from '../../node/p2p/host.ts';
import { BLOCKS_BY_RANGE } from '../../node/p2p/protocols.ts';
import { type ProtocolSpec, ReqResp } from '../../node/p2p/reqresp.ts';
import { type ForgeOptions, forgeBlock, knowledgeEntry, testKey } from '../../node/testing/forge.ts';
import { assertLoopback } from './addrs.ts';
import type { ClusterRoster, RosterSpec } from './roster.ts';

/**
 * What an insider attacker holds: an ordinary member's rights to mine blocks and submit entries
 * (not `coordinate`, `relay` or admin). Insiders are the threat a roster leaves: strangers are
 * refused at connect (membership.test.ts).
 */
export const INSIDER_CAPABILITIES = ['mine', 'submit'] as const;

/** A cluster roster whose pool identities from `first` on are insiders (the nodes take those before). */
export const insiderRoster = (first: number): RosterSpec => ({
  member: (i) => (i >= first ? { name: `insider${i}`, capabilities: [...INSIDER_CAPABILITIES] } : {}),
});

/** Hands out the roster's insider identities in order, from pool index `first`: one per attacker. */
export function insiders(roster: ClusterRoster | undefined, first: number) {
  let next = first;
  return (): { seed: Uint8Array; key: SigningKey; index: number } => {
    if (!roster) throw new Error('insiders need a roster network');
    const index = next++;
    const seed = roster.seeds[index];
    const key = roster.keys[index];
    if (!seed || !key) throw new Error(`the cluster roster has no identity ${index}; raise roster.size`);
    return { seed, key, index };
  };
}

/** Where a peer can be reached: what the harness knows of a running node. */
export interface Target {
  readonly name: string;
  readonly peerId: string;
  readonly addrs: readonly string[];
}

/** What came back on a raw request stream: the response frames, or how the stream failed. */
export interface RawAnswer {
  /** Length-prefixed frames the responder wrote ([result byte][payload] each). */
  readonly frames: Uint8Array[];
  /** Bytes after the last complete frame (a responder that followed the protocol leaves none). */
  readonly trailing: number;
  /** Set when the stream could not be opened or failed while reading. */
  readonly error?: string;
}

/** Answers an inbound request: frames to write back (each [result byte][payload]), then the stream closes. */
export type RawHandler = (request: Uint8Array, from: PeerId) => Promise<Uint8Array[]> | Uint8Array[];

export const successFrame = (payload: Uint8Array) => Uint8Array.from([0, ...payload]);

/** A membership view that admits every key: an attacker's own side of the handshake. */
function permissiveView(certificate: Uint8Array | undefined): MembershipView {
  const member = (key: string): Member => ({
    publicKeyHex: key,
    name: 'peer',
    role: 'submind',
    capabilities: new Set(),
    issuedAtMs: 0,
    expiresAtMs: Number.MAX_SAFE_INTEGER,
    admin: false,
  });
  return {
    mode: 'roster',
    admit: (key) => ({ ok: true, member: member(key) }),
    memberAt: (key) => member(key),
    certifiedCapabilities: () => undefined,
    ownCertificate: () => certificate,
    onChange: () => () => {},
  };
}

export class ByzantinePeer {
  readonly topics: GossipTopics;
  readonly reqresp: ReqResp;
  private readonly prefix: string;

  readonly name: string;
  readonly identity: NodeIdentity;
  readonly host: CairnLibp2p;
  readonly network: NetworkConfig;
  private readonly dataDir: string;
  private constructor(
    name: string,
    identity: NodeIdentity,
    host: CairnLibp2p,
    network: NetworkConfig,
    dataDir: string,
  ) {
    this.name = name;
    this.identity = identity;
    this.host = host;
    this.network = network;
    this.dataDir = dataDir;
    const tag = chainIdHex(network).slice(0, 16);
    this.prefix = `/cairn/${tag}`;
    this.topics = gossipTopics(tag);
    this.reqresp = new ReqResp(host, this.prefix, { penalise: () => {} }, createLogger('silent'));
  }

  /**
   * Starts a host with a fresh identity (or the one of `seed`: an admitted member of a roster
   * network, the insider case), listening on loopback only, no discovery of any kind.
   */
  static async start(
    name: string,
    network: NetworkConfig,
    dir: string,
    {
      gossip = true,
      seed,
      certificate,
      handshake = true,
    }: {
      gossip?: boolean;
      seed?: Uint8Array;
      /** The certificate it presents in the admission handshake (a member the chain records needs none). */
      certificate?: Uint8Array;
      /** Speak the roster's admission handshake as a node does (default); false: skip it, as a raw stranger would. */
      handshake?: boolean;
    } = {},
  ): Promise<ByzantinePeer> {
    const dataDir = path.join(dir, name);
    await mkdir(dataDir, { recursive: true });
    const identity = await identityFromSeed(seed ?? randomBytes(32));
    const tag = chainIdHex(network).slice(0, 16);
    const host = await createHost({
      identity,
      dataDir,
      listen: ['/ip4/127.0.0.1/tcp/0'],
      bootstrap: [],
      // An attacker dials whatever transport its target listens on.
      webrtc: true,
      mdns: false,
      networkTag: `cairn-${tag}`,
      gater: {},
      // Its own inbound limit only; what it sends is bounded by gossipsub's 4 MiB frame limit.
      maxGossipBytes: 4 * 1024 * 1024 - 8192,
    });
    if (handshake && network.membership === 'roster') {
      // The dialer's half of admission: present a certificate (or none) on every connection.
      // It judges nobody itself (an attacker talks to anyone), so its view admits every key.
      const gate = new AdmissionGate({
        view: permissiveView(certificate),
        protocolId: `/cairn/${tag}/admission/1`,
        penalise: () => {},
        metrics: createAdmissionMetrics(new Registry()),
        log: createLogger('silent'),
      });
      await gate.start(host);
    }
    await host.start();
    assertLoopback(host.getMultiaddrs().map(String), `${name} listen`);
    const peer = new ByzantinePeer(name, identity, host, network, dataDir);
    if (gossip) {
      // Subscribed like a node, so its gossipsub has the topics it publishes on.
      host.services.pubsub.subscribe(peer.topics.blocks);
      host.services.pubsub.subscribe(peer.topics.entries);
    }
    return peer;
  }

  get peerId(): string {
    return this.identity.peerId.toString();
  }

  protocolId(name: string): string {
    return `${this.prefix}/${name}/1`;
  }

  isConnected(target: Target): boolean {
    return this.host.getConnections(peerIdFromString(target.peerId)).some((c) => c.status === 'open');
  }

  /** Dials the target (its first loopback address). Rejects if the connection is refused. */
  async dial(target: Target, timeoutMs = 5_000): Promise<void> {
    assertLoopback(target.addrs, `${target.name} addrs`);
    await this.host.dial(multiaddr(target.addrs[0]!), { signal: AbortSignal.timeout(timeoutMs) });
  }

  /**
   * Connected, and able to gossip to the target: its subscription to the blocks topic is known
   * and our outbound gossipsub stream to it is open (publishing before that reaches nobody).
   */
  gossipReady(target: Target): boolean {
    const pubsub = this.host.services.pubsub;
    return (
      this.isConnected(target) &&
      pubsub.getSubscribers(this.topics.blocks).some((p) => p.toString() === target.peerId) &&
      // The implementation's map of open outbound streams (not in the GossipSub interface).
      ((pubsub as unknown as { streamsOutbound?: Map<string, unknown> }).streamsOutbound?.has(
        target.peerId,
      ) ??
        true)
    );
  }

  /** Dials if needed and waits until gossip to the target works. */
  async connect(target: Target, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.gossipReady(target)) {
      if (Date.now() > deadline)
        throw new Error(`${this.name}: no gossip connection to ${target.name} within ${timeoutMs} ms`);
      if (!this.isConnected(target)) await this.dial(target).catch(() => {});
      await sleep(100);
    }
  }

  /** Publishes raw bytes on the blocks topic; returns the peer ids it was sent to. */
  async publishBlockBytes(data: Uint8Array): Promise<string[]> {
    const { recipients } = await this.host.services.pubsub.publish(this.topics.blocks, data);
    return recipients.map(String);
  }

  /** A typed request through the node's own req/resp client (for honest requests). */
  request<Req, Res, Out>(target: Target, spec: ProtocolSpec<Req, Res, Out>, req: Req): Promise<Out[]> {
    return this.reqresp.request(peerIdFromString(target.peerId), spec, req);
  }

  /**
   * Opens a stream on one of the target's req/resp protocols, writes `bytes` as they are (no
   * framing added), closes its writing side and collects everything the target answers.
   */
  async rawRequest(
    target: Target,
    protocol: string,
    bytes: Uint8Array,
    timeoutMs = 8_000,
  ): Promise<RawAnswer> {
    const signal = AbortSignal.timeout(timeoutMs);
    let stream: Stream;
    try {
      stream = await this.host.dialProtocol(peerIdFromString(target.peerId), this.protocolId(protocol), {
        signal,
      });
    } catch (err) {
      return { frames: [], trailing: 0, error: `open: ${(err as Error).message}` };
    }
    const chunks: Uint8Array[] = [];
    let error: string | undefined;
    try {
      if (!stream.send(bytes)) await stream.onDrain({ signal });
      await stream.close({ signal });
      const onAbort = () => stream.abort(new Error('raw request timed out'));
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        for await (const chunk of stream) chunks.push(chunk.subarray());
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      error = (err as Error).message;
      stream.abort(err as Error);
    }
    return { ...parseFrames(Buffer.concat(chunks)), ...(error ? { error } : {}) };
  }

  /** Serves one req/resp protocol with a raw handler (replaces an earlier handler). */
  async serve(protocol: string, handler: RawHandler): Promise<void> {
    const id = this.protocolId(protocol);
    await Promise.resolve(this.host.unhandle(id)).catch(() => {});
    await this.host.handle(
      id,
      async (stream: Stream, connection) => {
        const signal = AbortSignal.timeout(10_000);
        const lp = lpStream(stream, { maxDataLength: 64 * 1024 });
        try {
          const request = (await lp.read({ signal })).subarray();
          for (const frame of await handler(request, connection.remotePeer))
            await lp.write(frame, { signal });
          await stream.close({ signal });
        } catch (err) {
          stream.abort(err as Error);
        }
      },
      { maxInboundStreams: 64 },
    );
  }

  async stop(): Promise<void> {
    await Promise.resolve(this.host.stop()).catch(() => {});
    await removeDir(this.dataDir);
  }
}

/**
 * Removes a directory and makes sure it stays removed: a stopped host's peer store may still
 * finish a write or two (and recreate its folders) just after stop() resolved.
 */
export async function removeDir(dir: string): Promise<void> {
  for (let i = 0; i < 10; i++) {
    // maxRetries: a write landing while rm walks the tree makes rmdir fail with ENOTEMPTY.
    await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    await sleep(200);
    if (!existsSync(dir)) return;
  }
}

/** An unsigned LEB128 varint: its value and encoded length, or undefined if incomplete or too long. */
export function readVarint(bytes: Uint8Array, at: number): { value: number; length: number } | undefined {
  let value = 0;
  for (let i = 0; i < 8 && at + i < bytes.length; i++) {
    const b = bytes[at + i]!;
    value += (b & 0x7f) * 2 ** (7 * i);
    if (!(b & 0x80)) return { value, length: i + 1 };
  }
  return undefined;
}

/** Splits a byte string into varint-length-prefixed frames. */
export function parseFrames(bytes: Uint8Array): { frames: Uint8Array[]; trailing: number } {
  const frames: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.length) {
    const len = readVarint(bytes, at);
    if (!len || at + len.length + len.value > bytes.length) break;
    const start = at + len.length;
    frames.push(bytes.subarray(start, start + len.value));
    at = start + len.value;
  }
  return { frames, trailing: bytes.length - at };
}

/**
 * A copy of a node's main chain, fetched with honest blocks-by-range requests, so the
 * attacker can forge blocks on the node's current tip that would connect if they were valid.
 */
export class ChainMirror {
  readonly chain: Chain;
  private readonly blocks = new Map<string, SealedBlock>();

  private readonly peer: ByzantinePeer;
  private readonly target: Target;
  constructor(peer: ByzantinePeer, target: Target) {
    this.peer = peer;
    this.target = target;
    this.chain = new Chain({
      config: peer.network,
      loadBlock: async (h) => this.blocks.get(h),
    });
  }

  /** Fetches and imports everything above our tip; returns the new height. */
  async catchUp(): Promise<number> {
    for (;;) {
      const start = this.chain.tip.height + 1;
      const got = await this.peer.request(this.target, BLOCKS_BY_RANGE, { startHeight: start, count: 128 });
      for (const b of got) {
        this.blocks.set(b.hashHex, b);
        const r = await this.chain.processBlock(b);
        if (r.status === 'invalid')
          throw new Error(`${this.target.name} served an invalid block: ${r.error.message}`);
      }
      this.chain.takeUpdate();
      // A short answer is not the end: a server ends an answer early at its byte bound
      // (8 MiB, MAX_BLOCK_RESPONSE_BYTES) or when its chain moves; only an empty one is.
      if (got.length === 0) return this.chain.tip.height;
    }
  }

  /** A block on the node's current tip (fetched first), by `key`; see forgeAsync. */
  async forgeOnTip(key: SigningKey, opts: ForgeOptions = {}): Promise<SealedBlock> {
    await this.catchUp();
    return forgeAsync(this.chain, this.chain.tip, key, opts);
  }
}

/**
 * forgeBlock, but the proof of work is searched in slices with the event loop running in
 * between, so the attacker's host keeps answering pings and the test's HTTP keeps working.
 * With `mine: false` the block is returned unmined (nonce 0), as forgeBlock does.
 */
export async function forgeAsync(
  chain: Chain,
  parent: BlockNode,
  key: SigningKey,
  opts: ForgeOptions = {},
): Promise<SealedBlock> {
  const draft = forgeBlock(chain, parent, { ...opts, miner: key, mine: false });
  if (opts.mine === false) return draft;
  return signBlock(await mineAsync(draft.header), draft.entries, key);
}

/** Entries of real content (signed knowledge entries) adding up to about `bytes`. */
export const filler = (bytes: number): SealedEntry[] =>
  Array.from({ length: Math.floor(bytes / 30_200) }, (_, i) =>
    knowledgeEntry(testKey(100 + i), Date.now(), 'x'.repeat(30_000)),
  );

/**
 * A signed block whose encoding is `bytes` long (± a few), from `entries` and one more sized to
 * fit. Not mined: the size is checked before anything else, and an unchecked size would show
 * as a different error.
 */
export async function blockOfSize(
  forge: (opts: ForgeOptions) => Promise<SealedBlock>,
  entries: readonly SealedEntry[],
  bytes: number,
): Promise<SealedBlock> {
  const last = (len: number) => knowledgeEntry(testKey(99), Date.now(), 'y'.repeat(Math.max(1, len)));
  let tail = 1000;
  for (let i = 0; i < 3; i++) {
    const size = (await forge({ entries: [...entries, last(tail)], mine: false })).encoded.length;
    tail += bytes - size;
  }
  return forge({ entries: [...entries, last(tail)], mine: false });
}

export async function mineAsync(header: BlockHeader, slice = 5_000): Promise<BlockHeader> {
  const bytes = encodeHeader(header);
  for (let start = 0; start < 2 ** 40; start += slice) {
    const nonce = searchNonce(bytes, header.target, start, slice);
    if (nonce !== null) return { ...header, nonce };
    await yieldToLoop();
  }
  throw new Error('no nonce found');
}
