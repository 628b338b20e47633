/**
 * One federated round in process: local training → clip → distributed Gaussian noise → quantise
 * → mask → secure sum → FedAvg update, with adaptive clipping and RDP accounting. The libp2p round
 * protocol moves the same messages between nodes; this is the single-process reference and the
 * harness for tests and the benchmark.
 */
import {
  type AdaptiveClipping,
  clipBit,
  clipL2,
  cryptoNormal,
  distributedNoiseStd,
  type Normal,
  nextClipNorm,
  unclippedFraction,
  updateNoiseMultiplier,
} from './dp.ts';
import type { Examples } from './features.ts';
import { applyDelta, cappedWeight, deltaOf } from './fedavg.ts';
import { type Params, type TrainOptions, trainLocal } from './logistic.ts';
import { cryptoUniform, type Uniform } from './random.ts';
import type { RdpAccountant, RoundPrivacy } from './rdp-accountant.ts';
import { collectMasked, routeShares, unmaskSum } from './secagg/aggregator.ts';
import {
  ADVERTISE_BYTES,
  decodeAdvertisement,
  decodeUnmask,
  encodeAdvertisement,
  encodeMasked,
  encodeShare,
  encodeUnmask,
  maskedBytes,
  SecAggError,
  SHARE_BYTES,
  unmaskBytes,
} from './secagg/messages.ts';
import {
  createParticipant,
  cryptoRandomBytes,
  type Delivered,
  maskUpdate,
  type Participant,
  type RandomBytes,
  receiveShares,
  revealShares,
  type SecAggConfig,
  shareKeys,
} from './secagg/protocol.ts';
import { dequantise, type Quantiser, quantise, quantiserFor } from './secagg/ring.ts';

/** How a simulated participant behaves this round. */
export type Behaviour = 'honest' | 'decline' | 'drop-after-masking' | 'malformed' | 'oversized';

export interface RoundParticipant {
  /** 1..255, also the Shamir point. */
  readonly id: number;
  readonly data: Examples;
  readonly behaviour?: Behaviour;
}

export interface DpConfig {
  /** C for this round. */
  readonly clipNorm: number;
  /** z: the summed update carries N(0, (zC)²). 0 disables noise (and makes ε infinite). */
  readonly noiseMultiplier: number;
  /** When set, C adapts toward the target quantile; part of the noise budget goes to the count. */
  readonly adaptive?: AdaptiveClipping;
  /** Examples at which a participant's weight saturates (FedAvg weights stay ≤ 1 under DP). */
  readonly weightCap: number;
}

export interface RoundConfig {
  readonly roundId: Uint8Array;
  readonly round: number;
  readonly dp: DpConfig;
  readonly train: TrainOptions;
  /** Secure-aggregation threshold; defaults to ⌊n/2⌋ + 1 of the invited participants. */
  readonly threshold?: number;
  readonly serverLearningRate?: number;
  /** Fraction of the population invited, for the accountant (1 when everyone is asked). */
  readonly samplingRate?: number;
  /**
   * A participant's contribution before masking, in the ring layout (layoutDim). Default: the
   * update-level one (localContribution). Record-level rounds pass their DP-SGD contribution
   * (dp-sgd-fedavg.ts runDpSgdSecAggRound), with a `dp` whose noise is 0.
   */
  readonly contribute?: (global: Params, p: RoundParticipant) => Float64Array;
}

export interface RoundRandomness {
  /** DP noise: `cryptoNormal()` in production, seeded in tests. */
  readonly normal: Normal;
  /** Key material and Shamir coefficients. */
  readonly bytes: RandomBytes;
  /** Stochastic rounding of the quantiser. */
  readonly uniform: Uniform;
}

/** The production randomness: OS CSPRNG for the noise, the keys and the stochastic rounding. */
export const cryptoRoundRandomness = (): RoundRandomness => ({
  normal: cryptoNormal(),
  bytes: cryptoRandomBytes,
  uniform: cryptoUniform(),
});

export interface RoundResult {
  readonly params: Params;
  readonly nextClipNorm: number;
  /** Ids whose update is in the sum. */
  readonly included: readonly number[];
  readonly declined: readonly number[];
  /** Ids that shared keys but whose update did not arrive or was rejected. */
  readonly dropped: readonly number[];
  readonly rejected: readonly { readonly id: number; readonly code: SecAggError['code'] }[];
  /** Noised fraction of unclipped updates (b̄). */
  readonly unclippedFraction: number;
  /** Coordinates clamped by the quantiser across participants (should be 0). */
  readonly clamped: number;
  /** Bytes an honest participant sent: advertisement, key shares, masked update, unmasking shares. */
  readonly bytesPerParticipant: number;
  readonly privacy?: RoundPrivacy;
}

/** The ring layout: weighted clipped delta (params), weight, clip bit. */
export const layoutDim = (paramCount: number): number => paramCount + 2;

