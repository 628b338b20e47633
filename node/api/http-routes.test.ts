/**
 * The HTTP API's routes over the node's operator surface (issue 13, item 6): a fake ApiControl
 * (a plain object; NodeControl is Cairn's own interface, not an outside service) that records
 * what reaches it, behind the real server and guard. What the routes add is checked here: input
 * parsing and its refusals, the mapping of outcomes and ControlErrors to statuses and codes, and
 * the error counter; what the control answers is served as it is.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { Registry } from 'prom-client';
import { toHex } from '../chain/bytes.ts';
import type { SealedEntry } from '../chain/types.ts';
import { ControlError, type EntryOutcome, type NodeStatus } from '../control.ts';
import { MAX_CLASSIFY_CHARS } from '../fl/classify.ts';
import { createLogger } from '../log.ts';
import { knowledgeEntry, testKey } from '../testing/forge.ts';
import { type ApiControl, startHttpApi } from './http.ts';

const TOKEN = 'ab'.repeat(32);
const ID = 'cd'.repeat(32);

/** A status no real node would build this second: peers, a failed store, a sync outcome. */
const STATUS: NodeStatus = {
  peerId: '12D3KooWfake',
  publicKey: 'ef'.repeat(32),
  role: 'hub',
  capabilities: ['mine', 'relay'],
  membership: { mode: 'roster', member: false, admin: false, refusal: 'revoked' },
  chainId: '01'.repeat(32),
  height: 42,
  headHash: '02'.repeat(32),
  totalWork: '123456789012345678901234567890',
  difficultyTarget: 'ffff',
  mempoolSize: 3,
  orphanCount: 1,
  blockCount: 45,
  syncState: 'syncing',
  lastSync: { kind: 'aborted', imported: 2, reason: 'peer lied', blame: 'peer-x', disproved: 'lie' },
  mining: false,
  storage: {
    ok: false,
    reason: 'ENOSPC',
    at: 1_800_000_000_000,
    committedHeight: 41,
    committedHash: '03'.repeat(32),
  },
  addrs: ['/ip4/127.0.0.1/tcp/4001'],
  connectionKinds: { tcp: 1, 'webrtc-direct': 0, relayed: 0, 'webrtc-via-relay': 0, other: 0 },
  relays: [],
  peers: [
    {
      peerId: 'peer-a',
      rttMs: 4,
      height: 42,
      role: 'submind',
      score: -1.25,
      remoteAddrs: ['/ip4/127.0.0.1/tcp/5'],
      kinds: ['tcp'],
    },
    { peerId: 'peer-b', member: { name: 'laptop', role: 'backup' }, score: 0, remoteAddrs: [], kinds: [] },
  ],
  banned: [{ peer: 'peer-c', until: 1_800_000_060_000, reason: 'invalid-block' }],
  bannedAddresses: [{ address: '10.0.0.9', until: 1_800_000_060_000 }],
  blocked: ['peer-d'],
};

/** What reached the control, call by call. */
let calls: [string, ...unknown[]][] = [];
/** The next outcome of submit / submitSigned, and what reconcile does. */
let nextOutcome: EntryOutcome;
let reconcileImpl: (peerId?: string) => Promise<unknown>;
/** What the privacy ledger reports. */
let privacy: ReturnType<ApiControl['flPrivacy']>;
/** What classify does. */
let classifyImpl: (text: string) => Promise<unknown>;

