/**
 * A node's record-level privacy ledger: RDP per order, composed over every DP-SGD round the node
 * has ever contributed to (RDP composes by addition, order by order), converted to (ε, δ) on
 * demand; a budget after which the node declines; floors and caps on what a coordinator may ask
 * for (issue 16: no round may be nearly free, or spend much of the budget at once).
 *
 * Declining is a normal outcome, not an error: `canAfford` answers with a reason, and `charge`
 * throws a typed `PrivacyBudgetError` only when asked to spend what it would have refused.
 *
 * Order of operations for a round (the service's job): `canAfford` → `charge` → `saveLedger` →
 * train → send → `committed` once the round's `fl-commit` arrives (uncommitted-spend.ts: a
 * networked round counts as spent for nothing until then, and such spend is capped). Charging and saving before the update leaves the node means a crash can only
 * over-count a round that never went out, never forget one that did. For the same reason a
 * ledger file that cannot be read is an error, never a fresh start: resetting it would hand the
 * node a new budget over data that has already been spent.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { FL_DEFAULTS } from '../options.ts';
import { budgetCapacity, budgetShare } from './budget-share.ts';
import { computeRdp, DEFAULT_ORDERS, privacySpent } from './rdp-accountant.ts';
import {
  type UncommittedPolicy,
  UncommittedSpend,
  type UncommittedState,
  uncommittedStateSchema,
} from './uncommitted-spend.ts';

/** What one round asks of a node's DP-SGD, as far as privacy is concerned. */
export interface DpRoundParams {
  /** q: Poisson rate of each local example per step. */
  readonly samplingRate: number;
  /** z: noise std / clip norm on the summed clipped gradients. */
  readonly noiseMultiplier: number;
  /** C. Does not enter ε (the noise scales with it); checked against the floor. */
  readonly clipNorm: number;
  /** Local DP-SGD steps in the round. */
  readonly steps: number;
}

export interface PrivacyPolicy extends UncommittedPolicy {
  /** Budget of a new ledger; an existing ledger keeps its own (the operator may have raised it). */
  readonly budgetEpsilon: number;
  /** δ of a new ledger. */
  readonly delta: number;
  readonly minNoiseMultiplier: number;
  readonly minClipNorm: number;
  readonly minSamplingRate: number;
  readonly maxStepsPerRound: number;
  /** ε one round may cost on its own, at the ledger's δ. */
  readonly maxEpsilonPerRound: number;
  /**
   * Local steps the default budget (FL_DEFAULTS, what the coordinators' plan is made for) buys
   * at most: a round of s steps must cost s / this of it, whatever budget this ledger has.
   */
  readonly maxStepsPerBudget: number;
  /** Share of the budget that rounds without a commit may hold, in all (uncommitted-spend.ts). */
  readonly uncommittedShareInAll: number;
  /** The same, per coordinator. */
  readonly uncommittedSharePerCoordinator: number;
  /** Per-round entries kept; the RDP totals always cover every round. */
  readonly historyLimit: number;
}

export const PRIVACY_DEFAULTS: PrivacyPolicy = FL_DEFAULTS.privacy;

/** Why a node declines a round; also the label set of the service's decline metric. */
export const DECLINE_REASONS = [
  'invalid-params',
  'noise-below-floor',
  'clip-below-floor',
  'too-many-steps',
  'sampling-below-floor',
  /** The round alone would cost more ε than one round may (maxEpsilonPerRound). */
  'round-epsilon-above-cap',
  /** More local steps than the round pays for in budget (maxStepsPerBudget): CPU for free. */
  'work-exceeds-price',
  /** Rounds of this coordinator that never reached their commit already hold their share. */
  'uncommitted-per-coordinator',
  /** Rounds of all coordinators that never reached their commit already hold their share. */
  'uncommitted-in-all',
  /** Nothing left: the node has spent its whole budget. */
  'budget-exhausted',
  /** Something left, but not enough for this round (a cheaper round may still fit). */
  'round-exceeds-budget',
] as const;
export type DeclineReason = (typeof DECLINE_REASONS)[number];

