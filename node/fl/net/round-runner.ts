/**
 * The coordinator's round loop: rounds run one after another from the model head as the chain
 * defines it (chain/model-ledger.ts), each announced to the links the service builds, aggregated
 * by coordinateRound, then stored, evaluated on the held-out test set, committed on the chain and
 * pushed to the participants. A model entry is valid only if it extends the head, so the next
 * round waits until the previous one's version is mined. Every outcome, failures included, is an
 * event for the job worker to report.
 */
import { fromHex, type Hex, toHex } from '../../chain/bytes.ts';
import type { ModelPayload } from '../../chain/types.ts';
import type { Logger } from '../../log.ts';
import type { AdaptiveClipping } from '../dp.ts';
import type { DpSgdPlan } from '../dp-sgd-fedavg.ts';
import type { DpConfig } from '../local-round.ts';
import { evaluate, type Params, zeroParams } from '../logistic.ts';
import { RdpAccountant } from '../rdp-accountant.ts';
import { recordSecAggDp } from '../record-contribution.ts';
import type { AdvertVerifier } from './advert-signature.ts';
import { coordinateRound, type LeftOut, type ParticipantLink, RoundFailed } from './coordinator.ts';
import type { FlData } from './data.ts';
import type { FlMetrics } from './metrics.ts';
import type { ModelStore } from './model-store.ts';
import type { ModelSync } from './model-sync.ts';
import type { FlRoundEvent, ModelVersionEvent } from './round-events.ts';
import type { DpMode, RoundPrivacy } from './wire.ts';

export interface RoundRequest {
  readonly rounds: number;
  readonly participants?: readonly string[];
  /** Update mode: the update clip norm. Record mode: DP-SGD's per-example clip norm. */
  readonly clipNorm?: number;
  /** Update mode: z on the summed updates. Record mode: DP-SGD's z (participants' floors apply). */
  readonly noiseMultiplier?: number;
  /** Update mode only (adaptive clipping of whole updates). */
  readonly targetQuantile?: number;
  /**
   * Record mode: DP-SGD steps each participant runs per round (the plan's, FL_DEFAULTS.dpSgd,
   * when absent). z stays the plan's, so fewer, longer rounds spend the same ε over the same
   * total steps; each participant's ledger prices what it is asked (and bounds the steps).
   */
  readonly localSteps?: number;
  /** The coordinator's own mode (`--fl-mode`) when absent. */
  readonly mode?: DpMode;
}

/** The newest model version on the main chain. */
export interface ModelHead {
  readonly hash: Uint8Array;
  readonly round: number;
  readonly epsilon: number;
}

export const modelHeadOf = (p: ModelPayload | undefined): ModelHead | undefined =>
  p && { hash: p.modelHash, round: p.round, epsilon: p.epsilon };

export const DEFAULT_DP = { clipNorm: 4, noiseMultiplier: 0.3, weightCap: 1000 } as const;
export const DEFAULT_TRAIN = { epochs: 3, batchSize: 16, learningRate: 8, l2: 0, seed: 5 } as const;
const DELTA = 1e-5;
/** A version trained without noise has no finite ε; the chain needs a finite number. */
const NO_GUARANTEE = Number.MAX_VALUE;

