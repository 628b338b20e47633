/**
 * The req/resp framework between real libp2p hosts on loopback: chunked answers, result codes,
 * request and response bounds, garbage frames, per-peer rate limits and deadlines, and the
 * penalties each side reports through its hooks.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PeerId, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import pino from 'pino';
import { DecodeError } from '../chain/codec/errors.ts';
import { startLoopbackHost } from '../testing/loopback-host.ts';
import type { CairnLibp2p } from './host.ts';
import type { Status } from './messages.ts';
import type { PeerAction } from './peer-scores.ts';
import { STATUS } from './protocols.ts';
import {
  HandlerError,
  type ProtocolSpec,
  RESULT,
  ReqResp,
  ReqRespError,
  type ReqRespErrorCode,
} from './reqresp.ts';

const silent = pino({ level: 'silent' });
const PREFIX = '/cairn/reqresp-test';

interface Penalty {
  readonly peer: string;
  readonly action: PeerAction;
  readonly reason: string;
}

interface Side {
  readonly host: CairnLibp2p;
  readonly id: PeerId;
  readonly rr: ReqResp;
  readonly penalties: Penalty[];
  readonly observed: { protocol: string; direction: string; outcome: string }[];
}

const dirs: string[] = [];
const sides: Side[] = [];

async function startSide(seed: number): Promise<Side> {
  const { host, identity } = await startLoopbackHost(seed, 'reqresp', dirs);
  const penalties: Penalty[] = [];
  const observed: Side['observed'] = [];
  const rr = new ReqResp(
    host,
    PREFIX,
    {
      penalise: (peer, action, reason) => penalties.push({ peer: peer.toString(), action, reason }),
      observe: (protocol, direction, outcome) => observed.push({ protocol, direction, outcome }),
    },
    silent,
  );
  const side = { host, id: identity.peerId, rr, penalties, observed };
  sides.push(side);
  return side;
}

/** A protocol on raw bytes; a request starting with 0xff does not decode. */
function rawSpec(
  name: string,
  over: Partial<ProtocolSpec<Uint8Array, Uint8Array>> = {},
): ProtocolSpec<Uint8Array, Uint8Array> {
  return {
    name,
    maxRequestBytes: 64,
    maxChunkBytes: 64,
    maxChunks: 8,
    timeoutMs: 3000,
    rateLimit: { points: 1000, durationSec: 10 },
    encodeRequest: (b) => b,
    decodeRequest: (b) => {
      if (b[0] === 0xff) throw new DecodeError('invalid-value', 'request starts with 0xff');
      return Uint8Array.from(b);
    },
    encodeResponse: (b) => b,
    decodeResponse: (b) => {
      if (b[0] === 0xee) throw new DecodeError('invalid-value', 'response starts with 0xee');
      return Uint8Array.from(b);
    },
    ...over,
  };
}

/** `n` chunks: [0, tag], [1, tag], … */
const chunks = (n: number, tag = 7) => Array.from({ length: n }, (_, i) => Uint8Array.of(i, tag));

