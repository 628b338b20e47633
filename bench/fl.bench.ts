/**
 * bench:fl — federated learning in process: record-level DP-SGD FedAvg through secure aggregation
 * (5 and 10 IID nodes, each spending the default budget ε = 3 at δ = 1e-5 through its own
 * ledger, as networked rounds do by default): accuracy, ε and round time (roundMsP50_5/_10, each
 * node's DP-SGD plus the masked sum, nodes one after another); update-level DP rounds for 5 and
 * 10 participants (updateRoundMsP50_*), federated vs centralised accuracy on the same features and
 * test set, and the bytes a participant sends per round. Randomness is the
 * production path (OS CSPRNG). classifyPerSec: POST /classify on a node's API with the federated
 * model (bench/classify-bench.ts).
 * Last line: one JSON object with the figures.
 */
import { featurisedCorpus, loadCorpus, splitIndices, subset } from '../node/fl/dataset.ts';
import { type DpSgdNode, planDpSgd, runDpSgdSecAggRound } from '../node/fl/dp-sgd-fedavg.ts';
import {
  cryptoRoundRandomness,
  type RoundConfig,
  type RoundResult,
  runRound,
} from '../node/fl/local-round.ts';
import { evaluate, type Params, trainLocal, zeroParams } from '../node/fl/logistic.ts';
import { heldOutSplit } from '../node/fl/net/data.ts';
import { PrivacyLedger } from '../node/fl/privacy-budget.ts';
import { RdpAccountant } from '../node/fl/rdp-accountant.ts';
import { cryptoRandomBytes } from '../node/fl/secagg/protocol.ts';
import { FL_DEFAULTS } from '../node/options.ts';
import { bodiesOf, classifyPerSec } from './classify-bench.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const ROUNDS_10 = Number(process.env.BENCH_ROUNDS_10 ?? 8);
// The cluster test's setting: with 5 participants, z = 0.3 left the final accuracy at 0.973–0.981
// from run to run (noise-limited; 0.981–0.984 without noise), z = 0.2 at 0.977–0.983.
const NOISE = Number(process.env.BENCH_NOISE ?? 0.2);
const CLIP = 4;
const train = { epochs: 5, batchSize: 16, learningRate: 8, l2: 0, seed: 5 };
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rnd = cryptoRoundRandomness();

let t = performance.now();
const ex = featurisedCorpus();
log(
  `featurised ${ex.rows.length} mails into 2^${Math.log2(ex.dim)} buckets in ${(performance.now() - t).toFixed(0)} ms`,
);

function federate(nodes: number, rounds: number) {
  // The nodes' own split: the same test set, and the validation set their loss check uses.
  const split = splitIndices(ex.labels, heldOutSplit(42, nodes, 'iid'));
  const parts = split.slices.map((s, k) => ({ id: k + 1, data: subset(ex, s) }));
  const accountant = new RdpAccountant(1e-5);
  let params: Params = zeroParams(ex.dim);
  const times: number[] = [];
  let last: RoundResult | undefined;
  for (let r = 0; r < rounds; r++) {
    const cfg: RoundConfig = {
      roundId: cryptoRandomBytes(32),
      round: r,
      dp: { clipNorm: CLIP, noiseMultiplier: NOISE, weightCap: 1000 },
      train,
      // Tolerate one dropout; the noise is provisioned for the threshold.
      threshold: nodes - 1,
    };
    const start = performance.now();
    last = runRound(params, parts, cfg, rnd, accountant);
    times.push(performance.now() - start);
    params = last.params;
  }
  return { params, times, last: last!, test: subset(ex, split.test), train: split.slices };
}

const five = federate(5, ROUNDS);
const federatedAccuracy = evaluate(five.params, five.test).accuracy;
log(
  `5 participants, ${ROUNDS} rounds, update-level DP (ε ${five.last.privacy!.epsilonTotal.toFixed(1)} per participant, not per record): ` +
    `accuracy ${federatedAccuracy.toFixed(4)}, p50 ${p50(five.times).toFixed(0)} ms`,
);

const ten = federate(10, ROUNDS_10);
log(`10 participants, ${ROUNDS_10} rounds: p50 ${p50(ten.times).toFixed(0)} ms`);

t = performance.now();
const union = subset(
  ex,
  five.train.flatMap((s) => [...s]),
);
const central = trainLocal(zeroParams(ex.dim), union, {
  epochs: 20,
  batchSize: 16,
  learningRate: 16,
  l2: 0,
  seed: 1,
});
const centralizedAccuracy = evaluate(central, five.test).accuracy;
log(`centralised: accuracy ${centralizedAccuracy.toFixed(4)} in ${(performance.now() - t).toFixed(0)} ms`);

