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