export interface RoundRunnerDeps {
  readonly self: string;
  readonly data: FlData;
  readonly store: ModelStore;
  readonly models: ModelSync;
  /** The model head at the main chain's tip; `headMoved` is called whenever it may have changed. */
  modelHead(): ModelHead | undefined;
  /**
   * The head and the versions before it on the main chain, newest first, at most `limit`
   * (chain/model-ledger.ts lineage); absent: none known beyond the head.
   */
  modelLineage?(limit: number): readonly ModelHead[];
  links(participants: readonly string[] | undefined): ParticipantLink[];
  /** Signs, adds and gossips the `model` entry; returns its id. */
  commitEntry(payload: ModelPayload): Promise<string>;
  /** Signs with this node's identity key (each round's survivor set). */
  sign(message: Uint8Array): Promise<Uint8Array>;
  /** Checks participants' advert signatures (default: against their peer ids' keys). */
  readonly verifyAdverts?: AdvertVerifier;
  penalise(peer: string, reason: string): void;
  emitRound(e: FlRoundEvent): void;
  emitVersion(e: ModelVersionEvent): void;
  readonly metrics: FlMetrics;
  readonly deadlineMs: number;
  /** How far (nats) the new version's held-out loss may exceed the head's (FL_DEFAULTS). */
  readonly lossTolerance: number;
  /** How long a round waits for the previous round's version to be mined before it fails. */
  readonly headWaitMs: number;
  /** Rounds in a row that fail to get the head's bytes before one trains from an older version. */
  readonly headFetchAttempts: number;
  /** How many versions behind the head the fallback looks for bytes this node stores. */
  readonly headFallbackDepth: number;
  /** The DP mode of the rounds this node coordinates, unless a request names one. */
  readonly mode: DpMode;
  /** Record mode: the DP-SGD every participant runs per round (FL_DEFAULTS.dpSgd, planDpSgd). */
  readonly recordPlan: DpSgdPlan;
  /** Record mode: the public L2 bound of a participant's DP-SGD delta (FL_DEFAULTS). */
  readonly recordUpdateClipNorm: number;
  readonly log: Logger;
}

/**
 * Adaptive clipping's private count takes a tenth of the noise budget: (2σ_b)⁻² = z⁻²/10, so the
 * update keeps z_Δ = z/√0.9 (Andrew et al., Thm 1) for any z > 0.
 */
export function adaptiveFor(targetQuantile: number, noiseMultiplier: number): AdaptiveClipping {
  return {
    targetQuantile,
    learningRate: 0.2,
    countNoiseStd: noiseMultiplier > 0 ? (Math.sqrt(10) * noiseMultiplier) / 2 : 0,
  };
}

/** The head's bytes could not be had (a failed round, until headFetchAttempts is reached). */
export class HeadUnavailable extends Error {
  override readonly name = 'HeadUnavailable';
  readonly reason = 'head-unavailable';
}

/** The weights a round starts from: the head's, or (`rebased`) an older version's or zeros. */
interface Basis {
  readonly version: ModelHead | undefined;
  readonly params: Params;
  readonly rebased: boolean;
}

export class RoundRunner {
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  private stopped = false;
  /** The version this node committed last, until the chain's head reaches its round. */
  private committed: ModelHead | undefined;
  /** Rounds waiting for the head to move (woken by headMoved and by stop). */
  private readonly waiters = new Set<() => void>();
  /** Composes the rounds this node ran since `accountantBase` (the version it continued from). */
  private accountant: RdpAccountant | undefined;
  private accountantHead: Hex | undefined;
  private epsilonBase = 0;
  /** The head whose bytes the last rounds failed to get, and how many rounds in a row did. */
  private unavailable: { hash: Hex; rounds: number } | undefined;

  private readonly d: RoundRunnerDeps;
  constructor(d: RoundRunnerDeps) {
    this.d = d;
  }

  get busy(): boolean {
    return this.pending > 0;
  }

  schedule(ids: readonly Uint8Array[], req: RoundRequest): void {
    this.pending += ids.length;
    this.queue = this.queue.then(async () => {
      let clipNorm = req.clipNorm ?? DEFAULT_DP.clipNorm;
      for (const id of ids) {
        this.pending--;
        if (this.stopped) continue;
        try {
          clipNorm = await this.runOne(id, req, clipNorm);
        } catch (err) {
          this.d.log.error({ err: (err as Error).message }, 'round crashed');
        }
      }
    });
  }

  /** Resolves when every scheduled round has run. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** The chain's tip moved: rounds waiting for their predecessor's version look again. */
  headMoved(): void {
    for (const wake of this.waiters) wake();
  }

