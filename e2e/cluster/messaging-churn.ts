/**
 * The messaging churn run of issue 14, shared by e2e/cluster/messaging-churn.test.ts and the
 * churn phase of bench:messaging: real node processes of a roster network (two of them
 * mailboxes), messages posted between random pairs through each sender's HTTP API while
 * recipients and one mailbox are stopped (SIGTERM or SIGKILL) and started again at random; then
 * both sides are counted: every sender's outbox holds a receipt for each message it was given,
 * and every recipient's inbox holds each message once, in per-sender order, with its text.
 *
 * All choices (pairs, who restarts when, how, for how long) come from seeded generators, so a
 * failing seed can be run again (CAIRN_CHURN_SEED): the restart schedule is the seed's; which
 * sender a post goes to also depends on who is up at that moment. A node is only stopped once the posts it
 * is serving as a sender have been answered: each message the driver counts as sent was
 * accepted into a persisted outbox, so "lost" means lost by the nodes, never by the driver.
 */
import { type AddressInfo, createServer, type Server } from 'node:net';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { Cluster, type ClusterNode } from './harness.ts';
import { nodeApiHeaders } from './node-process.ts';

export const CHURN_DEFAULTS = {
  nodes: 10,
  messages: 2000,
  /** Posts in flight at once, across all senders. */
  concurrency: 24,
  /** Nodes restarted at random (recipients and senders alike), besides the first mailbox. */
  churners: 3,
  /**
   * Restarts of the mailbox post0 and of the churners, in two loops running at once (so a
   * recipient can be down while the mailbox is). Bounded: each start costs a node's start-up
   * CPU, which on a shared 2-core host is most of the run.
   */
  mailboxRestarts: 2,
  recipientRestarts: 4,
  /** How long a stopped node stays down, ms. */
  downMs: [500, 2500] as const,
  /** Pause of a restart loop before each restart, ms. */
  pauseMs: [500, 3000] as const,
  /** Share of stops that are SIGKILL rather than SIGTERM. */
  killShare: 0.3,
  /** After the last post: how long every message has to be receipted, ms. */
  settleMs: 60_000,
} as const;

export interface ChurnOptions {
  readonly seed: number;
  readonly nodes?: number;
  readonly messages?: number;
  readonly concurrency?: number;
  readonly churners?: number;
  readonly mailboxRestarts?: number;
  readonly recipientRestarts?: number;
  readonly downMs?: readonly [number, number];
  readonly pauseMs?: readonly [number, number];
  readonly killShare?: number;
  readonly settleMs?: number;
  readonly log?: (line: string) => void;
}

export interface ChurnResult {
  readonly seed: number;
  /** Messages the senders' APIs accepted (each persisted in an outbox). */
  readonly sent: number;
  /** Distinct messages found in the recipients' inboxes with the text they were sent with. */
  readonly delivered: number;
  /** Inbox rows beyond the first of a (sender, recipient, sequence). */
  readonly duplicates: number;
  /** (sender, recipient) pairs whose inbox order is not 1, 2, 3, … */
  readonly outOfOrder: number;
  /** Inbox rows whose text is not the one sent under that id, or that nobody sent. */
  readonly wrong: number;
  /** Messages the senders' outboxes hold a receipt for. */
  readonly receipted: number;
  /** Sent messages missing from the inboxes, as `sender>recipient#seq` (the first 20). */
  readonly missing: readonly string[];
  readonly restarts: readonly string[];
  readonly sendMs: number;
  /** From the last post answered to the last receipt stored. */
  readonly settleMs: number;
}

/** mulberry32: small, fast, good enough to pick pairs and timings reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const churnNodeName = (i: number): string => (i < 2 ? `post${i}` : `m${i}`);

/** A roster network of `nodes` members: post0 and post1 hold mail (`relay`), the rest only message. */
export function churnCluster(nodes: number = CHURN_DEFAULTS.nodes): Cluster {
  return new Cluster({
    // No miner runs: messaging needs the genesis roster only, and proof of work would take a core.
    network: { blockTimeMs: 1000 },
    roster: {
      size: nodes,
      member: (i) =>
        i < 2
          ? { name: churnNodeName(i), capabilities: ['relay', 'message'] as const }
          : { name: churnNodeName(i), capabilities: ['submit', 'message'] as const },
    },
  });
}

