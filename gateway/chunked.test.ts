/**
 * POST bodies without Content-Length (Transfer-Encoding: chunked, what fetch sends for a stream
 * and curl for `-H 'Transfer-Encoding: chunked'`). Attack review of issue 13: one such anonymous
 * POST ended the gateway process (headers written twice inside an unhandled promise), and they
 * skipped the anonymous rate bucket (no client address on that path). Real server on loopback.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { startTestGateway, type TestGateway } from './testing.ts';

const QUERY = JSON.stringify({ query: '{ _meta { height } }' });

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({
    production: true,
    seed: { blocks: 2 },
    anonymousRateLimit: { perSecond: 1, burst: 20 },
  });
});
after(() => gw.close());

/** One POST through node:http, chunked or with a length; status, body and Connection header. */
function post(chunked: boolean, body = QUERY) {
  const u = new URL(gw.url);
  return new Promise<{ status: number; body: string; connection?: string }>((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(chunked ? {} : { 'content-length': Buffer.byteLength(body) }),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            body: Buffer.concat(parts).toString(),
            connection: res.headers.connection,
          }),
        );
      },
    );
    req.on('error', reject);
    if (chunked) {
      // Two writes before end(): node:http sends Transfer-Encoding: chunked, no Content-Length.
      req.write(body.slice(0, 5));
      req.end(body.slice(5));
    } else req.end(body);
  });
}

test('a chunked POST is answered 200 with the same data as one with Content-Length', async () => {
  const chunked = await post(true);
  assert.equal(chunked.status, 200, chunked.body);
  assert.deepEqual(JSON.parse(chunked.body), { data: { _meta: { height: 1 } } });
  // The process survived (an unhandled rejection would have ended this test run) and still serves.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await post(false)).status, 200);
});

test('an over-long chunked body gets 413 and the connection is closed', async () => {
  const big = JSON.stringify({ query: `{ ${'_meta { height } '.repeat(40_000)} }` });
  const r = await post(true, big);
  assert.equal(r.status, 413);
  assert.equal(JSON.parse(r.body).errors[0].extensions.code, 'PAYLOAD_TOO_LARGE');
  assert.equal(r.connection, 'close');
  assert.equal((await post(false)).status, 200);
});

test('chunked POSTs count against the anonymous bucket: 429 after the burst', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) statuses.push((await post(true)).status);
  const first429 = statuses.indexOf(429);
  assert.ok(first429 > 0 && first429 <= 21, `first 429 at ${first429}: ${statuses.join(',')}`);
  // Content-Length requests share the same bucket: still refused right after.
  assert.equal((await post(false)).status, 429);
});
