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
import { type RoundRandomness, type RoundResult, runRound } from './local-round.ts';
import type { Params } from './logistic.ts';
import type { DeclineReason, DpRoundParams, PrivacyLedger } from './privacy-budget.ts';
import { noiseMultiplierFor } from './rdp-accountant.ts';
import { recordContribution, recordSecAggDp } from './record-contribution.ts';

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

/** Each node asks its ledger; those that can afford the round are charged before they train. */
function admit(nodes: readonly DpSgdNode[], plan: DpSgdPlan, label: string) {
  const params = roundParamsOf(plan);
  const admitted: DpSgdNode[] = [];
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
    admitted.push(node);
    privacy.push({ id: node.id, epsilonRound: entry.epsilonRound, epsilonTotal: entry.epsilonTotal });
  }
  return { admitted, declined, privacy };
}

export function runDpSgdRound(
  global: Params,
  nodes: readonly DpSgdNode[],
  plan: DpSgdPlan,
  label = '',
): DpSgdRoundResult {
  const { admitted, declined, privacy } = admit(nodes, plan, label);
  const updates = admitted.map((node) => {
    const local = trainDpSgd(global, node.data, plan, node.random ?? cryptoDpSgdRandom());
    return { delta: deltaOf(local.params, global), weight: 1 };
  });
  const next = updates.length > 0 ? applyDelta(global, fedAvg(updates)) : Float64Array.from(global);
  return { params: next, included: admitted.map((n) => n.id), declined, privacy };
}

/**
 * The same round as the networked one runs it: each admitted node's DP-SGD delta, clipped to the
 * public bound `updateClipNorm` (record-contribution.ts), quantised, masked and securely summed
 * (local-round.ts runRound, tolerating one dropout), then averaged with equal weights. What
 * bench:fl times and measures for record mode.
 */
export function runDpSgdSecAggRound(
  global: Params,
  nodes: readonly DpSgdNode[],
  plan: DpSgdPlan,
  rnd: RoundRandomness,
  updateClipNorm: number,
  label = '',
): DpSgdRoundResult & { readonly secagg?: RoundResult } {
  const { admitted, declined, privacy } = admit(nodes, plan, label);
  if (admitted.length === 0) return { params: Float64Array.from(global), included: [], declined, privacy };
  const dp = recordSecAggDp(updateClipNorm);
  const sgd = { ...plan, biasScale: plan.biasScale ?? 1 };
  const n = admitted.length;
  const byId = new Map(admitted.map((n) => [n.id, n]));
  const secagg = runRound(
    global,
    admitted.map((n) => ({ id: n.id, data: n.data })),
    {
      roundId: rnd.bytes(32),
      round: 0,
      dp,
      // Unused: `contribute` trains (DP-SGD), not trainLocal.
      train: { epochs: 0, batchSize: 1, learningRate: 0, l2: 0, seed: 0 },
      // The coordinator's threshold (net/coordinator.ts thresholdFor): one dropout where n allows.
      threshold: Math.min(n, Math.max(Math.floor(n / 2) + 1, n - 1)),
      contribute: (g, p) => recordContribution(g, p.data, sgd, dp, byId.get(p.id)!.random ?? rnd).vector,
    },
    rnd,
  );
  return { params: secagg.params, included: secagg.included, declined, privacy, secagg };
}