const control: ApiControl = {
  status: () => {
    calls.push(['status']);
    return STATUS;
  },
  submit: async (content, metadata) => {
    calls.push(['submit', content, metadata]);
    return nextOutcome;
  },
  submitSigned: async (entry) => {
    calls.push(['submitSigned', entry.idHex]);
    return { ...nextOutcome, id: entry.idHex };
  },
  mempool: () => ({ ids: [ID] }),
  blocks: (range) => {
    calls.push(['blocks', range]);
    return {
      blocks: [{ height: 7, hash: '04'.repeat(32), entries: 2, timestamp: 1_800_000_000_000, miner: 'ab' }],
    };
  },
  locateEntry: (id) =>
    id === ID ? { id, status: 'included', height: 7, block: '04'.repeat(32) } : undefined,
  members: () => ({
    mode: 'roster',
    members: [
      {
        publicKeyHex: 'aa'.repeat(32),
        name: 'kim',
        role: 'submind',
        capabilities: new Set(['train'] as const),
        issuedAtMs: 1,
        expiresAtMs: 2,
        admin: false,
        state: 'revoked',
        revokedAtMs: 3,
      },
    ],
  }),
  blockPeers: (ids) => {
    calls.push(['blockPeers', ids]);
    return { peers: ['peer-a'], blocked: [...ids] };
  },
  unblockPeers: (ids) => {
    calls.push(['unblockPeers', ids]);
    return { peers: ['peer-a'], blocked: [] };
  },
  classify: async (text) => {
    calls.push(['classify', text]);
    return classifyImpl(text) as ReturnType<ApiControl['classify']>;
  },
  flPrivacy: () => {
    calls.push(['flPrivacy']);
    return privacy;
  },
  setFlBudget: async (epsilon) => {
    calls.push(['setFlBudget', epsilon]);
    privacy = { ...privacy, budgetEpsilon: epsilon, epsilonRemaining: epsilon - privacy.epsilonTotal };
    return privacy;
  },
  reconcile: async (peerId) => {
    calls.push(['reconcile', peerId]);
    return reconcileImpl(peerId) as ReturnType<ApiControl['reconcile']>;
  },
};

const registry = new Registry();
let api: Awaited<ReturnType<typeof startHttpApi>>;

before(async () => {
  api = await startHttpApi({ control, registry, log: createLogger('silent') }, '127.0.0.1', 0, {
    token: TOKEN,
  });
});
after(() => {
  api.server.close();
  api.server.closeAllConnections();
});
beforeEach(() => {
  calls = [];
  privacy = {
    mode: 'record',
    delta: 1e-5,
    budgetEpsilon: 3,
    epsilonTotal: 3,
    epsilonRemaining: 0,
    rounds: 20,
    steps: 100,
    history: [],
    uncommitted: { shareInAll: 0, byCoordinator: {}, openRounds: 0, capInAll: 0.25, capPerCoordinator: 0.15 },
    declines: { 'round-exceeds-budget': 1 },
  };
  nextOutcome = { id: ID, status: 'added', accepted: true, reason: null };
  classifyImpl = async () => ({ version: ID, round: 3, spam: true, score: 0.8125 });
  reconcileImpl = async (peerId) => ({
    peerId: peerId ?? 'peer-a',
    sent: 1,
    received: 2,
    roundTrips: 1,
    bytes: 99,
  });
});

/** A route's JSON: an error body's fields, or anything else a route serves. */
type Answer = { error: string; code: string } & Record<string, unknown>;

async function call(
  method: 'GET' | 'POST',
  p: string,
  body?: unknown,
): Promise<{ status: number; body: Answer }> {
  const res = await fetch(`${api.url}${p}`, {
    method,
    ...(method === 'POST'
      ? {
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
          body: typeof body === 'string' ? body : JSON.stringify(body ?? {}),
        }
      : {}),
  });
  return { status: res.status, body: (await res.json()) as Answer };
}

const errorsCounted = async (route: string, code: string) =>
  (await registry.getSingleMetric('cairn_api_errors_total')!.get()).values.find(
    (v) => v.labels.route === route && v.labels.code === code,
  )?.value ?? 0;

test('GET /status serves control.status() verbatim', async () => {
  const r = await call('GET', '/status');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, STATUS);
  assert.deepEqual(calls, [['status']]);
});

