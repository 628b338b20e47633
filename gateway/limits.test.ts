import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gql, startTestGateway, type TestGateway } from './testing.ts';

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({ seed: { blocks: 3 } });
});
after(() => gw.close());

const stillUp = async () => {
  const r = await gql(gw.url, '{ _meta { height } }');
  assert.equal(r.status, 200);
  assert.equal(r.body.data._meta.height, 2);
};

/** A limit's rejection is a validation error: coded, 400 under graphql-response+json, 200 under json. */
async function assertValidationRejection(query: string, message: RegExp) {
  const r = await gql(gw.url, query);
  assert.equal(r.status, 200);
  assert.equal(r.body.data, undefined);
  assert.match(r.body.errors?.[0]?.message ?? '', message);
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
  const strict = await gql(gw.url, query, undefined, { accept: 'application/graphql-response+json' });
  assert.equal(strict.status, 400);
  assert.match(strict.body.errors?.[0]?.message ?? '', message);
}

test('a depth-50 query is refused with a depth error, and the gateway keeps serving', async () => {
  const query = `{ block(height: 2) { ${'parent { '.repeat(49)} hash ${'} '.repeat(49)} } }`;
  await assertValidationRejection(query, /depth limit of 12 exceeded/);
  await stillUp();
});

test('1,000 aliases are refused with an alias error', async () => {
  const query = `{ ${Array.from({ length: 1000 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
  await assertValidationRejection(query, /Aliases limit of 30 exceeded, found 1000/);
  await stillUp();
});

test('a shallow but costly query is refused by the cost limit', async () => {
  // 20 aliased pages of 100 blocks with their entries: depth 5, few aliases, cost far over 5,000.
  const page = (i: number) => `p${i}: blockConnection(first: 100) { edges { node { hash entries { id } } } }`;
  await assertValidationRejection(
    `{ ${Array.from({ length: 20 }, (_, i) => page(i)).join(' ')} }`,
    /Query Cost limit of \d+ exceeded/,
  );
  await stillUp();
});

test('a 1 MB document gets 413 with a clear message', async () => {
  const query = `{ ${'_meta { height } '.repeat(60_000)} }`;
  assert.ok(query.length > 1_000_000);
  const r = await gql(gw.url, query);
  assert.equal(r.status, 413);
  assert.match(
    r.body.errors?.[0]?.message ?? '',
    /Request body too large: \d+ bytes, the limit is 524288 bytes/,
  );
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'PAYLOAD_TOO_LARGE');
  // Chunked (no Content-Length) too: bounded while reading.
  const chunked = await fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: new Blob([JSON.stringify({ query })]).stream(),
    duplex: 'half',
  } as RequestInit);
  assert.equal(chunked.status, 413);
  await stillUp();
});

test('a document just under the body limit but over 5,000 tokens is refused by the token limit', async () => {
  const r = await gql(gw.url, `{ ${'__typename '.repeat(6000)} }`);
  assert.match(r.body.errors?.[0]?.message ?? '', /Token limit of 5000 exceeded/);
  await stillUp();
});

test('health, readiness and metrics endpoints', async () => {
  const base = gw.url.replace(/\/graphql$/, '');
  assert.equal((await fetch(`${base}/health`)).status, 200);
  const ready = await fetch(`${base}/ready`);
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /graphql_envelop_request_duration/);
  assert.match(metrics, /process_cpu_user_seconds_total/);
});

test('a 100-block range with all entry text, aliased 30 times, is refused before it runs', async () => {
  const range = (i: number) =>
    `r${i}: blocks(fromHeight: 0, toHeight: 99) { hash entries { id content payload signature } }`;
  await assertValidationRejection(
    `{ ${Array.from({ length: 30 }, (_, i) => range(i)).join(' ')} }`,
    /Query list cost limit of 20000 exceeded: the answer could hold 3003000 objects/,
  );
  // A variable page counts as the largest page allowed (100).
  const r = await gql(
    gw.url,
    'query ($n: Int) { blockConnection(first: $n) { edges { node { entries { content } } } } }',
    { n: 1 },
  );
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
  // What a dashboard asks (a page of blocks; one block with its entries) still runs.
  const page = await gql(gw.url, '{ blockConnection(first: 100) { edges { node { hash entryCount } } } }');
  assert.equal(page.body.errors, undefined);
  const one = await gql(gw.url, '{ block(height: 2) { hash entries { id content } } }');
  assert.equal(one.body.errors, undefined);
  assert.equal(one.body.data.block.entries.length, 2);
  await stillUp();
});

test('19 blocks with all entry text are refused by the answer size, alone or aliased', async () => {
  // 19,019 objects: under the object limit, which gave text no weight. By the chain's bounds the
  // answer could take 43 MiB (1 MiB of entries a block, counted for content and for payload).
  const range = (i: number) =>
    `r${i}: blocks(fromHeight: 0, toHeight: 18) { hash entries { id content payload signature } }`;
  const aliased = (n: number) => `{ ${Array.from({ length: n }, (_, i) => range(i)).join(' ')} }`;
  await assertValidationRejection(
    aliased(1),
    /Query answer size limit of 16\.0 MiB exceeded: the answer could take 42\.6 MiB/,
  );
  // Aliased, it is over both measures; the object count is reported first.
  for (const n of [5, 30])
    await assertValidationRejection(aliased(n), /Query list cost limit of 20000 exceeded/);
  // Text asked through a fragment weighs the same (10 blocks: 10,010 objects, 20 MiB of text).
  const r = await gql(
    gw.url,
    '{ blocks(fromHeight: 0, toHeight: 9) { ...text } } fragment text on Block { entries { content payload } }',
  );
  assert.equal(r.body.errors?.[0]?.extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
  assert.match(r.body.errors![0]!.message, /answer size limit/);
  // The same range without the text runs: it is the text that weighs.
  const ids = await gql(gw.url, '{ blocks(fromHeight: 0, toHeight: 18) { hash entries { id } } }');
  assert.equal(ids.body.errors, undefined);
  assert.equal(ids.body.data.blocks.length, 3);
  const metrics = await (await fetch(gw.url.replace(/\/graphql$/, '/metrics'))).text();
  assert.match(metrics, /cairn_gateway_refused_total\{reason="answer-bytes"\} [1-9]/);
  await stillUp();
});