async function expectReqRespError(p: Promise<unknown>, code: ReqRespErrorCode, message?: RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ReqRespError, `expected a ReqRespError, got ${(err as Error)?.name}: ${err}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  });
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Opens a stream on `protocol` to `to` and writes raw bytes, then closes our side. */
async function sendRaw(from: Side, to: Side, protocol: string, bytes: Uint8Array): Promise<Stream> {
  const stream = await from.host.dialProtocol(to.id, protocol);
  stream.send(bytes);
  await stream.close().catch(() => {});
  return stream;
}

let server: Side;
let client: Side;
let other: Side;

const echo = rawSpec('echo');
const slow = rawSpec('slow');
const limited = rawSpec('limited', {
  rateLimit: { points: 10, durationSec: 60 },
  // A request costs its first byte in points.
  cost: (req) => req[0] ?? 1,
});
// The server is willing to send up to 100 chunks of up to 1 KiB; requesters expect less.
const generous = rawSpec('generous', { maxChunks: 100, maxChunkBytes: 1024 });
// The server ends an answer before 5 payload bytes: two chunks of 2 bytes.
const capped = rawSpec('capped', { maxResponseBytes: 5 });

before(async () => {
  [server, client, other] = await Promise.all([startSide(1), startSide(2), startSide(3)]);
  const status: Status = {
    chainId: new Uint8Array(32).fill(1),
    genesisHash: new Uint8Array(32).fill(2),
    headHash: new Uint8Array(32).fill(3),
    headHeight: 42,
    totalWork: 4242n,
    role: 'hub',
    capabilities: ['relay', 'archive'],
  };
  await server.rr.register(STATUS, (theirs) => [{ ...status, headHeight: theirs.headHeight + 1 }]);
  // Answers with as many chunks as the first request byte asks for.
  await server.rr.register(echo, (req) => chunks(req[0] ?? 0, req[1]));
  await server.rr.register(slow, async () => {
    await sleep(1500);
    return chunks(1);
  });
  await server.rr.register(limited, () => chunks(1));
  await server.rr.register(capped, (req) => chunks(req[0] ?? 0));
  await server.rr.register(generous, (req) =>
    req[0] === 1 ? [new Uint8Array(100).fill(1)] : req[0] === 2 ? [Uint8Array.of(0xee)] : chunks(5),
  );
  // Result codes raised by handlers: the request's first byte picks one.
  const codes = [RESULT.invalidRequest, RESULT.serverError, RESULT.unavailable, RESULT.rateLimited];
  await server.rr.register(rawSpec('failing'), (req) => {
    const code = codes[req[0] ?? 0];
    if (code === undefined) throw new Error('an ordinary crash');
    throw new HandlerError(code, `handler says no (${code})`);
  });
  for (const s of [client, other]) await s.host.dial(server.host.getMultiaddrs());
});

after(async () => {
  await Promise.all(sides.map((s) => s.host.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('answers', () => {
  test('a multi-chunk response arrives complete and in order', async () => {
    const out = await client.rr.request(server.id, echo, Uint8Array.of(5, 9));
    assert.deepEqual(out, chunks(5, 9));
    assert.deepEqual(server.penalties, []);
    assert.deepEqual(client.penalties, []);
  });

  test('zero chunks is a valid, empty answer', async () => {
    assert.deepEqual(await client.rr.request(server.id, echo, Uint8Array.of(0)), []);
  });

  test('the server sends at most maxChunks, even when its handler returns more', async () => {
    const out = await client.rr.request(server.id, echo, Uint8Array.of(20, 1));
    assert.equal(out.length, echo.maxChunks);
    assert.deepEqual(out, chunks(echo.maxChunks, 1));
  });

  test('the status protocol round-trips a real payload', async () => {
    const mine: Status = {
      chainId: new Uint8Array(32).fill(1),
      genesisHash: new Uint8Array(32).fill(2),
      headHash: new Uint8Array(32).fill(9),
      headHeight: 7,
      totalWork: 1n,
      role: 'observer',
      capabilities: [],
    };
    const [theirs, ...rest] = await client.rr.request(server.id, STATUS, mine);
    assert.deepEqual(rest, []);
    assert.equal(theirs?.headHeight, 8, 'the handler saw our status');
    assert.equal(theirs?.role, 'hub');
    assert.deepEqual(theirs?.capabilities, ['relay', 'archive']);
    assert.equal(theirs?.totalWork, 4242n);
  });

  test('both sides report outcomes to observe()', async () => {
    const before = client.observed.length;
    await client.rr.request(server.id, echo, Uint8Array.of(1));
    assert.deepEqual(client.observed.slice(before), [
      { protocol: 'echo', direction: 'outbound', outcome: 'ok' },
    ]);
    await until(
      () =>
        server.observed.some((o) => o.protocol === 'echo' && o.direction === 'inbound' && o.outcome === 'ok'),
      'inbound observation',
    );
  });
});

describe('handler errors', () => {
  const cases: [number, ReqRespErrorCode, RegExp][] = [
    [0, 'invalid-request', /handler says no \(1\)/],
    [1, 'server-error', /handler says no \(2\)/],
    [2, 'resource-unavailable', /handler says no \(3\)/],
    [3, 'rate-limited', /handler says no \(4\)/],
    [4, 'server-error', /an ordinary crash/],
  ];
  for (const [pick, code, message] of cases) {
    test(`a handler's result reaches the requester as '${code}'`, async () => {
      await expectReqRespError(
        client.rr.request(server.id, rawSpec('failing'), Uint8Array.of(pick)),
        code,
        message,
      );
    });
  }

  test('handler errors cost neither side any score', () => {
    assert.deepEqual(server.penalties, []);
    assert.deepEqual(client.penalties, []);
  });
});

