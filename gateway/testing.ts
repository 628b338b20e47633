import { createHash, randomBytes } from 'node:crypto';
import { type Client, createClient } from 'graphql-ws';
import { WebSocket } from 'ws';
import { type IndexDb, type IndexDbLocation, openIndexDb } from '../jobs/index-db/open.ts';
import { searchText } from '../jobs/index-db/search-text.ts';
import { createTestIndexDb } from '../jobs/index-db/testing.ts';
import { type GatewayServer, type GatewayServerOptions, startGatewayServer } from './server.ts';

/** A namespace of its own for one test: queues and pub/sub channels do not meet other tests'. */
export const testNamespace = () => `gwtest-${randomBytes(5).toString('hex')}`;

const hex = (s: string, bytes = 32) =>
  createHash('sha256')
    .update(s)
    .digest('hex')
    .repeat(2)
    .slice(0, bytes * 2);

export const blockHash = (height: number) => hex(`block ${height}`);
export const GENESIS_MS = Date.UTC(2026, 0, 1);

export interface SeedOptions {
  blocks?: number;
  entriesPerBlock?: number;
  stats?: number;
  nodes?: number;
  orphans?: number;
  modelVersions?: number;
}

export interface Seeded {
  readonly blocks: number;
  readonly headHash: string;
  readonly nodeIds: string[];
}

/**
 * Writes a consistent index: a canonical chain of `blocks` blocks (heights 0…n-1) with knowledge
 * entries, per-node stats snapshots, network stats, orphans and model versions. Rows are what
 * the collector would write (same columns and encodings).
 */
export async function seedIndex(db: IndexDb, o: SeedOptions = {}): Promise<Seeded> {
  const n = o.blocks ?? 10;
  const perBlock = o.entriesPerBlock ?? 2;
  const nodeIds = Array.from({ length: o.nodes ?? 3 }, (_, i) => `12D3KooWnode${i}`);
  const miner = hex('miner');
  const blocks = [];
  const entries = [];
  for (let h = 0; h < n; h++) {
    const at = new Date(GENESIS_MS + h * 10_000);
    blocks.push({
      hash: blockHash(h),
      height: h,
      prevHash: h === 0 ? '0'.repeat(64) : blockHash(h - 1),
      merkleRoot: hex(`merkle ${h}`),
      timestamp: at,
      target: '1157920892373161954235709850086879078532699846656405640394575840079131296',
      nonce: String(h * 7919),
      miner,
      signature: hex(`sig ${h}`, 64),
      header: hex(`header ${h}`, 100),
      entryCount: h === 0 ? 0 : perBlock,
      sizeBytes: 200 + perBlock * 180,
      totalWork: String((h + 1) * 1000),
      canonical: true,
      reportedBy: nodeIds[h % nodeIds.length]!,
      receivedAt: new Date(at.getTime() + 50),
    });
    if (h === 0) continue;
    for (let p = 0; p < perBlock; p++)
      entries.push({
        id: hex(`entry ${h}.${p}`),
        blockHash: blockHash(h),
        position: p,
        kind: 'knowledge',
        author: hex(`author ${p}`),
        timestamp: new Date(at.getTime() - 1000 + p),
        payload: JSON.stringify({ kind: 'knowledge', content: `fact ${h}.${p}`, metadata: [['lang', 'en']] }),
        signature: hex(`esig ${h}.${p}`, 64),
        // As the collector writes it (jobs/collector/index-writer.ts): searchable at once.
        searchText: searchText(`fact ${h}.${p}`),
      });
  }
  for (let i = 0; i < blocks.length; i += 500) await db.block.createMany({ data: blocks.slice(i, i + 500) });
  for (let i = 0; i < entries.length; i += 500)
    await db.entry.createMany({ data: entries.slice(i, i + 500) });

  const now = GENESIS_MS + n * 10_000;
  await db.node.createMany({
    data: nodeIds.map((id, i) => ({
      id,
      role: 'full',
      capabilities: i === 0 ? 'mine,relay' : 'relay',
      addrs: JSON.stringify([`/ip4/127.0.0.1/tcp/${4100 + i}`]),
      firstSeenAt: new Date(GENESIS_MS),
      lastSeenAt: new Date(now),
      height: n - 1,
      headHash: blockHash(n - 1),
      peerCount: nodeIds.length - 1,
      mempoolSize: i,
      mining: i === 0,
      peers: JSON.stringify(nodeIds.filter((p) => p !== id)),
      connectionKinds: JSON.stringify({ tcp: nodeIds.length - 2, relayed: 1, webrtc: 0 }),
    })),
  });
  const statsCount = o.stats ?? 5;
  const snaps = [];
  for (let s = 1; s <= statsCount; s++)
    for (const [i, nodeId] of nodeIds.entries())
      snaps.push({
        id: `${nodeId}:${GENESIS_MS}:${s}`,
        nodeId,
        boot: BigInt(GENESIS_MS),
        seq: s,
        at: new Date(GENESIS_MS + s * 60_000),
        height: Math.min(n - 1, s),
        headHash: blockHash(Math.min(n - 1, s)),
        totalWork: String(s * 1000),
        difficulty: '1000',
        peerCount: nodeIds.length - 1,
        mempoolSize: i,
        hashRate: i === 0 ? 1500 : 0,
      });
  for (let i = 0; i < snaps.length; i += 500)
    await db.nodeStatsSnapshot.createMany({ data: snaps.slice(i, i + 500) });
  await db.networkStats.createMany({
    data: Array.from({ length: statsCount }, (_, s) => ({
      at: new Date(GENESIS_MS + (s + 1) * 60_000),
      totalNodes: nodeIds.length,
      chainLengthMin: n - 2,
      chainLengthMax: n - 1,
      chainLengthAvg: n - 1.5,
      avgPeers: nodeIds.length - 1,
      target: '1000',
      difficulty: 16 + s,
      hashRate: 1500 + s,
      mempoolTotal: 3,
      mempoolMin: 0,
      mempoolMax: 2,
    })),
  });
  await db.orphanedBlock.createMany({
    data: Array.from({ length: o.orphans ?? 3 }, (_, i) => ({
      hash: hex(`orphan ${i}`),
      reason: i % 2 ? 'side-chain' : 'reorged-out',
      height: i + 1,
      prevHash: blockHash(i),
      miner,
      reportedBy: nodeIds[0]!,
      at: new Date(GENESIS_MS + i * 1000),
    })),
  });
  await db.modelVersion.createMany({
    data: Array.from({ length: o.modelVersions ?? 2 }, (_, i) => ({
      hash: hex(`model ${i}`),
      parentHash: i ? hex(`model ${i - 1}`) : null,
      round: i,
      metrics: JSON.stringify({ accuracy: 0.8 + i / 100 }),
      accuracy: 0.8 + i / 100,
      epsilon: 1.5,
      participants: 3,
      blockHash: null,
      createdAt: new Date(GENESIS_MS + i * 1000),
    })),
  });
  return { blocks: n, headHash: blockHash(n - 1), nodeIds };
}

