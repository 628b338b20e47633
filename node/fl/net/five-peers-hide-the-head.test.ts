/**
 * ATK-16 (LOW, fixed): a handful of peers answering `unavailable` hid a model another peer
 * served, so a node rebased (round-runner.ts basisFor) off a head that was on the network.
 *
 * ModelSync.fetch asked the preferred peers (a head's author) and then `peers()` — the peer book in
 * insertion order, whoever sent a status first — but only 5 in all. With the author offline, four
 * identities early in the book answering "model not stored here" made every fetch of that version
 * fail although the fifth peer served it; headFetchAttempts (2) rounds later the node trained from
 * an older version or zeros. Measured before the fix (5 hiders, then the honest peer): 5 of 7 peers
 * asked (the offline author and 4 hiders, 5 failed requests), "no peer served model", the honest
 * peer never asked.
 *
 * Now a fetch asks every connected peer, claimants first, then those that served a model before,
 * then the rest shuffled, a few at a time, bounded by time (FL_DEFAULTS.modelFetch), not by a
 * count; a claimant that answers `unavailable` and a peer serving other bytes are penalised.
 * ModelSync and ModelStore are real; each peer's model-by-hash handler runs behind the protocol's
 * own encodings, its result codes mapped as reqresp.ts maps them.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Registry } from 'prom-client';
import { fromHex, toHex } from '../../chain/bytes.ts';
import { createLogger } from '../../log.ts';
import type { PeerAction } from '../../p2p/peer-scores.ts';
import { HandlerError, RESULT, ReqRespError, type ReqRespErrorCode } from '../../p2p/reqresp.ts';
import { cleanup, tmp } from '../../testing/fl-round-rig.ts';
import { zeroParams } from '../logistic.ts';
import { createFlMetrics } from './metrics.ts';
import { encodeModel } from './model-codec.ts';
import { ModelStore } from './model-store.ts';
import { type FetchPolicy, ModelSync, ModelUnavailable } from './model-sync.ts';
import { MODEL_BY_HASH } from './protocols.ts';

after(cleanup);

const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
const CODE: Record<number, ReqRespErrorCode> = {
  [RESULT.invalidRequest]: 'invalid-request',
  [RESULT.unavailable]: 'resource-unavailable',
};

/** A version in a store of its own (the honest peer's). */
async function version(k: number) {
  const store = new ModelStore(await tmp());
  const w = zeroParams(64);
  w[3] = k;
  const { hash } = await store.put(w);
  return { store, w, hash };
}

interface Behaviour {
  /** Serves from this store. */
  readonly store?: ModelStore;
  /** Unreachable (a dial failure). */
  readonly offline?: boolean;
  /** Answers other bytes. */
  readonly lies?: Uint8Array;
  /** Answers nothing for this long, then times out. */
  readonly silentMs?: number;
}

async function rig(behaviours: Map<string, Behaviour>, peers: () => PeerId[], policy?: Partial<FetchPolicy>) {
  const asked: string[] = [];
  const penalties: [string, PeerAction][] = [];
  const registry = new Registry();
  const store = new ModelStore(await tmp());
  const sync = new ModelSync({
    store,
    spec: MODEL_BY_HASH,
    metrics: createFlMetrics(registry),
    log: createLogger('silent'),
    peers,
    penalise: (peer, action) => penalties.push([peer, action]),
    ...(policy ? { policy } : {}),
    reqresp: {
      request: (async (peer: PeerId, spec: typeof MODEL_BY_HASH, req: Uint8Array) => {
        asked.push(peer.toString());
        const b = behaviours.get(peer.toString()) ?? {};
        if (b.offline) throw new ReqRespError('dial-failed', 'offline');
        if (b.silentMs !== undefined) {
          await new Promise((r) => setTimeout(r, b.silentMs).unref());
          throw new ReqRespError('timeout', 'no answer');
        }
        const h = spec.decodeRequest(spec.encodeRequest(req));
        try {
          const bytes = b.lies ?? (await b.store?.getEncoded(toHex(h)));
          if (!bytes) throw new HandlerError(RESULT.unavailable, 'model not stored here');
          return [spec.decodeResponse(spec.encodeResponse(bytes))];
        } catch (err) {
          if (err instanceof HandlerError) throw new ReqRespError(CODE[err.result]!, err.message);
          throw err;
        }
      }) as never,
    },
  });
  const outcomes = async () =>
    Object.fromEntries(
      (await registry.getSingleMetric('cairn_fl_models_fetched_total')!.get()).values.map((v) => [
        v.labels.outcome,
        v.value,
      ]),
    );
  return { sync, store, asked, penalties, outcomes };
}

