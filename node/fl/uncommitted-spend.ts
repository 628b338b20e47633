/**
 * The part of a node's privacy spend that bought nothing: RDP charged to networked rounds whose
 * `fl-commit` has not arrived, in all and per coordinator (issue 16, finding 4).
 *
 * A participant must charge its ledger before it trains (the update exists only once its cost is
 * on the books), so a round that fails after training — one `train` member's out-of-range update
 * fails the sum's range check, and it cannot be told apart from the honest ones — has spent every
 * honest participant's ε for no version. Twenty such rounds spend the default budget. The ledger
 * therefore keeps what rounds charged and never committed, and declines (privacy-budget.ts) a
 * round that would take it over a cap: a fraction of the budget in all, a smaller one per
 * coordinator (node/options.ts FL_DEFAULTS.privacy says which and why).
 *
 * A round counts from its charge on (a round in flight may still fail) until its commit arrives;
 * the commit removes its own cost and forgives part of the older failures of its coordinator and
 * of the total (progress shows that the failures were the normal cost of dropouts, not a
 * saboteur's pattern); the rest decays with a half-life, so a node that stopped is not stopped
 * forever, while a saboteur that fails every round drains at most cap·ln 2 / half-life of the
 * budget per unit of time. Spend is kept as RDP per order (it composes by addition) and judged as
 * a share of the budget (budget-share.ts).
 */
import { z } from 'zod';

export interface UncommittedPolicy {
  /** Half-life of remembered failures, ms. */
  readonly uncommittedHalfLifeMs: number;
  /** Per committed round: how much of its own cost is forgiven of older failures (0 = none). */
  readonly uncommittedRecoveryPerCommit: number;
}

/** Rounds whose commit may still arrive; older ones stay counted as failed. */
export const MAX_OPEN_ROUNDS = 64;
/** Coordinators tracked apart; beyond it the one with the least spend is forgotten (the total keeps it). */
export const MAX_TRACKED_COORDINATORS = 256;
const MAX_ID = 128;

/** The spend of a coordinator, or in all, as a share of the budget. */
export interface UncommittedJudgement {
  readonly shareInAll: number;
  readonly shareOfCoordinator: number;
}

const rdpArray = z.array(z.number().min(0).nullable()).max(1_000);
export const uncommittedStateSchema = z
  .object({
    atMs: z.number().int().min(0),
    total: rdpArray,
    byCoordinator: z
      .array(z.object({ coordinator: z.string().max(MAX_ID), rdp: rdpArray }).strict())
      .max(MAX_TRACKED_COORDINATORS),
    open: z
      .array(
        z
          .object({ label: z.string().max(MAX_ID), coordinator: z.string().max(MAX_ID), rdp: rdpArray })
          .strict(),
      )
      .max(MAX_OPEN_ROUNDS),
  })
  .strict();
export type UncommittedState = z.infer<typeof uncommittedStateSchema>;

/** JSON has no ∞: a null in the file is +∞. */
const toJson = (v: Float64Array) => Array.from(v, (x) => (Number.isFinite(x) ? x : null));
const fromJson = (v: readonly (number | null)[], n: number): Float64Array => {
  if (v.length !== n) throw new RangeError('one RDP value per order');
  return Float64Array.from(v, (x) => (x === null ? Infinity : x));
};

interface OpenRound {
  readonly coordinator: string;
  readonly rdp: Float64Array;
}

export class UncommittedSpend {
  private readonly orders: number;
  private total: Float64Array;
  private readonly byCoordinator = new Map<string, Float64Array>();
  /** Insertion order is charge order: the oldest is dropped first. */
  private readonly open = new Map<string, OpenRound>();
  private atMs: number;

  private readonly policy: UncommittedPolicy;
  constructor(policy: UncommittedPolicy, orders: number, state?: UncommittedState) {
    this.policy = policy;
    this.orders = orders;
    this.total = new Float64Array(orders);
    this.atMs = 0;
    if (!state) return;
    this.atMs = state.atMs;
    this.total = fromJson(state.total, orders);
    for (const c of state.byCoordinator) this.byCoordinator.set(c.coordinator, fromJson(c.rdp, orders));
    for (const o of state.open)
      this.open.set(o.label, { coordinator: o.coordinator, rdp: fromJson(o.rdp, orders) });
  }

