/**
 * classifyPerSec: POST /classify answered per second by a node's HTTP API, the real server and
 * guard (cookie token, JSON check) over loopback, with the node's Classifier reading a trained
 * model from a real ModelStore, as a running node does. Texts are corpus mail bodies (clipped to
 * the API's bound), sent by `concurrency` clients back to back for `durationMs`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { startHttpApi } from '../node/api/http.ts';
import type { ModelPayload } from '../node/chain/types.ts';
import { ControlError } from '../node/control.ts';
import { MAX_CLASSIFY_CHARS } from '../node/fl/classify.ts';
import type { Params } from '../node/fl/logistic.ts';
import { Classifier } from '../node/fl/net/classifier.ts';
import { ModelStore } from '../node/fl/net/model-store.ts';
import { createLogger } from '../node/log.ts';

/** Prime, larger than the corpus (6,046 mails), so the stride visits every text once per pass. */
const STRIDE = 7919;

export interface ClassifyBenchOptions {
  readonly durationMs?: number;
  readonly concurrency?: number;
}

export interface ClassifyBenchResult {
  readonly perSec: number;
  readonly requests: number;
  readonly spamShare: number;
}

/** Mail bodies as a person would paste them: the part after the headers, within the API's bound. */
export const bodiesOf = (mails: readonly { text: string }[]): string[] =>
  mails.map((m) => {
    const t = m.text.replace(/\r\n/g, '\n');
    const cut = t.indexOf('\n\n');
    return (cut < 0 ? t : t.slice(cut + 2)).slice(0, MAX_CLASSIFY_CHARS);
  });

export async function classifyPerSec(
  params: Params,
  texts: readonly string[],
  o: ClassifyBenchOptions = {},
): Promise<ClassifyBenchResult> {
  const durationMs = o.durationMs ?? 3000;
  const concurrency = o.concurrency ?? 8;
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-classify-bench-'));
  const store = new ModelStore(dir);
  const { hash } = await store.put(params);
  const head: ModelPayload = {
    kind: 'model',
    modelHash: Buffer.from(hash, 'hex'),
    parentHash: null,
    round: 1,
    metrics: [],
    epsilon: 0,
  };
  const classifier = new Classifier({
    head: () => head,
    load: async (h) => {
      const p = await store.get(Buffer.from(h).toString('hex'));
      if (!p) throw new ControlError('model missing');
      return p;
    },
  });
  const token = randomBytes(32).toString('hex');
  const refuse = () => {
    throw new Error('not used by the bench');
  };
  const api = await startHttpApi(
    {
      control: {
        classify: (text) => classifier.classify(text),
        status: refuse,
        submit: refuse,
        submitSigned: refuse,
        mempool: refuse,
        flPrivacy: refuse,
        setFlBudget: refuse,
        blocks: refuse,
        locateEntry: refuse,
        members: refuse,
        blockPeers: refuse,
        unblockPeers: refuse,
        reconcile: refuse,
      },
      registry: new Registry(),
      log: createLogger('silent'),
    },
    '127.0.0.1',
    0,
    { token },
  );
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  let requests = 0;
  let spam = 0;
  let next = 0;
  const end = performance.now() + durationMs;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          // A prime stride walks the corpus out of its order (ham folders first, then spam).
          const text = texts[(next++ * STRIDE) % texts.length]!;
          const res = await fetch(`${api.url}/classify`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ text }),
          });
          if (!res.ok) throw new Error(`classify: HTTP ${res.status} ${await res.text()}`);
          if (((await res.json()) as { spam: boolean }).spam) spam++;
          requests++;
        }
      }),
    );
  } finally {
    api.server.close();
    api.server.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  return { perSec: requests / seconds, requests, spamShare: requests ? spam / requests : 0 };
}
