/**
 * Finding 6 of attack review #13: undeclared variables nested 10,000 deep (20 KB) made the
 * response cache's key builder throw: a masked 500 and an error log with its stack per request.
 * Over-deep variables are refused with VARIABLES_TOO_DEEP (400) and counted; ordinary ones still
 * answer, cached. Real gateway on loopback, real Redis.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from './testing.ts';
import { DEFAULT_MAX_VARIABLES_DEPTH, nestsDeeperThan } from './variables-limit.ts';

test('nestsDeeperThan counts objects and arrays, without recursion', () => {
  assert.equal(nestsDeeperThan({ a: 1 }, 1), false);
  assert.equal(nestsDeeperThan({ a: { b: [1] } }, 2), true);
  assert.equal(nestsDeeperThan({ a: { b: [1] } }, 3), false);
  let deep: unknown = [];
  for (let i = 0; i < 200_000; i++) deep = [deep];
  assert.equal(nestsDeeperThan({ x: deep }, DEFAULT_MAX_VARIABLES_DEPTH), true);
});

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({ seed: { blocks: 2 }, cacheTtlMs: 1000 });
});
after(() => gw.close());

const post = async (body: string) => {
  const r = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return {
    status: r.status,
    body: (await r.json()) as { data?: unknown; errors?: { extensions?: { code?: string } }[] },
  };
};
const refusedCount = async () => {
  const text = await (await fetch(gw.url.replace('/graphql', '/metrics'))).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('cairn_gateway_refused_total{reason="variables-too-deep"}'));
  return line ? Number(line.split(' ').at(-1)) : 0;
};

test('variables nested 10,000 deep get a typed 400, counted; the gateway keeps serving', async () => {
  const d = 10_000;
  const r = await post(`{"query":"{ _meta { height } }","variables":{"x":${'['.repeat(d)}${']'.repeat(d)}}}`);
  assert.equal(r.status, 400, JSON.stringify(r.body));
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'VARIABLES_TOO_DEEP');
  assert.equal(await refusedCount(), 1);
  const ok = await post(JSON.stringify({ query: '{ _meta { height } }', variables: { x: [[1]] } }));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.data, { _meta: { height: 1 } });
});
