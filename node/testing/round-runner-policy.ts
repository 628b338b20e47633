/**
 * The round runner as in-process FL tests run it: its policy (update-level rounds, short
 * deadlines, the production defaults otherwise) and an offline rig (a model store in a temp dir,
 * metrics, survivor keys, a ModelSync that no peer serves), so each test names only its own parts.
 */
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Registry } from 'prom-client';
import { planDpSgd } from '../fl/dp-sgd-fedavg.ts';
import { createFlMetrics } from '../fl/net/metrics.ts';
import { ModelStore } from '../fl/net/model-store.ts';
import { ModelSync } from '../fl/net/model-sync.ts';
import type { RoundRunnerDeps } from '../fl/net/round-runner.ts';
import { createLogger } from '../log.ts';
import { FL_DEFAULTS } from '../options.ts';
import { survivorKeys } from './survivor-keys.ts';

export function testRunnerPolicy() {
  return {
    penalise: () => {},
    emitVersion: () => {},
    deadlineMs: 10_000,
    lossTolerance: FL_DEFAULTS.lossTolerance,
    headWaitMs: 1_000,
    headFetchAttempts: FL_DEFAULTS.headFetchAttempts,
    headFallbackDepth: FL_DEFAULTS.headFallbackDepth,
    mode: 'update',
    recordPlan: planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta),
    recordUpdateClipNorm: FL_DEFAULTS.recordUpdateClipNorm,
  } satisfies Partial<RoundRunnerDeps>;
}

/** A store, metrics, keys and a ModelSync with no network at all (no peer serves anything). */
export async function offlineRunnerRig(prefix: string) {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  const store = new ModelStore(path.join(dir, 'models'));
  const metrics = createFlMetrics(new Registry());
  const log = createLogger('error');
  const keys = await survivorKeys();
  const models = new ModelSync({
    store,
    reqresp: { request: async () => [] },
    spec: {} as never,
    peers: () => [],
    metrics,
    log,
  });
  return { dir, store, metrics, log, keys, models };
}