test('POST /entries reaches control.submit with the content and metadata, answers id and status', async () => {
  const r = await call('POST', '/entries', { content: 'hello', metadata: [['topic', 'bees']] });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { id: ID, status: 'added' });
  assert.deepEqual(calls, [['submit', 'hello', [['topic', 'bees']]]]);
  nextOutcome = { id: ID, status: 'duplicate', accepted: true, reason: null };
  assert.deepEqual((await call('POST', '/entries', { content: 'hello' })).body, {
    id: ID,
    status: 'duplicate',
  });
  assert.deepEqual(calls[1], ['submit', 'hello', []]);
});

test('an entry the mempool refuses is a 422 with its reason, counted', async () => {
  const before = await errorsCounted('POST /entries', 'API_ENTRY_REJECTED');
  nextOutcome = { id: ID, status: 'rejected', accepted: false, reason: 'mempool-full: over quota' };
  const r = await call('POST', '/entries', { content: 'hello' });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, { error: 'mempool-full: over quota', code: 'API_ENTRY_REJECTED' });
  assert.equal(await errorsCounted('POST /entries', 'API_ENTRY_REJECTED'), before + 1);
});

test('malformed bodies get 400 and never reach the control', async () => {
  for (const [body, error] of [
    [{ content: 7 }, /content must be a string/],
    [{ content: 'x', metadata: [['k']] }, /metadata must be/],
    [{ content: 'x', metadata: 'k=v' }, /metadata must be/],
    ['{"content":', /not valid JSON/],
    ['["content"]', /must be a JSON object/],
    ['null', /must be a JSON object/],
  ] as const) {
    const r = await call('POST', '/entries', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.code, 'API_BAD_REQUEST');
    assert.match(r.body.error, error);
  }
  assert.equal((await call('POST', '/admin/block-peers', { peers: [1] })).status, 400);
  assert.equal((await call('POST', '/admin/reconcile', { peerId: 5 })).status, 400);
  assert.equal((await call('GET', '/chain?from=abc')).status, 400);
  assert.equal((await call('GET', '/chain?to=1.5')).status, 400);
  assert.deepEqual(calls, []);
  assert.ok((await errorsCounted('POST /entries', 'API_BAD_REQUEST')) >= 6);
});

test('POST /entries/signed decodes the hex and hands the entry to control.submitSigned', async () => {
  const entry: SealedEntry = knowledgeEntry(testKey(1), 1_800_000_000_000, 'signed elsewhere');
  const r = await call('POST', '/entries/signed', { entry: toHex(entry.encoded) });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { id: entry.idHex, status: 'added' });
  assert.deepEqual(calls, [['submitSigned', entry.idHex]]);
  const bad = await call('POST', '/entries/signed', { entry: 'abcd' });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error, /^not an entry/);
  assert.equal(calls.length, 1);
});

test('ControlErrors map to 400 (invalid) and 409 (unavailable); anything else is a 500', async () => {
  reconcileImpl = async () => {
    throw new ControlError('not a peer id: x', 'invalid');
  };
  const invalid = await call('POST', '/admin/reconcile', { peerId: 'x' });
  assert.deepEqual(
    [invalid.status, invalid.body],
    [400, { error: 'not a peer id: x', code: 'API_BAD_REQUEST' }],
  );
  reconcileImpl = async () => {
    throw new ControlError('no connected peer to reconcile with');
  };
  const none = await call('POST', '/admin/reconcile', {});
  assert.deepEqual(
    [none.status, none.body],
    [409, { error: 'no connected peer to reconcile with', code: 'API_UNAVAILABLE' }],
  );
  reconcileImpl = async () => {
    throw new Error('stream reset');
  };
  const broken = await call('POST', '/admin/reconcile', {});
  assert.deepEqual([broken.status, broken.body.code], [500, 'API_INTERNAL']);
  assert.deepEqual(calls, [
    ['reconcile', 'x'],
    ['reconcile', undefined],
    ['reconcile', undefined],
  ]);
  assert.equal(await errorsCounted('POST /admin/reconcile', 'API_UNAVAILABLE'), 1);
  assert.equal(await errorsCounted('POST /admin/reconcile', 'API_INTERNAL'), 1);
});

