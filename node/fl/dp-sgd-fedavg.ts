/**
 * FedAvg over record-level DP-SGD, in process: every node asks its ledger, trains locally with
 * DP-SGD from the global model, and the deltas of the nodes that took part are averaged. The
 * reference the networked rounds will follow, and the harness of the test and bench:fl.
 *
 * Averaging is post-processing, so each node's guarantee is its own ledger's: the ε of the
 * DP-SGD steps run on its data, whatever the other nodes do. Deltas are averaged with equal
 * weights — the example count FedAvg usually weights by is itself private, and no DP-SGD step
 * accounts for releasing it.
 */
import { FL_DEFAULTS } from '../options.ts';
import { cryptoDpSgdRandom, type DpSgdOptions, type DpSgdRandom, trainDpSgd } from './dp-sgd.ts';
import type { Examples } from './features.ts';
import { applyDelta, deltaOf, fedAvg } from './fedavg.ts';
import type { Params } from './logistic.ts';
import type { DeclineReason, DpRoundParams, PrivacyLedger } from './privacy-budget.ts';
import { noiseMultiplierFor } from './rdp-accountant.ts';

/** What a round asks of every participant: DP-SGD options for `steps` local steps. */
export type DpSgdPlan = DpSgdOptions;

export interface PlanOptions {
  readonly samplingRate: number;
  readonly clipNorm: number;
  readonly learningRate: number;
  readonly l2: number;
  readonly biasScale: number;
  readonly stepsPerRound: number;
  /** Total local steps the budget has to last for; z is chosen so they cost exactly ε. */
  readonly plannedSteps: number;
}

/**
 * The round plan that spends `epsilon` at δ in `plannedSteps` local steps (so in
 * plannedSteps / stepsPerRound rounds): the accountant picks z.
 */
export function planDpSgd(
  epsilon: number,
  delta: number,
  opts: PlanOptions = FL_DEFAULTS.dpSgd,
): DpSgdPlan & { readonly rounds: number } {
  const { samplingRate, clipNorm, learningRate, l2, biasScale, stepsPerRound, plannedSteps } = opts;
  if (!Number.isInteger(stepsPerRound) || stepsPerRound < 1 || plannedSteps % stepsPerRound !== 0) {
    throw new RangeError(
      `planned steps ${plannedSteps} are not a whole number of rounds of ${stepsPerRound}`,
    );
  }
  return {
    samplingRate,
    noiseMultiplier: noiseMultiplierFor(epsilon, samplingRate, plannedSteps, delta),
    clipNorm,
    steps: stepsPerRound,
    learningRate,
    l2,
    biasScale,
    rounds: plannedSteps / stepsPerRound,
  };
}

export const roundParamsOf = (plan: DpSgdPlan): DpRoundParams => ({
  samplingRate: plan.samplingRate,
  noiseMultiplier: plan.noiseMultiplier,
  clipNorm: plan.clipNorm,
  steps: plan.steps,
});

export interface DpSgdNode {
  readonly id: number;
  readonly data: Examples;
  readonly ledger: PrivacyLedger;
  /** Seeded in tests; the OS CSPRNG otherwise. */
  readonly random?: DpSgdRandom;
}

export interface DpSgdRoundResult {
  /** The new global model; the old one if nobody took part. */
  readonly params: Params;
  readonly included: readonly number[];
  readonly declined: readonly {
    readonly id: number;
    readonly reason: DeclineReason;
    readonly message: string;
  }[];
  /** Per participant: what this round cost and what it has spent in all. */
  readonly privacy: readonly {
    readonly id: number;
    readonly epsilonRound: number;
    readonly epsilonTotal: number;
  }[];
}

export function runDpSgdRound(
  global: Params,
  nodes: readonly DpSgdNode[],
  plan: DpSgdPlan,
  label = '',
): DpSgdRoundResult {
  const params = roundParamsOf(plan);
  const updates: { delta: Float64Array; weight: number }[] = [];
  const included: number[] = [];
  const declined: DpSgdRoundResult['declined'][number][] = [];
  const privacy: DpSgdRoundResult['privacy'][number][] = [];
  for (const node of nodes) {
    const check = node.ledger.canAfford(params);
    if (!check.ok) {
      declined.push({ id: node.id, reason: check.reason, message: check.message });
      continue;
    }
    // Charged before training: the update exists only once its cost is on the books.
    const entry = node.ledger.charge(params, { label });
    const local = trainDpSgd(global, node.data, plan, node.random ?? cryptoDpSgdRandom());
    updates.push({ delta: deltaOf(local.params, global), weight: 1 });
    included.push(node.id);
    privacy.push({ id: node.id, epsilonRound: entry.epsilonRound, epsilonTotal: entry.epsilonTotal });
  }
  const next = updates.length > 0 ? applyDelta(global, fedAvg(updates)) : Float64Array.from(global);
  return { params: next, included, declined, privacy };
}