describe('bad requests', () => {
  test('an oversized request is refused (invalid-request) and its sender penalised', async () => {
    const n = server.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, echo, new Uint8Array(100)),
      'invalid-request',
      /too long/,
    );
    await until(() => server.penalties.length > n, 'penalty');
    assert.deepEqual(
      server.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[client.id.toString(), 'low-tolerance']],
    );
    assert.match(server.penalties[n]!.reason, /^echo: /);
    // 64 bytes, exactly the bound, are fine.
    const ok = new Uint8Array(64);
    ok[0] = 1;
    assert.equal((await client.rr.request(server.id, echo, ok)).length, 1);
  });

  test('a request that does not decode is refused and penalised', async () => {
    const n = server.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, echo, Uint8Array.of(0xff, 1)),
      'invalid-request',
      /starts with 0xff/,
    );
    await until(() => server.penalties.length > n, 'penalty');
    assert.deepEqual(
      server.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[client.id.toString(), 'low-tolerance']],
    );
  });

  const garbage: [string, string, () => Uint8Array][] = [
    ['random bytes on the status protocol', 'status', () => randomBytes(500)],
    ['a length prefix above the bound', 'echo', () => Uint8Array.from([0x7f, ...randomBytes(127)])],
    ['a length prefix longer than the bound allows', 'echo', () => Uint8Array.from([0xc8, 0x81, 0x01, 1, 2])],
    [
      'a well-framed payload that does not decode',
      'echo',
      () => Uint8Array.from([5, 0xff, ...randomBytes(4)]),
    ],
  ];
  for (const [name, protocol, bytes] of garbage) {
    test(`${name} on a raw stream: the sender is penalised, the server keeps working`, async () => {
      const n = server.penalties.length;
      await sendRaw(other, server, server.rr.protocolId(protocol), bytes());
      await until(() => server.penalties.length > n, 'penalty');
      assert.deepEqual(
        server.penalties.slice(n).map((p) => [p.peer, p.action]),
        [[other.id.toString(), 'low-tolerance']],
      );
      assert.deepEqual(await other.rr.request(server.id, echo, Uint8Array.of(2, 3)), chunks(2, 3));
    });
  }

  test('the server answers garbage with an invalid-request frame', async () => {
    const stream = await other.host.dialProtocol(server.id, server.rr.protocolId('echo'));
    const lp = lpStream(stream);
    await lp.write(Uint8Array.of(0xff));
    const frame = (await lp.read({ signal: AbortSignal.timeout(3000) })).subarray();
    assert.equal(frame[0], RESULT.invalidRequest);
    assert.match(new TextDecoder().decode(frame.subarray(1)), /0xff/);
    stream.abort(new Error('done'));
  });
});

describe('rate limits', () => {
  test('over its per-peer budget a peer gets rate-limited and a high-tolerance penalty', async () => {
    const n = server.penalties.length;
    // Budget 10 points: 4 + 6 fit, the next request does not.
    assert.equal((await client.rr.request(server.id, limited, Uint8Array.of(4))).length, 1);
    assert.equal((await client.rr.request(server.id, limited, Uint8Array.of(6))).length, 1);
    await expectReqRespError(client.rr.request(server.id, limited, Uint8Array.of(1)), 'rate-limited');
    assert.deepEqual(
      server.penalties.slice(n).map((p) => [p.peer, p.action, p.reason]),
      [[client.id.toString(), 'high-tolerance', 'limited: rate limited']],
    );
    // Another peer has its own budget.
    assert.equal((await other.rr.request(server.id, limited, Uint8Array.of(10))).length, 1);
    await expectReqRespError(other.rr.request(server.id, limited, Uint8Array.of(1)), 'rate-limited');
    // Other protocols are not affected.
    assert.equal((await client.rr.request(server.id, echo, Uint8Array.of(1))).length, 1);
  });
});