test('POST /admin/reconcile passes the peer and serves the outcome', async () => {
  const r = await call('POST', '/admin/reconcile', { peerId: 'peer-b' });
  assert.deepEqual(r.body, { peerId: 'peer-b', sent: 1, received: 2, roundTrips: 1, bytes: 99 });
  assert.deepEqual(calls, [['reconcile', 'peer-b']]);
});

test('block and unblock pass the ids through and serve peers and the block list', async () => {
  const r = await call('POST', '/admin/block-peers', { peers: ['peer-x', 'peer-y'] });
  assert.deepEqual(r.body, { peers: ['peer-a'], blocked: ['peer-x', 'peer-y'] });
  await call('POST', '/admin/unblock-peers', { peers: ['peer-x'] });
  assert.deepEqual(calls, [
    ['blockPeers', ['peer-x', 'peer-y']],
    ['unblockPeers', ['peer-x']],
  ]);
});

test('GET /chain passes from and to as integers, absent ones as undefined', async () => {
  const r = await call('GET', '/chain?from=3&to=9');
  assert.equal(r.status, 200);
  assert.equal((r.body.blocks as { height: number }[])[0]?.height, 7);
  await call('GET', '/chain');
  assert.deepEqual(calls, [
    ['blocks', { from: 3, to: 9 }],
    ['blocks', { from: undefined, to: undefined }],
  ]);
});

test('GET /entries/<id>: where the control says it is, 404 when nowhere; bad ids find no route', async () => {
  assert.deepEqual((await call('GET', `/entries/${ID}`)).body, {
    id: ID,
    status: 'included',
    height: 7,
    block: '04'.repeat(32),
  });
  const missing = await call('GET', `/entries/${'ee'.repeat(32)}`);
  assert.deepEqual([missing.status, missing.body.code], [404, 'API_NOT_FOUND']);
  assert.match(missing.body.error, /neither in the mempool nor in the main chain/);
  assert.equal(await errorsCounted('GET /entries/<id>', 'API_NOT_FOUND'), 1);
  for (const p of ['/entries/xyz', '/entries/%3Cid%3E', '/nowhere']) {
    const r = await call('GET', p);
    assert.deepEqual([r.status, r.body.code], [404, 'API_NOT_FOUND'], p);
    assert.match(r.body.error, /^no route/);
  }
  assert.equal(await errorsCounted('unknown', 'API_NOT_FOUND'), 3);
});

test('GET /members lists the roster with each key’s state; GET /mempool the ids', async () => {
  assert.deepEqual((await call('GET', '/members')).body, {
    mode: 'roster',
    members: [
      {
        publicKey: 'aa'.repeat(32),
        name: 'kim',
        role: 'submind',
        capabilities: ['train'],
        admin: false,
        issuedAtMs: 1,
        expiresAtMs: 2,
        state: 'revoked',
        revokedAtMs: 3,
      },
    ],
  });
  assert.deepEqual((await call('GET', '/mempool')).body, { ids: [ID] });
});

test('POST /classify hands the text to control.classify and serves its verdict', async () => {
  const r = await call('POST', '/classify', { text: 'win a prize' });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { version: ID, round: 3, spam: true, score: 0.8125 });
  assert.deepEqual(calls, [['classify', 'win a prize']]);
});