/** Free loopback TCP ports (the kernel's choice, released at once for the nodes to take). */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/**
 * Starts the nodes two at a time, each with every other node's address (ports chosen before,
 * peer ids from the roster's keys). Of any two nodes the one that listens later dials the
 * other after it listens, so every pair connects however the starts overlap; with addresses
 * from the running nodes only, nodes started together would never learn each other's.
 */
export async function startChurnCluster(
  cluster: Cluster,
  nodes: number = CHURN_DEFAULTS.nodes,
  log?: (line: string) => void,
) {
  const ports = await freePorts(nodes);
  const keys = cluster.roster!.keys;
  const addrs = ports.map(
    (port, i) =>
      `/ip4/127.0.0.1/tcp/${port}/p2p/${peerIdFromPublicKey(publicKeyFromRaw(keys[i]!.publicKey)).toString()}`,
  );
  const started = await cluster.start(
    nodes,
    (i) => ({
      name: churnNodeName(i),
      member: i,
      mine: false,
      listen: [`/ip4/127.0.0.1/tcp/${ports[i]}`],
      bootstrap: addrs.filter((_, k) => k !== i),
    }),
    { concurrency: 2 },
  );
  // Every node knows every address, so a sender dials a recipient it is not connected to when
  // it has something for it: a full mesh is not waited for (a bootstrap dial lost to a timeout
  // or to the 5-per-second inbound rate from one host is not redialled), only for each node to
  // have joined.
  await cluster.waitFor(
    (snap) => cluster.active().every((n) => (snap.statuses[n.name]?.peers.length ?? 0) >= 2),
    {
      timeoutMs: 30_000,
      description: 'every node connected to two others',
    },
  );
  const snap = await cluster.snapshot();
  const links = Object.values(snap.statuses).reduce((sum, st) => sum + st.peers.length, 0);
  log?.(`${links / 2} of ${(nodes * (nodes - 1)) / 2} pairs connected before sending`);
  return started;
}