describe('deadlines and bad responses', () => {
  test('a handler slower than the deadline: timeout on the requester, server penalised lightly', async () => {
    const n = client.penalties.length;
    const started = performance.now();
    await expectReqRespError(client.rr.request(server.id, slow, Uint8Array.of(1), 300), 'timeout');
    const ms = performance.now() - started;
    assert.ok(ms >= 250 && ms < 1400, `gave up after ${Math.round(ms)} ms`);
    assert.deepEqual(
      client.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[server.id.toString(), 'high-tolerance']],
    );
    // The spec's own deadline applies when none is given.
    await expectReqRespError(
      client.rr.request(server.id, { ...slow, timeoutMs: 200 }, Uint8Array.of(1)),
      'timeout',
    );
  });

  test('more chunks than maxChunks: invalid-response, server penalised', async () => {
    const n = client.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, { ...generous, maxChunks: 3 }, Uint8Array.of(0)),
      'invalid-response',
      /more than 3 chunks/,
    );
    assert.deepEqual(
      client.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[server.id.toString(), 'low-tolerance']],
    );
    // Exactly maxChunks is fine.
    assert.equal(
      (await client.rr.request(server.id, { ...generous, maxChunks: 5 }, Uint8Array.of(0))).length,
      5,
    );
  });

  test('a chunk over maxChunkBytes: invalid-response, server penalised', async () => {
    const n = client.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, { ...generous, maxChunkBytes: 64 }, Uint8Array.of(1)),
      'invalid-response',
    );
    assert.deepEqual(
      client.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[server.id.toString(), 'low-tolerance']],
    );
    // A chunk of exactly maxChunkBytes is fine.
    assert.equal(
      (await client.rr.request(server.id, { ...generous, maxChunkBytes: 100 }, Uint8Array.of(1))).length,
      1,
    );
  });

  test('a chunk that does not decode: invalid-response, server penalised', async () => {
    const n = client.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, generous, Uint8Array.of(2)),
      'invalid-response',
      /starts with 0xee/,
    );
    assert.deepEqual(
      client.penalties.slice(n).map((p) => p.action),
      ['low-tolerance'],
    );
  });

  /** A server-side protocol that writes `bytes` as its whole answer. */
  async function rawAnswer(name: string, bytes: Uint8Array): Promise<void> {
    await server.host.handle(server.rr.protocolId(name), async (stream) => {
      const lp = lpStream(stream);
      await lp.read({ signal: AbortSignal.timeout(3000) });
      stream.send(bytes);
      await stream.close();
    });
  }

  const badAnswers: [string, Uint8Array, RegExp][] = [
    ['an unknown result code', Uint8Array.of(3, 9, 0x41, 0x42), /invalid-response/],
    ['an empty chunk', Uint8Array.of(0), /empty chunk/],
    ['a chunk cut short', Uint8Array.of(10, 0, 1, 2), /invalid-response/],
    ['a good chunk, then one cut short', Uint8Array.of(2, 0, 5, 10, 0, 1), /invalid-response/],
  ];
  badAnswers.forEach(([name, bytes, message], i) => {
    test(`${name}: invalid-response`, async () => {
      await rawAnswer(`raw-${i}`, bytes);
      const n = client.penalties.length;
      await expectReqRespError(
        client.rr.request(server.id, rawSpec(`raw-${i}`), Uint8Array.of(1)),
        'invalid-response',
        message,
      );
      assert.deepEqual(
        client.penalties.slice(n).map((p) => [p.peer, p.action]),
        [[server.id.toString(), 'low-tolerance']],
      );
    });
  });

  test('more chunks than the request asked for: refused at the first extra one and penalised', async () => {
    // Three good chunks for a request whose answer may have two.
    await rawAnswer('extra', Uint8Array.of(2, 0, 1, 2, 0, 2, 2, 0, 3));
    const spec = rawSpec('extra', { chunksFor: (req) => req[0]! });
    const n = client.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, spec, Uint8Array.of(2)),
      'invalid-response',
      /more than 2 chunks/,
    );
    assert.deepEqual(
      client.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[server.id.toString(), 'low-tolerance']],
    );
  });

  test('a server ends its answer, short, before it would exceed maxResponseBytes', async () => {
    const n = client.penalties.length;
    const got = await client.rr.request(server.id, capped, Uint8Array.of(5));
    assert.deepEqual(got, chunks(2));
    assert.equal(client.penalties.length, n, 'a short answer is no offence');
  });

  test('an answer over the requester’s maxResponseBytes: invalid-response, server penalised', async () => {
    const n = client.penalties.length;
    // Five chunks of 2 bytes (10 bytes) for a requester that takes 7.
    await expectReqRespError(
      client.rr.request(server.id, { ...echo, maxResponseBytes: 7 }, Uint8Array.of(5)),
      'invalid-response',
      /answer over 7 bytes \(6 read, next chunk 2\)/,
    );
    assert.deepEqual(
      client.penalties.slice(n).map((p) => [p.peer, p.action]),
      [[server.id.toString(), 'low-tolerance']],
    );
    // Exactly the bound is fine.
    assert.equal(
      (await client.rr.request(server.id, { ...echo, maxResponseBytes: 10 }, Uint8Array.of(5))).length,
      5,
    );
  });

  test('a server that does not speak the protocol: the request fails, nothing is penalised', async () => {
    const n = client.penalties.length;
    await expectReqRespError(
      client.rr.request(server.id, rawSpec('nobody-home'), Uint8Array.of(1)),
      'dial-failed',
    );
    assert.equal(client.penalties.length, n);
  });
});