// Tests read response trees dynamically; `any` keeps assertions short.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Json = any;
export interface GqlBody {
  data?: Json;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/** POSTs one GraphQL operation as JSON. */
export async function gql(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: GqlBody }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: r.status, body: (await r.json()) as GqlBody };
}

export interface TestGateway {
  readonly server: GatewayServer;
  readonly url: string;
  readonly wsUrl: string;
  readonly db: IndexDb;
  readonly location: IndexDbLocation;
  readonly namespace: string;
  readonly close: () => Promise<void>;
}

/**
 * A gateway server on a free port over a fresh SQLite index (or `location`, shared with another
 * instance), with its own Redis namespace unless one is given. Real Redis, real sockets.
 */
export async function startTestGateway(
  o: Partial<GatewayServerOptions> & { seed?: SeedOptions | false; location?: IndexDbLocation } = {},
): Promise<TestGateway> {
  const ns = o.namespace ?? testNamespace();
  let idx: { db: IndexDb; location: IndexDbLocation; drop: () => Promise<void> };
  if (o.location) {
    const db = await openIndexDb(o.location);
    idx = { db, location: o.location, drop: () => db.$disconnect() };
  } else idx = await createTestIndexDb('sqlite');
  if (o.seed !== false && !o.location) await seedIndex(idx.db, o.seed ?? {});
  const server = await startGatewayServer({ port: 0, graphiql: false, ...o, namespace: ns, db: idx.db });
  return {
    server,
    url: server.url,
    wsUrl: server.wsUrl,
    db: idx.db,
    location: idx.location,
    namespace: ns,
    close: async () => {
      await server.close();
      await idx.drop();
    },
  };
}

/** A graphql-ws client (the `ws` implementation) that never retries, for tests and the bench. */
export function wsClient(url: string, connectionParams?: Record<string, unknown>): Client {
  return createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: true, connectionParams });
}

/** Subscribes and collects results; `done` settles on completion or error. */
export function collect<T = Json>(client: Client, query: string) {
  const results: {
    data?: T;
    errors?: readonly { message: string; extensions?: Record<string, unknown> }[];
  }[] = [];
  let dispose = () => {};
  const done = new Promise<unknown>((resolve) => {
    dispose = client.subscribe<T>(
      { query },
      {
        next: (r) => void results.push(r as never),
        error: (err) => resolve(err),
        complete: () => resolve(undefined),
      },
    );
  });
  return { results, done, dispose: () => dispose() };
}

export async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Publishes on every 10th poll until `received` holds: a graphql-ws subscription is live on the
 * server only once its Redis SUBSCRIBE completes, which the client cannot observe.
 */
export async function publishUntil(
  publish: () => void,
  received: () => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  let polls = 0;
  await waitFor(
    () => {
      if (polls++ % 10 === 0) publish();
      return received();
    },
    timeoutMs,
    what,
  );
}
