/**
 * Finding 6 (MEDIUM), bench-style figures: a coordinator announcing a tiny sampling rate q buys
 * maxStepsPerRound (1 000) DP-SGD steps per round from every participant for almost no ε, and each
 * step costs a full pass over the slice plus 16 385 Gaussian draws, synchronously on the node's
 * event loop. Last line: one JSON object.
 *
 *   npm exec -- node --import tsx attack/fl-trust/cpu-free-figures.ts
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { PrivacyLedger } from '../../node/fl/privacy-budget.ts';
import { FL_DEFAULTS } from '../../node/options.ts';
import { cleanup, coordinatorKeys, data, defaultSgd, participants, runToMasked } from './lib.ts';

const tiny = { samplingRate: 1e-9, noiseMultiplier: 1, steps: FL_DEFAULTS.privacy.maxStepsPerRound };

// The ledger: ε of one such round, and after 1 000 of them.
const ledger = PrivacyLedger.fresh();
const one = ledger.canAfford({ ...defaultSgd, ...tiny });
for (let i = 0; i < 1000; i++) ledger.charge({ ...defaultSgd, ...tiny });
const after1000 = ledger.spent();
const dflt = PrivacyLedger.fresh().canAfford(defaultSgd);
// One round that spends (nearly) all of a fresh node's budget: the floors do not stop it.
const greedy = [1, 1.5, 2, 2.5, 3].map((z) => {
  let best = 0;
  for (let steps = 1; steps <= FL_DEFAULTS.privacy.maxStepsPerRound; steps++) {
    const a = PrivacyLedger.fresh().canAfford({ ...defaultSgd, samplingRate: 1, noiseMultiplier: z, steps });
    if (!a.ok) break;
    best = steps;
  }
  const a = best
    ? PrivacyLedger.fresh().canAfford({ ...defaultSgd, samplingRate: 1, noiseMultiplier: z, steps: best })
    : undefined;
  return { q: 1, z, steps: best, epsilon: a?.ok ? Number(a.epsilonRound.toFixed(3)) : null };
});

const keys = await coordinatorKeys();
const { split } = data();
const h = monitorEventLoopDelay({ resolution: 10 });
const run = async (over: object, seed: number) => {
  const nodes = await participants(3, keys);
  const ms: number[] = [];
  h.reset();
  h.enable();
  await runToMasked(nodes, new Uint8Array(32).fill(seed), over, ms);
  h.disable();
  return {
    trainMs: ms.map((x) => Math.round(x)),
    maxLoopDelayMs: Math.round(h.max / 1e6),
    eps: nodes[0]!.g.status()!.epsilonTotal,
  };
};
const honest = await run({}, 1);
const attack = await run(tiny, 2);
await cleanup();
console.log(
  JSON.stringify({
    sliceRows: split.slices[0]!.length,
    epsilonOneTinyRound: one.ok ? one.epsilonRound : one.reason,
    epsilonAfter1000TinyRounds: after1000,
    epsilonOneDefaultRound: dflt.ok ? dflt.epsilonRound : dflt.reason,
    oneRoundSpendsBudget: greedy,
    defaultRound: honest,
    tinyQRound: attack,
  }),
);