test('a model one peer serves is fetched although the author is offline and 5 peers lack it', async () => {
  const { store: honestStore, w, hash } = await version(0.25);
  const honest = await newPeer();
  const hiders = await Promise.all([0, 1, 2, 3, 4].map(newPeer));
  const author = await newPeer();
  const behaviours = new Map<string, Behaviour>([
    [honest.toString(), { store: honestStore }],
    [author.toString(), { offline: true }],
  ]);
  const r = await rig(behaviours, () => [...hiders, honest]);
  let outcome: string;
  try {
    const got = await r.sync.resolve(fromHex(hash), w.length, [author.toString()]);
    outcome = `fetched (${got.length} parameters)`;
  } catch (err) {
    outcome = (err as Error).message;
  }
  const figures = `${outcome}; asked ${r.asked.length} of 7 (author + 6), honest asked: ${r.asked.includes(honest.toString())}, outcomes ${JSON.stringify(await r.outcomes())}`;
  assert.ok(r.asked.includes(honest.toString()), figures);
  assert.match(outcome, /^fetched/, figures);
  assert.equal(r.asked[0], author.toString(), 'the claimant is asked first');
  assert.ok(await r.store.getEncoded(hash), 'a named version is kept on disk');
  // Peers that never claimed it may lack it: an honest answer, not penalised.
  assert.deepEqual(r.penalties, [], figures);
});

test('the peers after the claimants are asked in an order they cannot choose; one that served before first', async () => {
  const { store: honestStore, w, hash } = await version(0.5);
  const honest = await newPeer();
  const hiders = await Promise.all([0, 1, 2, 3, 4].map(newPeer));
  const behaviours = new Map<string, Behaviour>([[honest.toString(), { store: honestStore }]]);
  // The honest peer is last in the book every time; the hiders keep their early places.
  const positions = new Set<number>();
  for (let run = 0; run < 12; run++) {
    const r = await rig(behaviours, () => [...hiders, honest], { inFlight: 1 });
    await r.sync.resolve(fromHex(hash), w.length);
    positions.add(r.asked.indexOf(honest.toString()));
  }
  assert.ok(positions.size > 1, `the honest peer was asked at positions ${[...positions]}`);

  // A peer that served this node a model is asked before the rest next time.
  const r = await rig(behaviours, () => [...hiders, honest], { inFlight: 1 });
  await r.sync.resolve(fromHex(hash), w.length);
  const next = await version(0.75);
  behaviours.set(honest.toString(), { store: next.store });
  r.asked.length = 0;
  await r.sync.resolve(fromHex(next.hash), next.w.length);
  assert.deepEqual(r.asked, [honest.toString()]);
});