interface Sent {
  readonly seq: number;
  readonly status: string;
  readonly toName: string | null;
}
interface Received {
  readonly fromName: string | null;
  readonly seq: number;
  readonly text: string;
  readonly order: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A send waits up to 5 s for its receipt before answering `pending`: a longer deadline here. */
async function api<T>(n: ClusterNode, method: 'GET' | 'POST', p: string, body?: unknown): Promise<T> {
  const res = await fetch(`${n.httpUrl}${p}`, {
    method,
    headers: await nodeApiHeaders(n.cookieFile),
    signal: AbortSignal.timeout(20_000),
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${n.name} ${method} ${p}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

async function inboxOf(n: ClusterNode): Promise<Received[]> {
  const all: Received[] = [];
  for (let after = 0; ; ) {
    const { messages } = await api<{ messages: Received[] }>(n, 'GET', `/messages?after=${after}&limit=1000`);
    all.push(...messages);
    if (messages.length < 1000) return all;
    after = messages.at(-1)!.order;
  }
}

/** Posts `messages` between random pairs of `cluster`'s nodes while restarting some of them. */
export async function runChurn(cluster: Cluster, o: ChurnOptions): Promise<ChurnResult> {
  const c = { ...CHURN_DEFAULTS, ...o };
  const rnd = seededRandom(o.seed);
  const log = o.log ?? (() => {});
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const names = Array.from({ length: c.nodes }, (_, i) => churnNodeName(i));
  // post0 is the mailbox that restarts; post1 stays up, so a deposit usually has somewhere to go.
  const churners = names.slice(2, 2 + c.churners);

  const down = new Set<string>();
  const draining = new Set<string>();
  const inflight = new Map<string, number>();
  /** Per `sender>recipient`, the text sent under each sequence number. */
  const sent = new Map<string, Map<number, string>>();
  let posted = 0;
  let answered = 0;
  const restarts: string[] = [];
  let sending = true;
  const t0 = performance.now();

  const poster = async () => {
    while (posted < c.messages) {
      const senders = names.filter((n) => !down.has(n) && !draining.has(n));
      if (senders.length === 0) {
        await sleep(50);
        continue;
      }
      const from = pick(senders);
      const to = pick(names.filter((n) => n !== from));
      const k = posted++;
      const text = `${from}>${to} ${k}`;
      inflight.set(from, (inflight.get(from) ?? 0) + 1);
      try {
        const r = await api<Sent>(cluster.node(from), 'POST', '/messages', { to, text });
        if (r.toName !== to) throw new Error(`${from} sent ${k} to ${r.toName}, not ${to}`);
        const pair = `${from}>${to}`;
        const seqs = sent.get(pair) ?? new Map<number, string>();
        if (seqs.has(r.seq)) throw new Error(`${from} gave sequence ${r.seq} to ${to} twice`);
        seqs.set(r.seq, text);
        sent.set(pair, seqs);
        answered++;
      } finally {
        inflight.set(from, inflight.get(from)! - 1);
      }
    }
  };

  // Each restart loop draws from its own generator: its schedule is the seed's, whatever the posts do.
  const restarter = async (churnable: readonly string[], times: number, stream: number) => {
    const rnd = seededRandom(o.seed + stream);
    const between = ([lo, hi]: readonly [number, number]) => Math.round(lo + rnd() * (hi - lo));
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    for (let done = 0; sending && done < times; done++) {
      await sleep(between(c.pauseMs));
      const candidates = churnable.filter((n) => !down.has(n) && !draining.has(n));
      if (!sending || candidates.length === 0) continue;
      const name = pick(candidates);
      const kill = rnd() < c.killShare;
      const downFor = between(c.downMs);
      // Its posts answered first: the driver counts only what an outbox accepted.
      draining.add(name);
      while ((inflight.get(name) ?? 0) > 0) await sleep(10);
      if (kill) await cluster.kill(name);
      else await cluster.stop(name);
      down.add(name);
      draining.delete(name);
      await sleep(downFor);
      await cluster.restart(name, {});
      down.delete(name);
      restarts.push(`${name}:${kill ? 'kill' : 'term'}:${downFor}ms@${Math.round(performance.now() - t0)}`);
      log(`restarted ${restarts.at(-1)} (${answered}/${c.messages} posted)`);
    }
  };

  const restarting = [
    restarter(['post0'], c.mailboxRestarts, 1),
    restarter(churners, c.recipientRestarts, 2),
  ];
  try {
    await Promise.all(Array.from({ length: c.concurrency }, poster));
  } finally {
    sending = false;
    await Promise.all(restarting);
  }
  const sendMs = performance.now() - t0;
  log(`${answered} messages posted in ${Math.round(sendMs)} ms, ${restarts.length} restarts`);

  // Sender side: every outbox row receipted.
  const t1 = performance.now();
  let receipted = 0;
  for (;;) {
    receipted = 0;
    for (const n of names) {
      const { messages } = await api<{ messages: { status: string }[] }>(
        cluster.node(n),
        'GET',
        '/messages/outbox?limit=1000',
      );
      receipted += messages.filter((m) => m.status === 'delivered').length;
    }
    if (receipted >= answered || performance.now() - t1 > c.settleMs) break;
    await sleep(500);
  }
  const settleMs = performance.now() - t1;
  log(`${receipted}/${answered} receipted ${Math.round(settleMs)} ms after the last post`);

  // Recipient side: each message once, in per-sender order, with its text.
  let delivered = 0;
  let duplicates = 0;
  let outOfOrder = 0;
  let wrong = 0;
  const found = new Set<string>();
  for (const to of names) {
    const bySender = new Map<string, number[]>();
    for (const m of await inboxOf(cluster.node(to))) {
      const pair = `${m.fromName}>${to}`;
      const id = `${pair}#${m.seq}`;
      if (found.has(id)) {
        duplicates++;
        continue;
      }
      found.add(id);
      if (sent.get(pair)?.get(m.seq) !== m.text) {
        wrong++;
        continue;
      }
      delivered++;
      const seqs = bySender.get(pair) ?? [];
      seqs.push(m.seq);
      bySender.set(pair, seqs);
    }
    for (const seqs of bySender.values()) if (seqs.some((s, i) => s !== i + 1)) outOfOrder++;
  }
  const missing: string[] = [];
  for (const [pair, seqs] of sent)
    for (const seq of seqs.keys()) if (!found.has(`${pair}#${seq}`)) missing.push(`${pair}#${seq}`);
  return {
    seed: o.seed,
    sent: answered,
    delivered,
    duplicates,
    outOfOrder,
    wrong,
    receipted,
    missing: missing.slice(0, 20),
    restarts,
    sendMs: Math.round(sendMs),
    settleMs: Math.round(settleMs),
  };
}
