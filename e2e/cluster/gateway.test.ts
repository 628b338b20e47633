/**
 * Issue 4, "Must show" (the gateway half), against a real three-node mining cluster with a real
 * Redis, the collector and two real gateway processes:
 *
 *  - a `newBlock` subscriber receives every block the cluster mines, in order (each block after
 *    its parent), exactly once — compared with the nodes' own main chain;
 *  - `orphanedBlock` fires during a forced reorg (subscribed on the other gateway instance);
 *  - `syncMempool(nodeId)` returns that node's reconciliation result;
 *  - no token or a viewer token gets FORBIDDEN on admin and operator mutations;
 *  - hostile queries (depth 50, 1,000 aliases, a 1 MB document) get clear errors and the gateway
 *    stays up;
 *  - Redis restarted: the open subscription delivers new blocks again within 30 s.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, createClient } from 'graphql-ws';
import { WebSocket } from 'ws';
import { gql } from '../../gateway/testing.ts';
import { decodeInvitation } from '../../node/membership/invitation.ts';
import { eventually, JobsCluster } from './jobs-cluster.ts';
import { portOrFree, type Service } from './service.ts';
import { gatewayProcess } from './service-process.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const TOKENS = {
  admin: randomBytes(16).toString('hex'),
  operator: randomBytes(16).toString('hex'),
  viewer: randomBytes(16).toString('hex'),
};

/** One operation against a gateway process, with a bearer token when given. */
const gqlAt = (url: string, query: string, variables: Record<string, unknown> = {}, token?: string) =>
  gql(`${url}/graphql`, query, variables, token ? { authorization: `Bearer ${token}` } : {});

interface BlockEvt {
  hash: string;
  height: number;
  prevHash: string;
}

/** Collects every event of a subscription on a graphql-ws client. */
function collect<T>(client: Client, query: string): { events: T[]; errors: unknown[]; stop: () => void } {
  const events: T[] = [];
  const errors: unknown[] = [];
  const stop = client.subscribe<Record<string, T>>(
    { query },
    {
      next: (r) => {
        const v = r.data && Object.values(r.data)[0];
        if (v) events.push(v);
        if (r.errors) errors.push(r.errors);
      },
      error: (e) => errors.push(e),
      complete: () => {},
    },
  );
  return { events, errors, stop };
}