test('a claimant that says unavailable, and a peer serving other bytes, are penalised and counted', async () => {
  const { store: honestStore, w, hash } = await version(0.125);
  const [honest, announcer, liar, hider] = [
    await newPeer(),
    await newPeer(),
    await newPeer(),
    await newPeer(),
  ];
  const other = zeroParams(64);
  other[3] = 9;
  const behaviours = new Map<string, Behaviour>([
    [honest.toString(), { store: honestStore }],
    [liar.toString(), { lies: encodeModel(other) }],
  ]);
  const r = await rig(behaviours, () => [liar, hider, honest], { inFlight: 1 });
  // The announcer (a round from this version) has none; the liar, named as a claimant too,
  // serves other bytes; the hider, if asked before the honest peer, lacks it.
  const params = await r.sync.resolve(
    fromHex(hash),
    w.length,
    [announcer.toString(), liar.toString()],
    false,
  );
  assert.equal(params.length, w.length);
  assert.deepEqual(r.asked.slice(0, 2), [announcer.toString(), liar.toString()]);
  assert.deepEqual(r.penalties.slice(0, 2), [
    [announcer.toString(), 'mid-tolerance'],
    [liar.toString(), 'low-tolerance'],
  ]);
  const outcomes = await r.outcomes();
  assert.equal(outcomes['claim-broken'], 1);
  assert.equal(outcomes.mismatch, 1);
  assert.equal(outcomes.ok, 1);
  assert.equal(r.penalties.length, 2, `the hider, if asked, is not penalised: ${JSON.stringify(outcomes)}`);
  assert.ok(r.store.heldModel(hash), 'an announced version is held, not stored');
});

test('a silent peer costs hedgeMs, not its timeout; a fetch nobody answers ends at its budget', async () => {
  const { store: honestStore, w, hash } = await version(0.0625);
  const [silent, honest] = [await newPeer(), await newPeer()];
  const behaviours = new Map<string, Behaviour>([
    [silent.toString(), { silentMs: 5_000 }],
    [honest.toString(), { store: honestStore }],
  ]);
  const r = await rig(behaviours, () => [honest], { hedgeMs: 50, budgetMs: 2_000 });
  const t0 = performance.now();
  await r.sync.resolve(fromHex(hash), w.length, [silent.toString()]);
  const ms = performance.now() - t0;
  assert.ok(ms < 1_000, `fetched in ${ms.toFixed(0)} ms behind a silent claimant`);
  assert.deepEqual(r.asked, [silent.toString(), honest.toString()]);

  const quiet = await Promise.all([0, 1, 2, 3].map(newPeer));
  for (const q of quiet) behaviours.set(q.toString(), { silentMs: 5_000 });
  const r2 = await rig(behaviours, () => quiet, { hedgeMs: 20, budgetMs: 300, inFlight: 2 });
  const t1 = performance.now();
  await assert.rejects(
    r2.sync.resolve(fromHex((await version(3)).hash), w.length),
    // Each silent peer stops counting as in flight after hedgeMs: all 4 are asked within the budget.
    (e: unknown) => e instanceof ModelUnavailable && e.reason === 'out-of-time' && e.asked === 4,
  );
  const spent = performance.now() - t1;
  assert.ok(spent >= 290 && spent < 1_500, `gave up after ${spent.toFixed(0)} ms (budget 300)`);
  assert.equal(r2.asked.length, 4, 'a silent peer holds no in-flight place past hedgeMs');

  // Silent peers keep at most 4 × inFlight requests outstanding, however many there are.
  const many = await Promise.all(Array.from({ length: 20 }, newPeer));
  for (const q of many) behaviours.set(q.toString(), { silentMs: 5_000 });
  const r4 = await rig(behaviours, () => many, { hedgeMs: 10, budgetMs: 400, inFlight: 1 });
  await assert.rejects(r4.sync.resolve(fromHex((await version(4)).hash), w.length), ModelUnavailable);
  assert.equal(r4.asked.length, 4, 'outstanding requests bounded at 4 × inFlight');

  // Every peer asked and none has it: a prompt, typed failure.
  const r3 = await rig(new Map(), () => quiet.slice(0, 3));
  await assert.rejects(
    r3.sync.resolve(fromHex(hash), w.length),
    (e: unknown) => e instanceof ModelUnavailable && e.reason === 'no-peer-served' && e.asked === 3,
  );
});
