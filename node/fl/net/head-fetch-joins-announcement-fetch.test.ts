/**
 * Finding (LOW, fixed; the model-fetch fix of `03ea120`): a chain entry's fetch joins a fetch of the
 * same hash that an announcement started, with the announcer's claimants and its 12 s budget, so
 * the entry's author (online, storing the version) is never asked first or at all: 3 ids hide a
 * new head that its author serves.
 *
 * Mechanism. ModelSync.resolve keys fetches in flight by hash and joins one under way, whatever
 * `prefer` and `budgetMs` the joining caller passes. An announcement naming hash H (FlService:
 * `resolve(H, count, [announcer], …, announceBudgetMs = 12 s)`) that arrives before the block with
 * H's entry (its miner, or any peer that got the block first, knows H) makes the entry's fetch
 * (watchChain: `resolve(H, count, [author])`, 60 s) wait on the announcer's: claimant the
 * announcer (silent), then the peers that served before (two more ids that served one announced
 * model each, silent now: attack/fl-trust3/served-once-then-silent), then the shuffled rest with
 * the author in it. Three silent requests fill the 3 in-flight places beyond the 12 s budget (15 s
 * timeout), so the fetch ends out-of-time, the author never asked.
 *
 * Measured (times scaled 1/20, production ratios: announcement budget 600 ms, hedge 100 ms, 3 in
 * flight, silent requests time out at 750 ms): alone, the entry's fetch asks the author first and
 * gets H (control, passes); behind the announcement: ModelUnavailable out-of-time for both, 3 peers
 * asked (the announcer and the 2 ids), the author not asked.
 *
 * Fix (this test failed before it), model-sync.ts: a request unanswered after hedgeMs stops
 * counting as in flight (at most 4 × inFlight outstanding) and costs a served peer its place
 * ahead of the shuffled rest, as a failed answer does; and a chain entry's fetch never joins an
 * announcement's (fetches in flight are keyed by hash and named), so it runs with its own
 * claimant (the author) and budget.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Registry } from 'prom-client';
import { fromHex, toHex } from '../../chain/bytes.ts';
import { createLogger } from '../../log.ts';
import { FL_DEFAULTS } from '../../options.ts';
import { ReqRespError } from '../../p2p/reqresp.ts';
import { cleanup, tmp } from '../../testing/fl-round-rig.ts';
import { zeroParams } from '../logistic.ts';
import { createFlMetrics } from './metrics.ts';
import { ModelStore } from './model-store.ts';
import { ModelSync, ModelUnavailable } from './model-sync.ts';
import { MODEL_BY_HASH } from './protocols.ts';

after(cleanup);

const SCALE = 1 / 20;
const TIMEOUT_MS = MODEL_BY_HASH.timeoutMs * SCALE;
const ANNOUNCE_MS = FL_DEFAULTS.modelFetch.announceBudgetMs * SCALE;
const policy = {
  budgetMs: FL_DEFAULTS.modelFetch.budgetMs * SCALE,
  hedgeMs: FL_DEFAULTS.modelFetch.hedgeMs * SCALE,
  inFlight: FL_DEFAULTS.modelFetch.inFlight,
};
const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));

async function version(k: number) {
  const store = new ModelStore(await tmp());
  const w = zeroParams(64);
  w[3] = k;
  const { hash } = await store.put(w);
  return { store, w, hash };
}

async function rig(serves: Map<string, ModelStore>, silent: Set<string>, peers: () => PeerId[]) {
  const asked: string[] = [];
  const sync = new ModelSync({
    store: new ModelStore(await tmp()),
    spec: MODEL_BY_HASH,
    metrics: createFlMetrics(new Registry()),
    log: createLogger('silent'),
    peers,
    policy,
    reqresp: {
      request: (async (peer: PeerId, spec: typeof MODEL_BY_HASH, req: Uint8Array) => {
        const id = peer.toString();
        asked.push(id);
        if (silent.has(id)) {
          await new Promise((r) => setTimeout(r, TIMEOUT_MS).unref());
          throw new ReqRespError('timeout', 'no answer');
        }
        const h = spec.decodeRequest(spec.encodeRequest(req));
        const bytes = await serves.get(id)?.getEncoded(toHex(h));
        if (!bytes) throw new ReqRespError('resource-unavailable', 'not stored');
        return [spec.decodeResponse(spec.encodeResponse(bytes))];
      }) as never,
    },
  });
  return { sync, asked };
}

const settle = (p: Promise<unknown>) =>
  p.then(
    () => 'fetched',
    (err) => (err instanceof ModelUnavailable ? `ModelUnavailable ${err.reason}` : (err as Error).message),
  );

test('an announcement’s fetch of a hash does not decide how the chain entry naming it is fetched', async () => {
  const head = await version(0.5);
  const author = await newPeer();
  const announcer = await newPeer();
  const sybils = [await newPeer(), await newPeer()];
  const bystanders = await Promise.all(Array.from({ length: 5 }, newPeer));
  const serves = new Map<string, ModelStore>([[author.toString(), head.store]]);
  const silent = new Set<string>([announcer.toString()]);
  const peers = () => [...bystanders, author, announcer, ...sybils];

  // Control: alone, the entry's fetch asks its author first and gets the version.
  const alone = await rig(serves, silent, peers);
  assert.equal(
    await settle(alone.sync.resolve(fromHex(head.hash), head.w.length, [author.toString()])),
    'fetched',
  );
  assert.equal(alone.asked[0], author.toString());

  const r = await rig(serves, silent, peers);
  // Two ids serve one announced model each, then fall silent (served-once-then-silent).
  for (const [i, s] of sybils.entries()) {
    const own = await version(10 + i);
    serves.set(s.toString(), own.store);
    await r.sync.resolve(fromHex(own.hash), own.w.length, [s.toString()], false, ANNOUNCE_MS);
    silent.add(s.toString());
  }
  r.asked.length = 0;
  // The announcement naming the new head arrives first; then the block with its entry.
  const announced = settle(
    r.sync.resolve(fromHex(head.hash), head.w.length, [announcer.toString()], false, ANNOUNCE_MS),
  );
  const entry = await settle(r.sync.resolve(fromHex(head.hash), head.w.length, [author.toString()]));
  const figures = `entry's fetch: ${entry}; announcement's: ${await announced}; asked ${r.asked.length}, author asked: ${r.asked.includes(author.toString())}`;
  assert.equal(entry, 'fetched', figures);
});
