import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TOPICS, toEvent } from '../jobs/events.ts';
import { collect, gql, publishUntil, startTestGateway, type TestGateway, wsClient } from './testing.ts';
import { sha256Hex } from './tokens.ts';

const TOKENS = { admin: 'admin-secret-1', operator: 'operator-secret-2', viewer: 'viewer-secret-3' };
const tokens = Object.entries(TOKENS).map(([role, t]) => ({
  name: role,
  role: role as 'admin' | 'operator' | 'viewer',
  sha256: sha256Hex(t),
}));
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

const OPERATOR_MUTATIONS = [
  'mutation { syncMempool(nodeId: "12D3KooWnode0") { peerId } }',
  'mutation { syncChain(nodeId: "12D3KooWnode0") { state } }',
  'mutation { reportStats(nodeId: "12D3KooWnode0") { seq } }',
  'mutation { submitEntry(nodeId: "12D3KooWnode0", content: "hello") { id } }',
];
const ADMIN_MUTATIONS = [
  'mutation { blockPeers(nodeId: "12D3KooWnode0", peerIds: ["p"]) { blocked } }',
  'mutation { unblockPeers(nodeId: "12D3KooWnode0", peerIds: ["p"]) { blocked } }',
  'mutation { startFederatedRound(nodeId: "12D3KooWnode0", rounds: 1) { roundIds } }',
];

describe('roles on mutations (HTTP)', () => {
  let gw: TestGateway;
  // No node answers here (the seeded index knows 12D3KooWnode0, admin mutations accept no other):
  // an authorized call gets NODE_UNAVAILABLE after this timeout.
  before(async () => {
    gw = await startTestGateway({ tokens, adminTimeoutMs: 300, seed: { blocks: 2 } });
  });
  after(() => gw.close());

  const code = async (query: string, headers: Record<string, string> = {}) => {
    const r = await gql(gw.url, query, undefined, headers);
    return {
      status: r.status,
      code: r.body.errors?.[0]?.extensions?.code,
      message: r.body.errors?.[0]?.message ?? '',
    };
  };

  test('no token and a viewer token are FORBIDDEN on every operator and admin mutation', async () => {
    for (const m of [...OPERATOR_MUTATIONS, ...ADMIN_MUTATIONS])
      for (const headers of [{}, bearer(TOKENS.viewer)]) {
        const r = await code(m, headers);
        assert.equal(r.code, 'FORBIDDEN', `${m} with ${JSON.stringify(headers)}`);
        assert.match(r.message, /Not authorized|forbidden/);
      }
  });

  test('an operator token passes operator mutations but not admin ones', async () => {
    for (const m of OPERATOR_MUTATIONS)
      assert.equal((await code(m, bearer(TOKENS.operator))).code, 'NODE_UNAVAILABLE', m);
    for (const m of ADMIN_MUTATIONS)
      assert.equal((await code(m, bearer(TOKENS.operator))).code, 'FORBIDDEN', m);
  });

  test('an admin token passes admin mutations', async () => {
    for (const m of [...OPERATOR_MUTATIONS, ...ADMIN_MUTATIONS])
      assert.equal((await code(m, bearer(TOKENS.admin))).code, 'NODE_UNAVAILABLE', m);
  });

  test('a wrong token is UNAUTHENTICATED (401), even on reads; reads are open without one', async () => {
    const r = await code('{ _meta { height } }', bearer('not-a-token'));
    assert.equal(r.code, 'UNAUTHENTICATED');
    assert.equal(r.status, 401);
    assert.equal((await code(OPERATOR_MUTATIONS[0]!, bearer('nope'))).code, 'UNAUTHENTICATED');
    const open = await gql(gw.url, '{ _meta { height } }');
    assert.equal(open.body.data._meta.height, 1);
  });
});

describe('requireViewer', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway({ tokens, requireViewer: true, seed: { blocks: 2 } });
  });
  after(() => gw.close());

  test('HTTP reads need a viewer token', async () => {
    const anon = await gql(gw.url, '{ _meta { height } }');
    assert.equal(anon.body.errors?.[0]?.extensions?.code, 'FORBIDDEN');
    const viewer = await gql(gw.url, '{ _meta { height } }', undefined, bearer(TOKENS.viewer));
    assert.equal(viewer.body.data._meta.height, 1);
  });

  test('a ws socket with a bad or missing token is closed at connection_init; a viewer token is served', async () => {
    // Closed (4403 Forbidden) before any subscribe: such a socket could run nothing, and open it
    // held one of its host's WebSocket places (attack review 13, console-proxy-sockets).
    for (const params of [{ authorization: 'Bearer wrong' }, { token: 'wrong' }, {}]) {
      const client = wsClient(gw.wsUrl, params);
      const sub = collect(client, 'subscription { newBlock { hash } }');
      try {
        const err = (await sub.done) as { code?: number } | undefined;
        assert.equal(err?.code, 4403, `closed for ${JSON.stringify(params)}`);
        assert.equal(sub.results.length, 0);
      } finally {
        sub.dispose();
        await client.dispose();
      }
    }
    const client = wsClient(gw.wsUrl, { authorization: `Bearer ${TOKENS.viewer}` });
    const sub = collect<{ newBlock: { hash: string } }>(client, 'subscription { newBlock { hash } }');
    const ev = toEvent(await gw.db.block.findFirstOrThrow({ where: { height: 1 } }));
    await publishUntil(
      () => gw.server.pubsub.publish(TOPICS.newBlock, ev),
      () => sub.results.length > 0,
      'a viewer subscription event',
    );
    assert.equal(sub.results[0]?.data?.newBlock.hash, ev.hash);
    sub.dispose();
    await client.dispose();
  });
});