const wsClient = (url: string) =>
  createClient({
    url: `${url.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    retryWait: async () => sleep(500),
    lazy: false,
  });

test('gateway on a live cluster: ordered exactly-once newBlock, orphanedBlock on reorg, admin mutations, auth, hostile queries, Redis restart', {
  timeout: 300_000,
}, async (t) => {
  const jc = await JobsCluster.start({
    nodes: 3,
    schedule: 'stats.report=5000,mempool.sync=5000,chain.sync=10000,peers.refresh=20000',
    nodeOptions: () => ({ mine: true }),
  });
  const gateways: Service[] = [];
  const clients: Client[] = [];
  t.after(async () => {
    for (const c of clients) await c.dispose();
    for (const g of gateways) await g.stop();
    await jc.stop();
  });
  const env = {
    ...jc.env,
    CAIRN_TOKENS: Object.entries(TOKENS)
      .map(([role, tok]) => `${role}:${sha(tok)}`)
      .join(','),
  };
  const urls: string[] = [];
  for (const name of ['a', 'b']) {
    const port = await portOrFree();
    const g = gatewayProcess(path.join(jc.cluster.runDir, `gateway-${name}.log`), port, env, {
      name: `gateway-${name}`,
      track: true,
    });
    await g.start();
    gateways.push(g);
    urls.push(`http://127.0.0.1:${port}`);
  }
  const [urlA, urlB] = urls as [string, string];
  const clientA = wsClient(urlA);
  const clientB = wsClient(urlB);
  clients.push(clientA, clientB);
  const blockQuery = 'subscription { newBlock { hash height prevHash } }';
  const live = collect<BlockEvt>(clientA, blockQuery);
  const orphans = collect<{ hash: string; reason: string }>(
    clientB,
    'subscription { orphanedBlock { hash reason height } }',
  );
  await sleep(1_000); // subscriptions reach Redis

  await t.test('newBlock: every mined block, each after its parent, exactly once', async () => {
    const start = (await jc.nodes[0]!.status()).height;
    await jc.cluster.waitForConverged({ minHeight: start + 8, timeoutMs: 90_000 });
    const end = (await jc.nodes[0]!.status()).height - 1;
    const { blocks } = await jc.nodes[0]!.chain(start + 2, end);
    await eventually(
      'every main-chain block to arrive on the subscription',
      async () => {
        const got = new Set(live.events.map((e) => e.hash));
        return blocks.every((b) => got.has(b.hash));
      },
      20_000,
    );
    const hashes = live.events.map((e) => e.hash);
    assert.equal(new Set(hashes).size, hashes.length, 'no block delivered twice');
    // In order: a block's parent, if it was delivered at all, was delivered before it.
    const position = new Map(hashes.map((h, i) => [h, i]));
    for (const [i, e] of live.events.entries()) {
      const p = position.get(e.prevHash);
      if (p !== undefined) assert.ok(p < i, `block ${e.height} delivered before its parent`);
    }
    for (let i = 1; i < blocks.length; i++)
      assert.ok(
        position.get(blocks[i]!.hash)! > position.get(blocks[i - 1]!.hash)!,
        'main chain in height order',
      );
    assert.deepEqual(live.errors, []);
  });

  await t.test('syncMempool(nodeId) returns that node’s reconciliation result', async () => {
    const [a, b] = jc.nodes;
    const r = await gqlAt(
      urlA,
      'mutation($n: ID!, $p: String) { syncMempool(nodeId: $n, peerId: $p) { peerId roundTrips sent received bytes } }',
      { n: a!.peerId, p: b!.peerId },
      TOKENS.operator,
    );
    assert.deepEqual(r.body.errors, undefined);
    assert.equal(r.body.data?.syncMempool.peerId, b!.peerId);
    assert.ok((r.body.data?.syncMempool.roundTrips ?? 0) >= 1);
    assert.ok((r.body.data?.syncMempool.bytes ?? 0) > 0);
  });

  await t.test(
    'inviteDevice: an admin gets a single-use invitation naming the node; others are refused',
    async () => {
      const node = jc.nodes[0]!;
      const mutation = `mutation($n: ID!, $role: String!) {
      inviteDevice(nodeId: $n, name: "Kim's tablet", role: $role, capabilities: ["train"], expiresInDays: 30) {
        invitation expiresAt memberUntil } }`;
      const r = await gqlAt(urlA, mutation, { n: node.peerId, role: 'observer' }, TOKENS.admin);
      assert.deepEqual(r.body.errors, undefined);
      const issued = r.body.data!.inviteDevice;
      const inv = decodeInvitation(issued.invitation);
      assert.ok(
        inv.addrs.length > 0 && inv.addrs.every((a) => a.endsWith(`/p2p/${node.peerId}`)),
        inv.addrs.join(),
      );
      assert.ok(Date.parse(issued.expiresAt) <= Date.parse(issued.memberUntil));
      assert.ok(Date.parse(issued.memberUntil) > Date.now() + 29 * 86_400_000);
      // Recorded in the node's own book, by the hash of its secret only.
      const files = await readdir(path.join(node.dataDir, 'invitations'));
      assert.equal(files.length, 1);
      // An unknown role is refused before anything is queued, with the roles there are.
      const bad = await gqlAt(urlA, mutation, { n: node.peerId, role: 'king' }, TOKENS.admin);
      assert.equal(bad.body.errors?.[0]?.extensions?.code, 'INVALID_INPUT', JSON.stringify(bad.body));
      assert.match(bad.body.errors?.[0]?.message ?? '', /observer/);
      assert.equal((await readdir(path.join(node.dataDir, 'invitations'))).length, 1, 'nothing recorded');
      const operator = await gqlAt(urlA, mutation, { n: node.peerId, role: 'observer' }, TOKENS.operator);
      assert.equal(operator.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    },
  );

  await t.test('no token or a viewer token: FORBIDDEN on admin and operator mutations', async () => {
    const node = jc.nodes[0]!.peerId;
    const admin = `mutation { blockPeers(nodeId: "${node}", peerIds: ["${jc.nodes[1]!.peerId}"]) { blocked } }`;
    const operator = `mutation { syncChain(nodeId: "${node}") { height } }`;
    for (const [query, token] of [
      [admin, undefined],
      [admin, TOKENS.viewer],
      [admin, TOKENS.operator],
      [operator, undefined],
      [operator, TOKENS.viewer],
    ] as const) {
      const r = await gqlAt(urlB, query, {}, token);
      assert.equal(
        r.body.errors?.[0]?.extensions?.code,
        'FORBIDDEN',
        `${query} with ${token ? 'a token' : 'no token'}`,
      );
      assert.equal(r.body.data ?? null, null);
    }
    const wrong = await gqlAt(urlB, operator, {}, 'not-a-token');
    assert.equal(wrong.body.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    const ok = await gqlAt(urlB, operator, {}, TOKENS.operator);
    assert.ok((ok.body.data?.syncChain.height ?? 0) > 0, JSON.stringify(ok.body));
  });

  await t.test('hostile queries get clear errors and the gateway stays up', async () => {
    let deep = 'hash';
    for (let i = 0; i < 50; i++) deep = `parent { ${deep} }`;
    const depth = await gqlAt(urlA, `{ block(height: 1) { ${deep} } }`);
    assert.match(depth.body.errors?.[0]?.message ?? '', /depth/i);
    const aliases = Array.from({ length: 1000 }, (_, i) => `a${i}: __typename`).join(' ');
    const alias = await gqlAt(urlA, `{ ${aliases} }`);
    assert.match(alias.body.errors?.[0]?.message ?? '', /alias/i);
    const huge = await gqlAt(urlA, `{ _meta { height } } # ${'x'.repeat(1024 * 1024)}`);
    assert.equal(huge.status, 413);
    assert.match(huge.body.errors?.[0]?.message ?? '', /too large|limit/i);
    const fine = await gqlAt(urlA, '{ _meta { height } }');
    assert.ok((fine.body.data?._meta.height ?? -1) > 0);
    assert.ok(gateways.every((g) => g.running));
  });

  await t.test('orphanedBlock fires during a forced reorg', async () => {
    await jc.forceReorg(3);
    const evt = await eventually(
      'an orphanedBlock event (reorged-out) on the other gateway',
      async () => orphans.events.find((e) => e.reason === 'reorged-out'),
      60_000,
    );
    const row = await jc.db.orphanedBlock.findFirst({ where: { hash: evt.hash, reason: 'reorged-out' } });
    assert.ok(row, 'the event matches an indexed orphaned block');
  });

  await t.test('Redis restarted: the open subscription delivers new blocks again within 30 s', async () => {
    await jc.redis.stop();
    await sleep(3_000);
    await jc.redis.start();
    const upAt = Date.now();
    const seen = live.events.length;
    await eventually('a newBlock event after the restart', async () => live.events.length > seen, 30_000);
    t.diagnostic(`first block after the Redis restart arrived ${Date.now() - upAt} ms after Redis was back`);
    const hashes = live.events.map((e) => e.hash);
    assert.equal(new Set(hashes).size, hashes.length, 'still exactly once');
  });
  live.stop();
  orphans.stop();
});