/** Public quantiser of a round: derived from announced parameters only, so everyone agrees. */
export function roundQuantiser(dp: DpConfig, participants: number, minSurvivors: number): Quantiser {
  const { updateStd, bitStd } = noiseStds(dp, minSurvivors);
  // ±C for a clipped coordinate, ±½ for the bit, plus ten standard deviations of the noise.
  return quantiserFor(Math.max(dp.clipNorm, 1) + 10 * Math.max(updateStd, bitStd), participants);
}

/** Per-participant noise of a round: on each update coordinate, and on the clip bit. */
export function noiseStds(dp: DpConfig, minSurvivors: number): { updateStd: number; bitStd: number } {
  if (dp.noiseMultiplier === 0) return { updateStd: 0, bitStd: 0 };
  const z = dp.adaptive
    ? updateNoiseMultiplier(dp.noiseMultiplier, dp.adaptive.countNoiseStd)
    : dp.noiseMultiplier;
  return {
    updateStd: distributedNoiseStd(z, dp.clipNorm, minSurvivors),
    bitStd: dp.adaptive ? dp.adaptive.countNoiseStd / Math.sqrt(minSurvivors) : 0,
  };
}

/** A participant's contribution before masking: its clipped, weighted, noised update. */
export function localContribution(
  global: Params,
  p: RoundParticipant,
  cfg: RoundConfig,
  minSurvivors: number,
  normal: Normal,
): { vector: Float64Array; unclipped: boolean } {
  const local = trainLocal(global, p.data, {
    ...cfg.train,
    seed: cfg.train.seed ^ (cfg.round * 7919 + p.id * 104729),
  });
  const { clipped, unclipped } = clipL2(deltaOf(local, global), cfg.dp.clipNorm);
  const w = cappedWeight(p.data.rows.length, cfg.dp.weightCap);
  const { updateStd, bitStd } = noiseStds(cfg.dp, minSurvivors);
  const vector = new Float64Array(layoutDim(global.length));
  for (let i = 0; i < clipped.length; i++) vector[i] = w * clipped[i]! + updateStd * normal();
  vector[global.length] = w;
  vector[global.length + 1] = clipBit(unclipped) + bitStd * normal();
  return { vector, unclipped };
}

/**
 * Step 2 for one participant, as the in-process round and a node's participant both run it: its
 * contribution (drawing DP noise from `normal`), quantised (drawing from `uniform`) and masked.
 */
export function maskedContribution(
  state: Participant,
  global: Params,
  p: RoundParticipant,
  cfg: RoundConfig,
  minSurvivors: number,
  quantiser: Quantiser,
  rnd: Pick<RoundRandomness, 'normal' | 'uniform'>,
): { bytes: Uint8Array; clamped: number } {
  const { vector } = localContribution(global, p, cfg, minSurvivors, rnd.normal);
  return maskVector(state, vector, quantiser, rnd.uniform);
}

/** A contribution vector quantised (stochastic rounding from `uniform`) and masked. */
export function maskVector(
  state: Participant,
  vector: Float64Array,
  quantiser: Quantiser,
  uniform: Uniform,
): { bytes: Uint8Array; clamped: number } {
  const q = quantise(vector, quantiser, uniform);
  return { bytes: encodeMasked(maskUpdate(state, q.words)), clamped: q.clamped };
}

/**
 * Deliberately bad masked updates (tests and demos), to show that the aggregator copes.
 * `out-of-range` decodes fine: it adds 2^29 to every word, as a participant that put a huge
 * input under its masks would; masks are additive, so the unmasked sum carries it.
 */
export type MaskedCorruption = 'malformed' | 'oversized' | 'out-of-range';

/** Header of a masked update before its words (secagg/messages.ts). */
const MASKED_WORDS_AT = maskedBytes(0);

export function corruptMasked(bytes: Uint8Array, how: MaskedCorruption): Uint8Array {
  if (how === 'malformed') return bytes.subarray(0, bytes.length - 3);
  if (how === 'out-of-range') {
    const out = Uint8Array.from(bytes);
    const view = new DataView(out.buffer);
    for (let at = MASKED_WORDS_AT; at + 4 <= out.length; at += 4)
      view.setUint32(at, (view.getUint32(at, true) + 2 ** 29) >>> 0, true);
    return out;
  }
  const big = new Uint8Array(bytes.length + 4096);
  big.set(bytes);
  return big;
}

