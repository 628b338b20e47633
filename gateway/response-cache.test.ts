import assert from 'node:assert/strict';
import { test } from 'node:test';
import { schema } from '../schema/index.ts';
import { TypeTaggedResponses } from './response-cache.ts';

const result = (n: number) => ({ data: { n } });

/** Stores `doc`'s result under the key the plugin would use, and returns the key. */
async function store(r: TypeTaggedResponses, doc: string, n: number, ttl = 60_000): Promise<string> {
  const key = await r.buildKey({ documentString: doc, sessionId: 'viewer' });
  await r.cache.set(key, result(n), [], ttl);
  return key;
}

test('results are evicted by the types their document selects, and only by those', async () => {
  const r = new TypeTaggedResponses(schema);
  const blocks = await store(r, '{ blockConnection(first: 3) { edges { node { hash } } } }', 1);
  const stats = await store(r, '{ networkStats { difficulty } }', 2);
  const node = await store(r, '{ node(id: "x") { id } }', 3);
  r.invalidateTypes(['NetworkStats']);
  assert.equal(await r.cache.get(stats), null);
  assert.deepEqual(await r.cache.get(blocks), result(1));
  assert.deepEqual(await r.cache.get(node), result(3));
  // A `node(id)` that answered null is a Node read all the same.
  r.invalidateTypes(['Node']);
  assert.equal(await r.cache.get(node), null);
  r.invalidateTypes(['Block']);
  assert.equal(await r.cache.get(blocks), null);
  assert.equal(r.size, 0);
});

test('a document that does not parse is evicted by any invalidation; the TTL and the bound hold', async () => {
  const r = new TypeTaggedResponses(schema, { max: 2 });
  const odd = await store(r, '{ not graphql', 1);
  r.invalidateTypes(['ModelVersion']);
  assert.equal(await r.cache.get(odd), null);
  const short = await store(r, '{ networkStats { at } }', 2, 1);
  await new Promise((res) => setTimeout(res, 5));
  assert.equal(await r.cache.get(short), null, 'past its TTL');
  const a = await store(r, '{ networkStats { at } }', 3);
  const b = await store(r, '{ _meta { height } }', 4);
  const c = await store(r, '{ nodes(first: 1) { edges { node { id } } } }', 5);
  assert.equal(r.size, 2);
  assert.equal(await r.cache.get(a), null, 'the oldest went first');
  assert.deepEqual(await r.cache.get(b), result(4));
  assert.deepEqual(await r.cache.get(c), result(5));
  // Mutations invalidate by the types they name.
  await r.cache.invalidate([{ typename: 'Meta' }]);
  assert.equal(await r.cache.get(b), null);
});

test('concurrent misses of one query wait for the one execution; invalidations and answers release them', async () => {
  const r = new TypeTaggedResponses(schema, { flightWaitMs: 100 });
  const doc = '{ networkStats { at } }';
  const ask = (request: object, d = doc) => r.buildKey({ documentString: d, sessionId: 'viewer', request });
  const first = {};
  const key = await ask(first); // misses: this request executes the query
  let waited = 0;
  const waiting = [ask({}), ask({})].map((k) =>
    k.then((id) => {
      waited++;
      return id;
    }),
  );
  await new Promise((res) => setTimeout(res, 10));
  assert.equal(waited, 0, 'the others wait for the execution');
  await r.cache.set(key, result(1), [], 60_000);
  assert.deepEqual(await Promise.all(waiting), [key, key]);
  assert.deepEqual(await r.cache.get(key), result(1), 'and find its result');
  // An answer without a cached result (errors) lets the waiting ones run the query themselves.
  const meta = '{ _meta { height } }';
  const owner = {};
  await ask(owner, meta);
  const quick = async (p: Promise<unknown>) => {
    const t = performance.now();
    await p;
    return performance.now() - t < 50;
  };
  const behind = ask({}, meta);
  r.finish(owner);
  assert.ok(await quick(behind), 'released by the answer, not the timeout');
  // An invalidation while a query runs: nobody keeps waiting for the older execution.
  const nodes = '{ nodes(first: 1) { edges { node { id } } } }';
  await ask({}, nodes);
  const before = ask({}, nodes);
  r.invalidateTypes(['Block']);
  assert.ok(await quick(before), 'released by the invalidation');
  // An execution that never reports back holds nobody past flightWaitMs.
  const stuck = '{ orphanedBlocks(first: 1) { edges { node { hash } } } }';
  await ask({}, stuck);
  const started = performance.now();
  await ask({}, stuck);
  assert.ok(performance.now() - started >= 90);
  // Mutations never wait: each one runs.
  const m = 'mutation { syncMempool(nodeId: "x") { ok } }';
  await ask({}, m);
  assert.ok(await quick(ask({}, m)));
});