export class PrivacyBudgetError extends Error {
  override readonly name = 'PrivacyBudgetError';
  readonly reason: DeclineReason;
  constructor(reason: DeclineReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The ledger file is missing pieces, has impossible values or is not JSON. */
export class LedgerStateError extends Error {
  override readonly name = 'LedgerStateError';
}

export type Affordability =
  | {
      readonly ok: true;
      /** ε of this round alone, at the ledger's δ. */
      readonly epsilonRound: number;
      /** ε of everything so far plus this round. */
      readonly epsilonAfter: number;
      readonly budgetEpsilon: number;
    }
  | {
      readonly ok: false;
      readonly reason: DeclineReason;
      readonly message: string;
      /** Set when the round was valid and priced. */
      readonly epsilonRound?: number;
      readonly epsilonAfter?: number;
      readonly budgetEpsilon: number;
    };

export interface LedgerEntry {
  /** 0, 1, 2, … over the node's life. */
  readonly index: number;
  /** The caller's name for the round (e.g. the round id in hex). */
  readonly label: string;
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly clipNorm: number;
  readonly steps: number;
  readonly epsilonRound: number;
  readonly epsilonTotal: number;
  readonly atMs: number;
}

/** Rounds charged whose commit has not arrived, as shares of the budget (uncommitted-spend.ts). */
export interface UncommittedReport {
  readonly shareInAll: number;
  readonly byCoordinator: Readonly<Record<string, number>>;
  readonly openRounds: number;
  readonly capInAll: number;
  readonly capPerCoordinator: number;
}

/** Who asks for a round and when: networked rounds have a coordinator, in-process ones none. */
export interface RoundContext {
  /**
   * The coordinator's peer id. Set, the round counts as spent for nothing until `committed` is
   * called with its label, and the caps on such spend apply; unset (runDpSgdRound, bench), neither.
   */
  readonly coordinator?: string;
  readonly atMs?: number;
}

export interface PrivacyReport {
  readonly delta: number;
  readonly budgetEpsilon: number;
  readonly epsilonTotal: number;
  readonly epsilonRemaining: number;
  readonly rounds: number;
  readonly steps: number;
  /** The most recent rounds, oldest first (at most the history limit). */
  readonly history: readonly LedgerEntry[];
  readonly uncommitted: UncommittedReport;
}

/** A ledger entry as stored: JSON has no ∞, so an infinite ε is null. */
export type StoredLedgerEntry = Omit<LedgerEntry, 'epsilonRound' | 'epsilonTotal'> & {
  readonly epsilonRound: number | null;
  readonly epsilonTotal: number | null;
};

/** The JSON the service keeps in the data dir. RDP that is +∞ at some order is stored as null. */
export interface PrivacyLedgerState {
  readonly version: 1;
  readonly delta: number;
  readonly budgetEpsilon: number;
  readonly orders: readonly number[];
  readonly rdp: readonly (number | null)[];
  readonly rounds: number;
  readonly steps: number;
  readonly history: readonly StoredLedgerEntry[];
  /** Absent in ledgers written before issue 16: nothing uncommitted. */
  readonly uncommitted?: UncommittedState;
}

const MAX_LABEL = 128;
/** A ledger file is a few hundred kB at the default history limit; anything far larger is not ours. */
export const MAX_LEDGER_BYTES = 8 << 20;

const finite = z.number().refine(Number.isFinite, 'finite number expected');
const entrySchema = z
  .object({
    index: z.number().int().min(0),
    label: z.string().max(MAX_LABEL),
    samplingRate: finite.gt(0).max(1),
    noiseMultiplier: finite.gt(0),
    clipNorm: finite.gt(0),
    steps: z.number().int().min(1),
    epsilonRound: z.number().min(0).nullable(),
    epsilonTotal: z.number().min(0).nullable(),
    atMs: z.number().int().min(0),
  })
  .strict();
const stateSchema = z
  .object({
    version: z.literal(1),
    delta: finite.gt(0).lt(1),
    budgetEpsilon: finite.min(0),
    orders: z.array(finite.gt(1)).min(1).max(1_000),
    rdp: z.array(z.number().min(0).nullable()).max(1_000),
    rounds: z.number().int().min(0),
    steps: z.number().int().min(0),
    history: z.array(entrySchema).max(100_000),
    uncommitted: uncommittedStateSchema.optional(),
  })
  .strict()
  .refine((s) => s.orders.length === s.rdp.length, 'one RDP value per order')
  .refine(
    (s) =>
      !s.uncommitted ||
      [
        s.uncommitted.total,
        ...s.uncommitted.byCoordinator.map((c) => c.rdp),
        ...s.uncommitted.open.map((o) => o.rdp),
      ].every((v) => v.length === s.orders.length),
    'one uncommitted RDP value per order',
  );

/** JSON has no ∞: a null in the file is +∞ (an order at which the bound is vacuous). */
const toJsonNumber = (x: number): number | null => (Number.isFinite(x) ? x : null);
const fromJsonNumber = (x: number | null): number => (x === null ? Infinity : x);

export class PrivacyLedger {
  private readonly rdp: Float64Array;
  private history: LedgerEntry[];

  private readonly policy: PrivacyPolicy;
  private budget: number;
  readonly delta: number;
  readonly orders: readonly number[];
  private roundCount: number;
  private stepCount: number;
  private readonly uncommitted: UncommittedSpend;
  private constructor(
    policy: PrivacyPolicy,
    budget: number,
    delta: number,
    orders: readonly number[],
    rdp: ArrayLike<number>,
    roundCount: number,
    stepCount: number,
    history: readonly LedgerEntry[],
    uncommitted?: UncommittedState,
  ) {
    this.policy = policy;
    this.uncommitted = new UncommittedSpend(policy, orders.length, uncommitted);
    this.budget = budget;
    this.delta = delta;
    this.orders = orders;
    this.roundCount = roundCount;
    this.stepCount = stepCount;
    this.rdp = Float64Array.from(rdp);
    this.history = history.slice(-policy.historyLimit);
  }

  /** A node that has contributed nothing yet. */
  static fresh(policy: Partial<PrivacyPolicy> = {}): PrivacyLedger {
    const p = { ...PRIVACY_DEFAULTS, ...policy };
    if (!(p.budgetEpsilon >= 0) || !Number.isFinite(p.budgetEpsilon)) throw new RangeError('invalid budget');
    if (!(p.delta > 0 && p.delta < 1)) throw new RangeError('delta must be in (0, 1)');
    return new PrivacyLedger(
      p,
      p.budgetEpsilon,
      p.delta,
      DEFAULT_ORDERS,
      new Float64Array(DEFAULT_ORDERS.length),
      0,
      0,
      [],
    );
  }

  /**
   * A ledger from its stored state. The state's own orders, δ and budget are kept (RDP is only
   * meaningful at the orders it was computed at); floors and limits come from `policy`.
   */
  static fromState(state: unknown, policy: Partial<PrivacyPolicy> = {}): PrivacyLedger {
    const parsed = stateSchema.safeParse(state);
    if (!parsed.success) {
      throw new LedgerStateError(
        `invalid privacy ledger: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    const s = parsed.data;
    const history = s.history.map((e) => ({
      ...e,
      epsilonRound: fromJsonNumber(e.epsilonRound),
      epsilonTotal: fromJsonNumber(e.epsilonTotal),
    }));
    return new PrivacyLedger(
      { ...PRIVACY_DEFAULTS, ...policy },
      s.budgetEpsilon,
      s.delta,
      Object.freeze([...s.orders]),
      s.rdp.map(fromJsonNumber),
      s.rounds,
      s.steps,
      history,
      s.uncommitted,
    );
  }

  get budgetEpsilon(): number {
    return this.budget;
  }

  /** The operator's decision (raise to let a node train again, lower to stop it sooner). */
  setBudget(epsilon: number): void {
    if (!(epsilon >= 0) || !Number.isFinite(epsilon)) throw new RangeError('budget must be a finite ε ≥ 0');
    this.budget = epsilon;
  }

  /** ε spent so far at the ledger's δ (0 before the first round). */
  spent(): number {
    if (this.roundCount === 0) return 0;
    return privacySpent(this.rdp, this.delta, this.orders).epsilon;
  }

  /** Would one more round with these parameters keep the node within its budget and caps? */
  canAfford(params: DpRoundParams, ctx: RoundContext = {}): Affordability {
    const priced = this.price(params, ctx);
    if (!priced.ok) return priced;
    return priced.affordability;
  }

  /**
   * Records the round as spent and returns its entry. Throws `PrivacyBudgetError` with the same
   * reason `canAfford` gives if the round is not affordable, so a caller that skipped the check
   * still cannot overspend.
   */
  charge(params: DpRoundParams, meta: RoundContext & { readonly label?: string } = {}): LedgerEntry {
    const priced = this.price(params, meta);
    if (!priced.ok) throw new PrivacyBudgetError(priced.reason, priced.message);
    if (!priced.affordability.ok) {
      throw new PrivacyBudgetError(priced.affordability.reason, priced.affordability.message);
    }
    for (let k = 0; k < this.rdp.length; k++) this.rdp[k]! += priced.roundRdp[k]!;
    const atMs = Math.max(0, Math.floor(meta.atMs ?? Date.now()));
    if (meta.coordinator !== undefined)
      this.uncommitted.charge(meta.label ?? '', meta.coordinator, priced.roundRdp, atMs);
    this.roundCount++;
    this.stepCount += params.steps;
    const entry: LedgerEntry = {
      index: this.roundCount - 1,
      label: (meta.label ?? '').slice(0, MAX_LABEL),
      samplingRate: params.samplingRate,
      noiseMultiplier: params.noiseMultiplier,
      clipNorm: params.clipNorm,
      steps: params.steps,
      epsilonRound: priced.affordability.epsilonRound,
      epsilonTotal: this.spent(),
      atMs,
    };
    this.history.push(entry);
    if (this.history.length > this.policy.historyLimit)
      this.history.splice(0, this.history.length - this.policy.historyLimit);
    return entry;
  }

  /**
   * The round's commit arrived: what it was charged bought a version, and it forgives part of
   * its coordinator's older failures. False when no open round has this label.
   */
  committed(label: string, atMs: number = Date.now()): boolean {
    return this.uncommitted.commit(label, atMs);
  }

  report(): PrivacyReport {
    const epsilonTotal = this.spent();
    const u = this.uncommitted.shares(this.shareOfBudget());
    return {
      delta: this.delta,
      budgetEpsilon: this.budget,
      epsilonTotal,
      epsilonRemaining: Math.max(0, this.budget - epsilonTotal),
      rounds: this.roundCount,
      steps: this.stepCount,
      history: [...this.history],
      uncommitted: {
        shareInAll: u.inAll,
        byCoordinator: u.byCoordinator,
        openRounds: u.openRounds,
        capInAll: this.policy.uncommittedShareInAll,
        capPerCoordinator: this.policy.uncommittedSharePerCoordinator,
      },
    };
  }

  /** Shares of this ledger's budget (budget-share.ts). */
  private shareOfBudget(budget: number = this.budget): (rdp: Float64Array) => number {
    const capacity = budgetCapacity(budget, this.delta, this.orders);
    return (rdp) => budgetShare(rdp, capacity);
  }

  toState(): PrivacyLedgerState {
    return {
      version: 1,
      delta: this.delta,
      budgetEpsilon: this.budget,
      orders: [...this.orders],
      rdp: Array.from(this.rdp, toJsonNumber),
      rounds: this.roundCount,
      steps: this.stepCount,
      history: this.history.map((e) => ({
        ...e,
        epsilonRound: toJsonNumber(e.epsilonRound),
        epsilonTotal: toJsonNumber(e.epsilonTotal),
      })),
      uncommitted: this.uncommitted.toState(),
    };
  }

  /** Validation, floors, then the price in RDP; the parameters come from a coordinator. */
  private price(
    p: DpRoundParams,
    ctx: RoundContext,
  ):
    | { readonly ok: true; readonly affordability: Affordability; readonly roundRdp: Float64Array }
    | (Affordability & { readonly ok: false }) {
    const budgetEpsilon = this.budget;
    const refuse = (reason: DeclineReason, message: string) => ({
      ok: false as const,
      reason,
      message,
      budgetEpsilon,
    });
    const { samplingRate: q, noiseMultiplier: z, clipNorm: c, steps } = p;
    if (typeof q !== 'number' || !(q > 0 && q <= 1))
      return refuse('invalid-params', `sampling rate ${q} not in (0, 1]`);
    if (typeof z !== 'number' || !Number.isFinite(z) || !(z > 0)) {
      return refuse('invalid-params', `noise multiplier ${z} is not a positive number`);
    }
    if (typeof c !== 'number' || !Number.isFinite(c) || !(c > 0)) {
      return refuse('invalid-params', `clip norm ${c} is not a positive number`);
    }
    if (!Number.isInteger(steps) || steps < 1)
      return refuse('invalid-params', `steps ${steps} is not a positive integer`);
    if (z < this.policy.minNoiseMultiplier) {
      return refuse(
        'noise-below-floor',
        `noise multiplier ${z} is below this node's floor ${this.policy.minNoiseMultiplier}`,
      );
    }
    if (c < this.policy.minClipNorm) {
      return refuse(
        'clip-below-floor',
        `clip norm ${c} is below this node's floor ${this.policy.minClipNorm}`,
      );
    }
    if (q < this.policy.minSamplingRate) {
      return refuse(
        'sampling-below-floor',
        `sampling rate ${q} is below this node's floor ${this.policy.minSamplingRate}`,
      );
    }
    if (steps > this.policy.maxStepsPerRound) {
      return refuse(
        'too-many-steps',
        `${steps} local steps exceed this node's limit of ${this.policy.maxStepsPerRound}`,
      );
    }
    const spent = this.spent();
    if (spent >= budgetEpsilon) {
      return refuse(
        'budget-exhausted',
        `ε ${spent.toFixed(4)} of ${budgetEpsilon} spent at δ = ${this.delta}`,
      );
    }
    const roundRdp = computeRdp(q, z, steps, this.orders);
    const after = new Float64Array(roundRdp.length);
    for (let k = 0; k < after.length; k++) after[k] = this.rdp[k]! + roundRdp[k]!;
    const epsilonRound = privacySpent(roundRdp, this.delta, this.orders).epsilon;
    const epsilonAfter = privacySpent(after, this.delta, this.orders).epsilon;
    const priced = { epsilonRound, epsilonAfter, budgetEpsilon };
    // The budget first: a round it cannot afford is declined as such, whatever else is wrong.
    if (!(epsilonAfter <= budgetEpsilon)) {
      return {
        ok: false,
        reason: 'round-exceeds-budget',
        message: `the round costs ε ${epsilonRound.toFixed(4)}; ε would reach ${epsilonAfter.toFixed(4)} of ${budgetEpsilon}`,
        ...priced,
      };
    }
    if (!(epsilonRound <= this.policy.maxEpsilonPerRound)) {
      return {
        ok: false,
        reason: 'round-epsilon-above-cap',
        message: `the round alone costs ε ${epsilonRound.toFixed(4)}; one round may cost at most ${this.policy.maxEpsilonPerRound}`,
        ...priced,
      };
    }
    // Priced against the default budget, not this ledger's or its policy's: an operator who
    // raises a budget (so each round is a smaller share of it) has not made its CPU cheaper.
    const paid = this.shareOfBudget(PRIVACY_DEFAULTS.budgetEpsilon)(roundRdp);
    const owed = steps / this.policy.maxStepsPerBudget;
    if (!(paid >= owed)) {
      return {
        ok: false,
        reason: 'work-exceeds-price',
        message: `${steps} local steps cost ${(paid * 100).toPrecision(3)} % of a budget of ε ${PRIVACY_DEFAULTS.budgetEpsilon}; they must cost ${(owed * 100).toPrecision(3)} %`,
        ...priced,
      };
    }
    if (ctx.coordinator !== undefined) {
      const refusal = this.uncommittedRefusal(ctx.coordinator, roundRdp, ctx.atMs ?? Date.now());
      if (refusal) return { ok: false, ...refusal, ...priced };
    }
    return { ok: true, affordability: { ok: true, ...priced }, roundRdp };
  }

  /**
   * Whether this round, should it fail too, would take the spend without a commit over a cap.
   * While nothing is uncommitted a round is always let through, so a round that alone is more
   * than a cap (a ledger whose budget was lowered) still gets its chance to commit: the spend
   * then stays within a cap plus one round, and one round is bounded by maxEpsilonPerRound.
   */
  private uncommittedRefusal(
    coordinator: string,
    roundRdp: Float64Array,
    atMs: number,
  ): { readonly reason: DeclineReason; readonly message: string } | undefined {
    const { before, after } = this.uncommitted.judge(coordinator, roundRdp, atMs, this.shareOfBudget());
    const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
    const capC = this.policy.uncommittedSharePerCoordinator;
    if (before.shareOfCoordinator > 0 && after.shareOfCoordinator > capC)
      return {
        reason: 'uncommitted-per-coordinator',
        message: `rounds of this coordinator without a commit hold ${pct(before.shareOfCoordinator)} of the budget; this one would take it to ${pct(after.shareOfCoordinator)}, over ${pct(capC)}`,
      };
    const capA = this.policy.uncommittedShareInAll;
    if (before.shareInAll > 0 && after.shareInAll > capA)
      return {
        reason: 'uncommitted-in-all',
        message: `rounds without a commit hold ${pct(before.shareInAll)} of the budget; this one would take it to ${pct(after.shareInAll)}, over ${pct(capA)}`,
      };
    return undefined;
  }
}

/**
 * Reads the ledger at `file`; a missing file is a node that has contributed nothing. Anything else
 * that goes wrong (unreadable, oversized, not JSON, invalid) throws: see the header for why.
 */
export async function loadLedger(file: string, policy: Partial<PrivacyPolicy> = {}): Promise<PrivacyLedger> {
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return PrivacyLedger.fresh(policy);
    throw e;
  }
  if (size > MAX_LEDGER_BYTES) throw new LedgerStateError(`privacy ledger ${file} is ${size} bytes`);
  const text = await readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new LedgerStateError(`privacy ledger ${file} is not JSON: ${(e as Error).message}`);
  }
  return PrivacyLedger.fromState(json, policy);
}

/**
 * Writes the ledger atomically: a temporary file in the same directory, fsynced, renamed over
 * `file`, then the directory fsynced so the rename itself survives a power cut. A reader sees the
 * old ledger or the new one, never half of either.
 */
export async function saveLedger(file: string, ledger: PrivacyLedger): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(JSON.stringify(ledger.toState()));
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