export function runRound(
  global: Params,
  participants: readonly RoundParticipant[],
  cfg: RoundConfig,
  rnd: RoundRandomness,
  accountant?: RdpAccountant,
): RoundResult {
  const ids = participants.map((p) => p.id);
  const n = ids.length;
  const threshold = cfg.threshold ?? Math.floor(n / 2) + 1;
  const sa: SecAggConfig = {
    roundId: cfg.roundId,
    participants: ids,
    threshold,
    dim: layoutDim(global.length),
  };
  const quantiser = roundQuantiser(cfg.dp, n, threshold);
  const expect = { roundId: cfg.roundId, participants: new Set(ids) };

  // 0. Advertise: a declining node simply stays silent.
  const active = participants.filter((p) => p.behaviour !== 'decline');
  const declined = participants.filter((p) => p.behaviour === 'decline').map((p) => p.id);
  let states = new Map<number, Participant>(
    active.map((p) => [p.id, createParticipant(sa, p.id, rnd.bytes)]),
  );
  const adverts = [...states.values()].map((s) =>
    decodeAdvertisement(encodeAdvertisement(s.advertisement), expect),
  );

  // 1. Share keys, route, receive.
  const shareMessages: Delivered[] = [];
  for (const [id, s] of states) {
    const { participant, shares } = shareKeys(s, adverts, rnd.bytes);
    states.set(id, participant);
    for (const m of shares) shareMessages.push({ from: id, bytes: encodeShare(m) });
  }
  const routed = routeShares(
    sa,
    adverts.map((a) => a.from),
    shareMessages,
  );
  states = new Map(
    routed.u2.map((id) => [id, receiveShares(states.get(id)!, routed.u2, routed.inbox.get(id)!)]),
  );

  // 2. Train, clip, noise, quantise, mask. Failures of a participant stay with that participant.
  let clamped = 0;
  const delivered: Delivered[] = [];
  for (const p of active) {
    const s = states.get(p.id);
    if (!s) continue;
    const masked = cfg.contribute
      ? maskVector(s, cfg.contribute(global, p), quantiser, rnd.uniform)
      : maskedContribution(s, global, p, cfg, threshold, quantiser, rnd);
    clamped += masked.clamped;
    if (p.behaviour === 'drop-after-masking') continue;
    const bytes =
      p.behaviour === 'malformed' || p.behaviour === 'oversized'
        ? corruptMasked(masked.bytes, p.behaviour)
        : masked.bytes;
    delivered.push({ from: p.id, bytes });
  }
  const { received, rejected } = collectMasked(sa, routed.u2, delivered);
  const survivors = received.map((m) => m.from);
  if (survivors.length < threshold) {
    throw new SecAggError('too-few-participants', `${survivors.length} survivors, threshold ${threshold}`);
  }

  // 3. Survivors reveal shares; 4. the aggregator unmasks the sum.
  const reveals = survivors.map((id) =>
    decodeUnmask(encodeUnmask(revealShares(states.get(id)!, survivors)), {
      roundId: cfg.roundId,
      participants: new Set(routed.u2),
    }),
  );
  const roster = adverts.filter((a) => routed.u2.includes(a.from));
  const sum = dequantise(unmaskSum(sa, roster, received, reveals), quantiser);

  const agg = applyAggregate(global, sum, survivors.length, cfg, accountant);
  const rejectedIds = rejected.map((r) => ({ id: r.from, code: r.error.code }));
  return {
    params: agg.params,
    nextClipNorm: agg.nextClipNorm,
    included: survivors,
    declined,
    dropped: routed.u2.filter((id) => !survivors.includes(id)),
    rejected: rejectedIds,
    unclippedFraction: agg.unclippedFraction,
    clamped,
    bytesPerParticipant:
      ADVERTISE_BYTES +
      (adverts.length - 1) * SHARE_BYTES +
      maskedBytes(sa.dim) +
      unmaskBytes(routed.u2.length),
    ...(agg.privacy ? { privacy: agg.privacy } : {}),
  };
}

export interface Aggregate {
  readonly params: Params;
  readonly nextClipNorm: number;
  readonly unclippedFraction: number;
  readonly privacy?: RoundPrivacy;
}

/**
 * The aggregator's last step, shared by the in-process round and the libp2p one: the dequantised
 * sum (layout of localContribution) becomes the FedAvg step, the next clip norm and the round's
 * privacy cost.
 */
export function applyAggregate(
  global: Params,
  sum: Float64Array,
  survivors: number,
  cfg: RoundConfig,
  accountant?: RdpAccountant,
): Aggregate {
  const P = global.length;
  if (sum.length !== layoutDim(P)) throw new RangeError('aggregate does not match the model');
  const weightSum = sum[P]!;
  if (!(weightSum > 0)) throw new SecAggError('protocol-violation', 'no weight in the aggregate');
  const meanDelta = sum.subarray(0, P).map((x) => x / weightSum);
  const params = applyDelta(global, meanDelta, cfg.serverLearningRate ?? 1);
  const bBar = unclippedFraction(sum[P + 1]!, survivors);
  const nextClip = cfg.dp.adaptive ? nextClipNorm(cfg.dp.clipNorm, bBar, cfg.dp.adaptive) : cfg.dp.clipNorm;
  const privacy =
    accountant && cfg.dp.noiseMultiplier > 0
      ? accountant.step(cfg.samplingRate ?? 1, cfg.dp.noiseMultiplier)
      : undefined;
  return { params, nextClipNorm: nextClip, unclippedFraction: bBar, ...(privacy ? { privacy } : {}) };
}
