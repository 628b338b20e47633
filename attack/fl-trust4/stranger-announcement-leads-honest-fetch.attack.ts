/**
 * Finding (LOW; the join fix of `2feb882` separates only entry fetches from announcements): an
 * honest coordinator's announcement joins a fetch of the same hash that another announcer
 * started, with that announcer as the only claimant, so the honest announcer, which serves the
 * version, is never asked and its participants decline the round `model-unavailable`.
 *
 * Mechanism. ModelSync.resolve keys announcements' fetches `hash:announced` and a second caller
 * joins the first, whatever its `prefer` (its own announcer) and budget. A stranger that
 * announces hash H to a node lacking it, and does not serve it, decides how the next honest
 * announcement of H is fetched: claimant the stranger (silent), then served-then-silent ids, all
 * within the 12 s announcement budget. H is public when it is a version on the chain: a rebased
 * round (round-runner.ts basisFor) announces an older version, not the head (read, not run).
 * Costs the stranger one announcement per node (it holds a slot of its own share meanwhile).
 *
 * Measured (times scaled 1/20 as in node/fl/net/head-fetch-joins-announcement-fetch.test.ts:
 * announcement budget 600 ms, hedge 100 ms; a silent stranger and 6 served-then-silent ids):
 * alone, the honest announcement's fetch asks its announcer first and gets H (control); behind the
 * stranger's: ModelUnavailable out-of-time for both, 6 asked, the honest coordinator not asked.
 *
 * Fix that would make this pass: a caller joining a fetch under way adds its claimants ahead of
 * the peers not yet asked (and its budget, if longer); or fetches are keyed by (hash, claimant).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Registry } from 'prom-client';
import { fromHex, toHex } from '../../node/chain/bytes.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { createFlMetrics } from '../../node/fl/net/metrics.ts';
import { ModelStore } from '../../node/fl/net/model-store.ts';
import { ModelSync, ModelUnavailable } from '../../node/fl/net/model-sync.ts';
import { MODEL_BY_HASH } from '../../node/fl/net/protocols.ts';
import { createLogger } from '../../node/log.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import { ReqRespError } from '../../node/p2p/reqresp.ts';
import { cleanup, tmp } from '../../node/testing/fl-round-rig.ts';

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

test('a stranger’s announcement of a hash does not decide how an honest announcement of it is fetched', async () => {
  const basis = await version(0.25);
  const honestCoordinator = await newPeer(); // announces a round from `basis` and serves it
  const stranger = await newPeer(); // announced the same hash first; silent
  const sybils = await Promise.all(Array.from({ length: 6 }, newPeer));
  const bystanders = await Promise.all(Array.from({ length: 5 }, newPeer));
  const serves = new Map<string, ModelStore>([[honestCoordinator.toString(), basis.store]]);
  const silent = new Set<string>([stranger.toString()]);
  const peers = () => [...bystanders, honestCoordinator, stranger, ...sybils];

  const run = async (strangerFirst: boolean) => {
    const r = await rig(serves, silent, peers);
    // Six ids serve one announced model each, then fall silent (served-once-then-silent).
    for (const [i, s] of sybils.entries()) {
      silent.delete(s.toString());
      const own = await version(10 + i);
      serves.set(s.toString(), own.store);
      await r.sync.resolve(fromHex(own.hash), own.w.length, [s.toString()], false, ANNOUNCE_MS);
      silent.add(s.toString());
    }
    r.asked.length = 0;
    // FlService: an announcement of a hash that is not the head resolves with named = false.
    const first = strangerFirst
      ? settle(r.sync.resolve(fromHex(basis.hash), basis.w.length, [stranger.toString()], false, ANNOUNCE_MS))
      : Promise.resolve('none');
    const honest = await settle(
      r.sync.resolve(fromHex(basis.hash), basis.w.length, [honestCoordinator.toString()], false, ANNOUNCE_MS),
    );
    const figures = `honest announcement's fetch: ${honest}; the stranger's: ${await first}; asked ${r.asked.length}, honest coordinator asked: ${r.asked.includes(honestCoordinator.toString())}`;
    return { honest, figures };
  };
  const control = await run(false);
  assert.equal(control.honest, 'fetched', `control: ${control.figures}`);
  const { honest, figures } = await run(true);
  assert.equal(honest, 'fetched', figures);
});