  /** The spend without a commit, in all and of `coordinator`, if `extra` were charged too. */
  judge(
    coordinator: string,
    extra: Float64Array,
    nowMs: number,
    share: (rdp: Float64Array) => number,
  ): { readonly before: UncommittedJudgement; readonly after: UncommittedJudgement } {
    this.decayTo(nowMs);
    const own = this.byCoordinator.get(coordinator.slice(0, MAX_ID)) ?? new Float64Array(this.orders);
    return {
      before: { shareInAll: share(this.total), shareOfCoordinator: share(own) },
      after: { shareInAll: share(sum(this.total, extra)), shareOfCoordinator: share(sum(own, extra)) },
    };
  }

  /** A networked round was charged: it counts as spent for nothing until its commit arrives. */
  charge(label: string, coordinator: string, rdp: Float64Array, nowMs: number): void {
    this.decayTo(nowMs);
    const c = coordinator.slice(0, MAX_ID);
    addInto(this.total, rdp);
    addInto(this.coordinatorSpend(c), rdp);
    const key = label.slice(0, MAX_ID);
    this.open.delete(key);
    this.open.set(key, { coordinator: c, rdp: Float64Array.from(rdp) });
    while (this.open.size > MAX_OPEN_ROUNDS) this.open.delete(this.open.keys().next().value!);
  }

  /**
   * The round's commit arrived: its cost bought a version. False when the round is not open (never
   * charged here, committed already, or too old to be remembered).
   */
  commit(label: string, nowMs: number): boolean {
    const round = this.open.get(label.slice(0, MAX_ID));
    if (!round) return false;
    this.open.delete(label.slice(0, MAX_ID));
    this.decayTo(nowMs);
    const forgive = Float64Array.from(round.rdp, (x) => x * (1 + this.policy.uncommittedRecoveryPerCommit));
    subClamped(this.total, forgive);
    const own = this.byCoordinator.get(round.coordinator);
    if (own) {
      subClamped(own, forgive);
      if (own.every((x) => x === 0)) this.byCoordinator.delete(round.coordinator);
    }
    return true;
  }

  /** Shares for the report: in all, and per coordinator with any spend left. */
  shares(share: (rdp: Float64Array) => number): {
    readonly inAll: number;
    readonly byCoordinator: Readonly<Record<string, number>>;
    readonly openRounds: number;
  } {
    return {
      inAll: share(this.total),
      byCoordinator: Object.fromEntries([...this.byCoordinator].map(([c, v]) => [c, share(v)])),
      openRounds: this.open.size,
    };
  }

  toState(): UncommittedState {
    return {
      atMs: this.atMs,
      total: toJson(this.total),
      byCoordinator: [...this.byCoordinator].map(([coordinator, v]) => ({ coordinator, rdp: toJson(v) })),
      open: [...this.open].map(([label, o]) => ({ label, coordinator: o.coordinator, rdp: toJson(o.rdp) })),
    };
  }

  private coordinatorSpend(c: string): Float64Array {
    let v = this.byCoordinator.get(c);
    if (!v) {
      if (this.byCoordinator.size >= MAX_TRACKED_COORDINATORS) this.forgetSmallestCoordinator();
      v = new Float64Array(this.orders);
      this.byCoordinator.set(c, v);
    }
    return v;
  }

  /** The total still holds what it had: forgetting a coordinator only loosens its own cap. */
  private forgetSmallestCoordinator(): void {
    let smallest: string | undefined;
    let least = Infinity;
    for (const [c, v] of this.byCoordinator) {
      const s = v.reduce((a, b) => a + b, 0);
      if (s < least) [smallest, least] = [c, s];
    }
    if (smallest !== undefined) this.byCoordinator.delete(smallest);
  }

  /** Scales every remembered spend by 2^(−Δt / half-life); a clock that went back decays nothing. */
  private decayTo(nowMs: number): void {
    const dt = nowMs - this.atMs;
    if (!(dt > 0)) return;
    this.atMs = Math.floor(nowMs);
    const h = this.policy.uncommittedHalfLifeMs;
    if (!(h > 0) || !Number.isFinite(h)) return;
    const f = 2 ** (-dt / h);
    scale(this.total, f);
    for (const v of this.byCoordinator.values()) scale(v, f);
  }
}

const sum = (a: Float64Array, b: Float64Array) => Float64Array.from(a, (x, k) => x + b[k]!);
function addInto(a: Float64Array, b: Float64Array): void {
  for (let k = 0; k < a.length; k++) a[k]! += b[k]!;
}
function subClamped(a: Float64Array, b: Float64Array): void {
  // ∞ − ∞ is NaN: an order at which the spend was unbounded stays unbounded.
  for (let k = 0; k < a.length; k++) a[k] = Number.isFinite(a[k]!) ? Math.max(0, a[k]! - b[k]!) : a[k]!;
}
function scale(a: Float64Array, f: number): void {
  for (let k = 0; k < a.length; k++) a[k]! *= f;
}