test('POST /classify: 400 without text, 413 over the bound, neither reaching the control', async () => {
  for (const body of [{}, { text: 5 }, { text: ['a'] }]) {
    const r = await call('POST', '/classify', body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal(r.body.code, 'API_BAD_REQUEST');
  }
  const before = await errorsCounted('POST /classify', 'API_PAYLOAD_TOO_LARGE');
  const long = await call('POST', '/classify', { text: 'a'.repeat(MAX_CLASSIFY_CHARS + 1) });
  assert.equal(long.status, 413);
  assert.equal(long.body.code, 'API_PAYLOAD_TOO_LARGE');
  assert.equal(await errorsCounted('POST /classify', 'API_PAYLOAD_TOO_LARGE'), before + 1);
  assert.deepEqual(calls, []);
});

test('POST /classify before any model version is a counted 409 API_NO_MODEL', async () => {
  const before = await errorsCounted('POST /classify', 'API_NO_MODEL');
  classifyImpl = async () => {
    throw new ControlError('no model version is committed on this chain yet', 'no-model');
  };
  const r = await call('POST', '/classify', { text: 'hello' });
  assert.equal(r.status, 409);
  assert.deepEqual(r.body, {
    error: 'no model version is committed on this chain yet',
    code: 'API_NO_MODEL',
  });
  assert.equal(await errorsCounted('POST /classify', 'API_NO_MODEL'), before + 1);
});

test('GET /fl/privacy serves the ledger; POST /fl/budget needs the token and a finite ε ≥ 0', async () => {
  const r = await call('GET', '/fl/privacy');
  assert.equal(r.status, 200);
  assert.equal(r.body.epsilonTotal, 3);
  assert.deepEqual(r.body.declines, { 'round-exceeds-budget': 1 });
  for (const body of [{}, { epsilon: -1 }, { epsilon: '5' }, { epsilon: null }]) {
    const bad = await call('POST', '/fl/budget', body);
    assert.equal(bad.status, 400, JSON.stringify(body));
  }
  // Without the cookie token the guard refuses it before the route.
  const anon = await fetch(`${api.url}/fl/budget`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ epsilon: 100 }),
  });
  assert.equal(anon.status, 401);
  assert.deepEqual(calls, [['flPrivacy']]);
  const ok = await call('POST', '/fl/budget', { epsilon: 6 });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.budgetEpsilon, 6);
  assert.equal(ok.body.epsilonRemaining, 3);
  assert.deepEqual(calls.at(-1), ['setFlBudget', 6]);
});

test('GET /messages: each message with the newest model verdict on its text, null before a model', async () => {
  const inbox = [
    { id: 'a:b:1', from: 'aa'.repeat(32), fromName: 'kim', seq: 1, text: 'cheap pills now', sentAtMs: 1 },
    { id: 'a:b:2', from: 'aa'.repeat(32), fromName: 'kim', seq: 2, text: 'lunch at noon?', sentAtMs: 2 },
  ].map((m, i) => ({ ...m, receivedAtMs: 3, contentId: '0e'.repeat(32), order: i + 1 }));
  const messaging = {
    send: async () => {
      throw new Error('not sent in this test');
    },
    inbox: async () => inbox,
    outbox: async () => [],
  };
  const withInbox = await startHttpApi(
    { control, registry: new Registry(), log: createLogger('silent'), messaging },
    '127.0.0.1',
    0,
    { token: TOKEN },
  );
  const read = async () => {
    const res = await fetch(`${withInbox.url}/messages`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200);
    return ((await res.json()) as { messages: { text: string; spam: unknown }[] }).messages;
  };
  try {
    classifyImpl = async (text) => ({ version: ID, round: 4, spam: text.includes('pills'), score: 0.5 });
    assert.deepEqual(
      (await read()).map((m) => [m.text, m.spam]),
      [
        ['cheap pills now', { spam: true, score: 0.5, version: ID, round: 4 }],
        ['lunch at noon?', { spam: false, score: 0.5, version: ID, round: 4 }],
      ],
    );
    classifyImpl = async () => {
      throw new ControlError('no model version is committed yet', 'no-model');
    };
    assert.deepEqual(
      (await read()).map((m) => m.spam),
      [null, null],
    );
  } finally {
    withInbox.server.close();
    withInbox.server.closeAllConnections();
  }
});
