/**
 * Finding 3b (MEDIUM): a coordinator's model entry may name any 32 bytes as the model hash. If no
 * node has (or will ever serve) those bytes, every later round fails to resolve its global model,
 * and no model entry can extend anything but that head: federated learning stops network-wide.
 * The held-out-loss and range checks that gate a version are the honest coordinator's own code,
 * not a chain rule, so the dishonest one skips them.
 *
 *   npm exec -- node --import tsx --test attack/fl-trust/unavailable-head.attack.ts
 *
 * Fails until an honest coordinator can make progress past a head whose bytes are unavailable
 * (e.g. an admin-signed reset, or a chain rule that the entry's author must serve the bytes
 * before the entry is relayed / mined).
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import type { ModelPayload } from '../../node/chain/types.ts';
import { planDpSgd } from '../../node/fl/dp-sgd-fedavg.ts';
import { FlData } from '../../node/fl/net/data.ts';
import { localLink } from '../../node/fl/net/links.ts';
import { createFlMetrics } from '../../node/fl/net/metrics.ts';
import { ModelStore } from '../../node/fl/net/model-store.ts';
import { ModelSync } from '../../node/fl/net/model-sync.ts';
import { FlParticipant } from '../../node/fl/net/participant.ts';
import type { FlRoundEvent } from '../../node/fl/net/round-events.ts';
import { modelHeadOf, RoundRunner } from '../../node/fl/net/round-runner.ts';
import { createLogger } from '../../node/log.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import { survivorKeys } from '../../node/testing/survivor-keys.ts';

test('after a version whose bytes nobody has, an honest coordinator still commits a version', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'attack16-head-'));
  const store = new ModelStore(path.join(dir, 'models'));
  const metrics = createFlMetrics(new Registry());
  const log = createLogger('error');
  const keys = await survivorKeys();
  // No peer serves the model (as in round-runner.test.ts's fixture: no network at all).
  const models = new ModelSync({
    store,
    reqresp: { request: async () => [] },
    spec: {} as never,
    peers: () => [],
    metrics,
    log,
  });
  const parts = [0, 1, 2].map(
    (k) =>
      new FlParticipant({
        self: `p${k}`,
        data: () => new FlData({ index: k, of: 3, mode: 'iid', seed: 42 }, 42).train(),
        resolveModel: (h, n) => models.resolve(h, n),
        storeModel: (b) => store.putEncoded(b),
        verifySurvivors: keys.verify,
      }),
  );
  // The dishonest coordinator's entry, valid by the head rule: round 1, no parent, hash of nothing.
  let head: ModelPayload | undefined = {
    kind: 'model',
    modelHash: new Uint8Array(32).fill(0xab),
    parentHash: null,
    round: 1,
    metrics: [['accuracy', 0.99]],
    epsilon: 0,
  };
  const entries: ModelPayload[] = [];
  const rounds: FlRoundEvent[] = [];
  const runner = new RoundRunner({
    self: 'p0',
    data: new FlData({ index: 0, of: 3, mode: 'iid', seed: 42 }, 42),
    store,
    models,
    modelHead: () => modelHeadOf(head),
    links: () => parts.map((p, k) => localLink(`p${k}`, p)),
    commitEntry: async (p) => {
      entries.push(p);
      head = p;
      return 'id';
    },
    sign: keys.sign,
    penalise: () => {},
    emitRound: (e) => rounds.push(e),
    emitVersion: () => {},
    metrics,
    deadlineMs: 10_000,
    lossTolerance: FL_DEFAULTS.lossTolerance,
    headWaitMs: 1_000,
    mode: 'update',
    recordPlan: planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta),
    recordUpdateClipNorm: FL_DEFAULTS.recordUpdateClipNorm,
    log,
  });
  runner.schedule(
    [1, 2, 3].map((k) => new Uint8Array(32).fill(k)),
    { rounds: 3, noiseMultiplier: 0.05 },
  );
  await runner.idle();
  const failed = rounds.filter((r) => r.status === 'failed');
  console.log(JSON.stringify({ committed: entries.length, failed: failed.length, error: failed[0]?.error }));
  assert.ok(entries.length > 0, `all ${failed.length} rounds failed: ${failed[0]?.error}`);
});
