/**
 * Finding (LOW): a handful of peers that answer `unavailable` hide a model another peer serves,
 * so a node rebases (round-runner.ts basisFor) off a head that is on the network.
 *
 * ModelSync.fetch asks the preferred peers (a head's author) and then `peers()` — the peer book in
 * insertion order (sync/peer-book.ts all(): whoever sent a status first) — but only 5 in all
 * (`.slice(0, 5)`, the preferred ones counted). When the author is offline, four identities early
 * in this node's book that answer "model not stored here" (a valid answer, penalised by no one)
 * make every fetch of that version fail, although the fifth peer in the book serves it.
 * headFetchAttempts (2) rounds later the node's rounds train from an older version it stores
 * (headFallbackDepth) or from zeros, and its entries throw away the head's training: an attacker
 * that keeps those slots pins this node's rounds to old models, and with it the lineage whenever
 * it coordinates.
 *
 * Today (5 hiders, then the honest peer, in the book): resolve() asks 5 of 7 peers (the offline
 * author and 4 hiders; cairn_fl_models_fetched_total{outcome="failed"} 5) and throws "no peer
 * served model"; the honest peer is never asked.
 *
 * Run: npm exec -- node --test attack/fl-trust2/five-peers-hide-the-head.attack.ts
 *
 * Fix that makes it pass: for a version a main-chain entry names, ask every connected peer (one
 * at a time or a few at once, bounded by the round's time, not by a count), in an order the peers
 * cannot choose (shuffled, or peers that served models before first), and count and penalise
 * peers whose status claims the head but which answer `unavailable`.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { Registry } from 'prom-client';
import { fromHex, toHex } from '../../node/chain/bytes.ts';
import { zeroParams } from '../../node/fl/logistic.ts';
import { createFlMetrics } from '../../node/fl/net/metrics.ts';
import { ModelStore } from '../../node/fl/net/model-store.ts';
import { ModelSync } from '../../node/fl/net/model-sync.ts';
import { MODEL_BY_HASH } from '../../node/fl/net/protocols.ts';
import { createLogger } from '../../node/log.ts';
import { HandlerError, RESULT, ReqRespError } from '../../node/p2p/reqresp.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
const tmp = async () => {
  const d = await mkdtemp(path.join(os.tmpdir(), 'atk16-fetch-'));
  dirs.push(d);
  return d;
};
const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));

test('a model one peer serves is fetched although the author is offline and 5 peers lack it', async () => {
  // The honest peer stores the version a main-chain entry names (its author is offline).
  const honestStore = new ModelStore(await tmp());
  const w = zeroParams(64);
  w[3] = 0.25;
  const { hash } = await honestStore.put(w);
  const honest = await newPeer();
  const hiders = await Promise.all([0, 1, 2, 3, 4].map(newPeer));
  const author = await newPeer();

  // Each peer's model-by-hash handler, behind the spec's own request/response encodings.
  const serve = async (peer: PeerId, h: Uint8Array): Promise<Uint8Array[]> => {
    if (peer.equals(honest)) {
      const bytes = await honestStore.getEncoded(toHex(h));
      if (bytes) return [bytes];
    }
    throw new HandlerError(RESULT.unavailable, 'model not stored here');
  };
  const asked: string[] = [];
  const registry = new Registry();
  const metrics = createFlMetrics(registry);
  const sync = new ModelSync({
    store: new ModelStore(await tmp()),
    spec: MODEL_BY_HASH,
    metrics,
    log: createLogger('silent'),
    peers: () => [...hiders, honest],
    reqresp: {
      request: (async (peer: PeerId, spec: typeof MODEL_BY_HASH, req: Uint8Array) => {
        asked.push(peer.toString());
        if (peer.equals(author)) throw new ReqRespError('dial-failed', 'author offline');
        try {
          const answers = await serve(peer, spec.decodeRequest(spec.encodeRequest(req)));
          return answers.map((r) => spec.decodeResponse(spec.encodeResponse(r)));
        } catch (err) {
          throw new ReqRespError('invalid-request', (err as Error).message);
        }
      }) as never,
    },
  });

  let outcome: string;
  try {
    const got = await sync.resolve(fromHex(hash), w.length, [author.toString()]);
    outcome = `fetched (${got.length} parameters)`;
  } catch (err) {
    outcome = (err as Error).message;
  }
  const failed =
    (await registry.getSingleMetric('cairn_fl_models_fetched_total')!.get()).values.find(
      (v) => v.labels.outcome === 'failed',
    )?.value ?? 0;
  const figures = `${outcome}; asked ${asked.length} of 7 (author + 6), honest asked: ${asked.includes(honest.toString())}, failed fetches ${failed}`;
  assert.ok(asked.includes(honest.toString()), figures);
  assert.match(outcome, /^fetched/, figures);
});
