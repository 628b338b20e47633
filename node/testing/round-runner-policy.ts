/**
 * The round runner's policy as in-process FL tests run it (update-level rounds, short deadlines,
 * the production defaults otherwise), so each test names only the parts it is about.
 */
import { planDpSgd } from '../fl/dp-sgd-fedavg.ts';
import type { RoundRunnerDeps } from '../fl/net/round-runner.ts';
import { FL_DEFAULTS } from '../options.ts';

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