// Record-level DP: every node's ledger starts fresh with the default budget; rounds run until
// every node declines (its budget is spent), as a real node would.
const dpPlan = planDpSgd(FL_DEFAULTS.privacy.budgetEpsilon, FL_DEFAULTS.privacy.delta);
function federateDp(nodes: number) {
  const start = performance.now();
  const split = splitIndices(ex.labels, heldOutSplit(42, nodes, 'iid'));
  const validation = subset(ex, split.validation);
  const dpNodes: DpSgdNode[] = split.slices.map((s, k) => ({
    id: k + 1,
    data: subset(ex, s),
    ledger: PrivacyLedger.fresh(),
  }));
  let params: Params = zeroParams(ex.dim);
  let rounds = 0;
  const times: number[] = [];
  // Validation-loss moves between consecutive rounds: what the coordinator's loss-regression
  // check (FL_DEFAULTS.lossTolerance) must let through.
  let loss = evaluate(params, validation).loss;
  let lossRiseMax = Number.NEGATIVE_INFINITY;
  for (;;) {
    const t0 = performance.now();
    const r = runDpSgdSecAggRound(
      params,
      dpNodes,
      dpPlan,
      rnd,
      FL_DEFAULTS.recordUpdateClipNorm,
      `round ${rounds}`,
    );
    if (r.included.length === 0) break;
    times.push(performance.now() - t0);
    params = r.params;
    rounds++;
    const next = evaluate(params, validation).loss;
    lossRiseMax = Math.max(lossRiseMax, next - loss);
    loss = next;
  }
  const accuracy = evaluate(params, subset(ex, split.test)).accuracy;
  const epsilon = Math.max(...dpNodes.map((n) => n.ledger.spent()));
  log(
    `record-level DP-SGD, ${nodes} nodes: ${rounds} rounds × ${dpPlan.steps} steps, q ${dpPlan.samplingRate}, ` +
      `z ${dpPlan.noiseMultiplier.toFixed(3)}, C ${dpPlan.clipNorm}: accuracy ${accuracy.toFixed(4)} ` +
      `at ε ${epsilon.toFixed(4)}, round (DP-SGD + secure aggregation) p50 ${p50(times).toFixed(0)} ms, ` +
      `${(performance.now() - start).toFixed(0)} ms in all; largest validation-loss rise ${lossRiseMax.toFixed(4)}`,
  );
  return { accuracy, epsilon, rounds, p50: p50(times), lossRiseMax, params };
}
const dp5 = federateDp(5);
const dp10 = federateDp(10);
const federatedAccuracyDp = dp5.accuracy;
const epsilonRecord = Math.max(dp5.epsilon, dp10.epsilon);

t = performance.now();
// With the record-level model, the version a node classifies with by default.
const classify = await classifyPerSec(dp5.params, bodiesOf(loadCorpus()));
log(
  `classify via the node API: ${classify.perSec.toFixed(0)}/s (${classify.requests} requests, ` +
    `${(classify.spamShare * 100).toFixed(1)}% spam) in ${(performance.now() - t).toFixed(0)} ms`,
);

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;
// Issue 16's targets, checked on the figures printed below.
const targetsMissed = Object.entries({
  epsilonRecord: epsilonRecord <= 3,
  federatedAccuracyDp: federatedAccuracyDp >= 0.955,
  roundMsP50_10: dp10.p50 < 5000,
  federatedAccuracy: federatedAccuracy >= centralizedAccuracy - 0.01,
})
  .filter(([, met]) => !met)
  .map(([key]) => key);
if (targetsMissed.length) log(`targets missed: ${targetsMissed.join(', ')}`);
console.log(
  JSON.stringify({
    /** Record-level rounds (the default mode): DP-SGD on every node, then the secure sum. */
    roundMsP50_5: Math.round(dp5.p50),
    roundMsP50_10: Math.round(dp10.p50),
    /** Update-level rounds (whole updates noised), the figures these keys had before. */
    updateRoundMsP50_5: Math.round(p50(five.times)),
    updateRoundMsP50_10: Math.round(p50(ten.times)),
    federatedAccuracy: round4(federatedAccuracy),
    centralizedAccuracy: round4(centralizedAccuracy),
    bytesPerParticipant: five.last.bytesPerParticipant,
    bytesPerParticipant_10: ten.last.bytesPerParticipant,
    rounds: ROUNDS,
    noiseMultiplier: NOISE,
    clipNorm: CLIP,
    epsilon: round4(five.last.privacy!.epsilonTotal),
    epsilonPerRound: round4(five.last.privacy!.epsilonRound),
    delta: 1e-5,
    dim: ex.dim,
    federatedAccuracyDp: round4(federatedAccuracyDp),
    federatedAccuracyDp10: round4(dp10.accuracy),
    epsilonRecord: round4(epsilonRecord),
    dpRounds: dp5.rounds,
    dpNoiseMultiplier: round4(dpPlan.noiseMultiplier),
    dpSamplingRate: dpPlan.samplingRate,
    dpStepsPerRound: dpPlan.steps,
    /** Largest validation-loss rise between consecutive record-level rounds (5 or 10 nodes). */
    dpLossRiseMax: round4(Math.max(dp5.lossRiseMax, dp10.lossRiseMax)),
    lossTolerance: FL_DEFAULTS.lossTolerance,
    classifyPerSec: Math.round(classify.perSec),
    targetsMissed,
  }),
);