  /**
   * The head the next round builds on. A version this node committed extends the head only once
   * it is mined; until then a round from the old head would produce a second version of the same
   * round, of which the chain keeps one. So wait (bounded) for the chain to catch up.
   */
  private async baseHead(): Promise<ModelHead | undefined> {
    const deadline = Date.now() + this.d.headWaitMs;
    const caughtUp = () => !this.committed || (this.d.modelHead()?.round ?? 0) >= this.committed.round;
    while (!caughtUp() && !this.stopped) {
      const left = deadline - Date.now();
      if (left <= 0) {
        const round = this.committed!.round;
        // Mined later or never: the next round starts from whatever the chain says then.
        this.committed = undefined;
        throw new Error(`version ${round} is not on the chain after ${this.d.headWaitMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.waiters.add(wake);
      });
    }
    this.committed = undefined;
    if (this.stopped) throw new Error('federated learning is stopping');
    return this.d.modelHead();
  }

  /** One round; returns the clip norm for the next round of the same request. */
  private async runOne(roundId: Uint8Array, req: RoundRequest, clipNorm: number): Promise<number> {
    const startedAt = Date.now();
    let base: ModelHead | undefined;
    let waitError: Error | undefined;
    try {
      base = await this.baseHead();
    } catch (err) {
      waitError = err as Error;
      base = this.d.modelHead();
    }
    const round = (base?.round ?? 0) + 1;
    const links = this.d.links(req.participants);
    const invited = links.map((l) => l.peerId);
    const mode = req.mode ?? this.d.mode;
    const noiseMultiplier =
      req.noiseMultiplier ??
      (mode === 'record' ? this.d.recordPlan.noiseMultiplier : DEFAULT_DP.noiseMultiplier);
    let dp: DpConfig;
    let privacy: RoundPrivacy;
    let dpReport: Record<string, number>;
    if (mode === 'record') {
      const plan = this.d.recordPlan;
      const sgd = {
        samplingRate: plan.samplingRate,
        noiseMultiplier,
        clipNorm: req.clipNorm ?? plan.clipNorm,
        steps: req.localSteps ?? plan.steps,
        learningRate: plan.learningRate,
        l2: plan.l2,
        biasScale: plan.biasScale ?? 1,
      };
      dp = recordSecAggDp(this.d.recordUpdateClipNorm);
      privacy = { mode: 'record', sgd };
      // JSON numbers only (the round report's dp map): recordLevel 1 labels the mode.
      dpReport = {
        recordLevel: 1,
        clipNorm: sgd.clipNorm,
        noiseMultiplier,
        samplingRate: sgd.samplingRate,
        steps: sgd.steps,
        delta: DELTA,
      };
    } else {
      dp = {
        clipNorm,
        noiseMultiplier,
        weightCap: DEFAULT_DP.weightCap,
        ...(req.targetQuantile !== undefined
          ? { adaptive: adaptiveFor(req.targetQuantile, noiseMultiplier) }
          : {}),
      };
      privacy = { mode: 'update' };
      dpReport = { recordLevel: 0, clipNorm, noiseMultiplier, delta: DELTA };
      if (req.targetQuantile !== undefined) dpReport.targetQuantile = req.targetQuantile;
    }
    const event = (e: Partial<FlRoundEvent> & Pick<FlRoundEvent, 'status'>): FlRoundEvent => ({
      id: toHex(roundId),
      round,
      participants: invited,
      leftOut: [],
      dp: dpReport,
      modelHash: null,
      error: null,
      startedAt,
      finishedAt: null,
      ...e,
    });
    this.d.emitRound(event({ status: 'running' }));
    const ended = (outcome: string) => {
      this.d.metrics.rounds.inc({ outcome });
      this.d.metrics.roundSeconds.observe((Date.now() - startedAt) / 1000);
    };
    try {
      if (waitError) throw waitError;
      const paramCount = this.d.data.paramCount;
      const basis = await this.basisFor(base, paramCount);
      const accountant = this.accountantFor(basis.version);
      // Participants train from the basis; the entry still names the head as its parent.
      const global = { hash: basis.version?.hash ?? null, params: basis.params };
      const test = this.d.data.test();
      const validation = this.d.data.validation();
      const result = await coordinateRound(
        global,
        links,
        { roundId, round, dp, train: DEFAULT_TRAIN, deadlineMs: this.d.deadlineMs, privacy },
        {
          sign: (m) => this.d.sign(m),
          self: this.d.self,
          ...(this.d.verifyAdverts ? { verifyAdverts: this.d.verifyAdverts } : {}),
          // Record mode: each participant's ledger accounts its own DP-SGD; the sum has no noise of its own.
          ...(mode === 'update' ? { accountant } : {}),
          onRejected: (peer, code, message) => {
            this.d.metrics.rejected.inc({ code });
            this.d.penalise(peer, `fl update rejected: ${message}`);
          },
        },
      );
      // A version that does worse on the validation set than the head, beyond what DP noise
      // explains, is not committed: a poisoned update within the range check shows here. The
      // test set stays out of this choice, so the accuracy reported on it is not selected on.
      const validationLoss = evaluate(result.params, validation).loss;
      const headLoss = evaluate(global.params, validation).loss;
      if (!(validationLoss <= headLoss + this.d.lossTolerance))
        throw new RoundFailed(
          `validation loss regressed: ${validationLoss.toFixed(4)} > ${headLoss.toFixed(4)} + ${this.d.lossTolerance}`,
          result.leftOut,
          'loss-regressed',
        );
      const ev = evaluate(result.params, test);
      const { hash, bytes } = await this.d.store.put(result.params);
      // Record mode: the largest ε any participant has spent with this round (each is its own
      // guarantee; averaging is post-processing). Update mode: this coordinator's accountant.
      const epsilon =
        mode === 'record'
          ? Math.max(0, ...result.epsilonByPeer.values())
          : noiseMultiplier > 0
            ? this.epsilonBase + (result.privacy?.epsilonTotal ?? 0)
            : NO_GUARANTEE;
      const metrics: [string, number][] = [
        ['accuracy', ev.accuracy],
        // Sorted by name: trained from this older version (0: the initial model), not the head.
        ...(basis.rebased ? [['basisRound', basis.version?.round ?? 0] as [string, number]] : []),
        ['loss', ev.loss],
        ['participants', result.included.length],
        ['round', round],
      ];
      const modelHash = fromHex(hash);
      await this.d.commitEntry({
        kind: 'model',
        modelHash,
        parentHash: base?.hash ?? null,
        round,
        metrics,
        epsilon,
      });
      this.committed = { hash: modelHash, round, epsilon };
      this.accountantHead = hash;
      this.d.metrics.accuracy.set(ev.accuracy);
      this.d.emitVersion({
        hash,
        parentHash: base ? toHex(base.hash) : null,
        round,
        metrics: Object.fromEntries(metrics),
        epsilon,
        participants: result.included.length,
        at: Date.now(),
      });
      // Whoever was asked to train stores the new version now; the rest fetch it by hash. A
      // participant refuses (and penalises) a commit of a round it did not train in.
      const got = new Set([
        ...result.included,
        ...result.leftOut.filter((l) => l.stage === 'train' || l.stage === 'unmask').map((l) => l.peerId),
      ]);
      await Promise.allSettled(
        links.filter((l) => got.has(l.peerId)).map((l) => l.commit({ roundId, model: bytes })),
      );
      // The rest may hold the round too (accepted, then left out at keys or shares, or an answer
      // lost): fl-end frees their slot now, not at deadline + grace. Told nothing, one that lost
      // two keys answers within that time declined this node's next round busy-coordinator
      // (attack review fl-trust3). Not awaited, as for a failed round.
      void Promise.allSettled(links.filter((l) => !got.has(l.peerId)).map((l) => l.end?.({ roundId })));
      if (req.targetQuantile !== undefined) dpReport.nextClipNorm = result.nextClipNorm;
      if (result.privacy) dpReport.epsilonRound = result.privacy.epsilonRound;
      dpReport.epsilon = epsilon;
      dpReport.threshold = result.threshold;
      if (mode === 'record' && result.epsilonByPeer.size > 0)
        dpReport.epsilonMin = Math.min(...result.epsilonByPeer.values());
      this.d.emitRound(
        event({
          status: 'completed',
          participants: result.included,
          leftOut: leftOutIds(invited, result.included),
          modelHash: hash,
          finishedAt: Date.now(),
        }),
      );
      this.d.log.info(
        {
          round,
          mode: mode === 'record' ? 'record-level DP-SGD' : 'update-level DP (whole updates, not records)',
          epsilon,
          accuracy: ev.accuracy,
          included: result.included.length,
          leftOut: result.leftOut,
          ms: Date.now() - startedAt,
        },
        'federated round completed',
      );
      ended('completed');
      // Record mode's dp is the fixed bound of the secure sum; only update mode adapts its clip.
      return mode === 'record' ? clipNorm : result.nextClipNorm;
    } catch (err) {
      const left: readonly LeftOut[] = err instanceof RoundFailed ? err.leftOut : [];
      const reason =
        err instanceof RoundFailed || err instanceof HeadUnavailable
          ? err.reason
          : err === waitError
            ? 'head-not-mined'
            : 'error';
      this.d.metrics.roundsFailed.inc({ reason });
      this.d.emitRound(
        event({
          status: 'failed',
          participants: [],
          leftOut: [...new Set(left.map((l) => l.peerId))],
          error: (err as Error).message.slice(0, 2000),
          finishedAt: Date.now(),
        }),
      );
      this.d.log.warn(
        { round, reason, err: (err as Error).message, leftOut: left },
        'federated round failed',
      );
      ended('failed');
      // Whoever still holds the round may free it now. Not awaited: a participant that is gone
      // must not hold up the next round; each request has its own deadline (protocols.ts FL_END).
      if (err !== waitError) void Promise.allSettled(links.map((l) => l.end?.({ roundId })));
      return clipNorm;
    }
  }

  /**
   * The weights this round trains from. Normally the head's. A head may name bytes nobody serves
   * (its coordinator never pushed them, or lied), and then no round could start: once
   * headFetchAttempts rounds in a row failed to get them, the round trains from the newest
   * version behind the head whose bytes this node stores (headFallbackDepth deep), or from the
   * initial model.
   *
   * The entry it commits still names the head as its parent: the chain's rule (round = head + 1,
   * parent = head) stays what every node evaluates, with nothing about availability, which nodes
   * cannot judge alike. No chain rule ever checked what a version was trained from (a coordinator
   * may name any bytes), so rebasing gives no one a power they lacked; the entry's `basisRound`
   * metric says it was done. An admin-signed reset would also have worked, but would leave FL
   * stopped until an admin noticed; this needs no one.
   */
  private async basisFor(head: ModelHead | undefined, paramCount: number): Promise<Basis> {
    if (!head) return { version: undefined, params: zeroParams(paramCount - 1), rebased: false };
    const hex = toHex(head.hash);
    try {
      const params = await this.d.models.resolve(head.hash, paramCount);
      this.unavailable = undefined;
      return { version: head, params, rebased: false };
    } catch (err) {
      const rounds = (this.unavailable?.hash === hex ? this.unavailable.rounds : 0) + 1;
      this.unavailable = { hash: hex, rounds };
      if (rounds < this.d.headFetchAttempts)
        throw new HeadUnavailable(
          `head ${hex.slice(0, 16)}… (round ${head.round}) unavailable (${rounds} of ${this.d.headFetchAttempts}): ${(err as Error).message}`,
        );
    }
    const behind = (this.d.modelLineage?.(this.d.headFallbackDepth + 1) ?? []).slice(1);
    for (const v of behind) {
      // Only what this node stores: the head's failure already says the network is not serving.
      const params = await this.d.store.get(toHex(v.hash));
      if (params?.length !== paramCount) continue;
      this.d.metrics.rebased.inc({ basis: 'older-version' });
      this.d.log.warn(
        { head: head.round, basis: v.round },
        'head unavailable: training from an older version',
      );
      return { version: v, params, rebased: true };
    }
    this.d.metrics.rebased.inc({ basis: 'initial' });
    this.d.log.warn({ head: head.round }, 'head unavailable: training from the initial model');
    return { version: undefined, params: zeroParams(paramCount - 1), rebased: true };
  }

  /**
   * Rounds this node runs in a row compose in RDP. Continuing from a version someone else made,
   * its ε is added to a fresh accountant's (sequential composition: sound, if looser).
   */
  private accountantFor(base: ModelHead | undefined): RdpAccountant {
    const baseHex = base ? toHex(base.hash) : undefined;
    if (!this.accountant || baseHex !== this.accountantHead) {
      this.accountant = new RdpAccountant(DELTA);
      this.epsilonBase = base && base.epsilon < NO_GUARANTEE ? base.epsilon : 0;
      this.accountantHead = baseHex;
    }
    return this.accountant;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.headMoved();
    // The round in flight may wait for its deadline; shutdown does not.
    await Promise.race([this.queue, new Promise((r) => setTimeout(r, 3_000).unref())]);
  }
}

const leftOutIds = (invited: readonly string[], included: readonly string[]) =>
  invited.filter((p) => !included.includes(p));
