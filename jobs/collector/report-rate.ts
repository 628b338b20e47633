/**
 * A budget per reporting node for every report kind. The collector judges reports one at a time
 * in the queue's order and each report writes rows: one member pushing thousands of them held
 * every other node's reports back for as long as it liked (ATK-13: 300 queued stats reports kept
 * another node's report 30 s behind; the review of its fix: 3,000 `block.orphaned` reports, which
 * carry nothing the collector can check, 20.2 s). Each kind has its own bucket per node, sized for
 * the honest burst of that kind (REPORT_BUDGETS); beyond it a report is refused `report-rate`
 * before any DB work (it is signature-checked and counted, cheap next to a write), with a
 * receipt, so the node does not send it again. What a flood can hold others back by is then the
 * burst's writes, whatever its size (fair service across nodes would need a queue per node).
 * Keyed by the signer's node id, which the signature proves; bounded in nodes.
 */
import type { ReportKind } from '../queues.ts';
import { TokenBuckets } from '../token-buckets.ts';
import { ReportRefused } from './report-errors.ts';

export interface ReportBudget {
  /** Reports of the kind a node may send at once. */
  readonly burst: number;
  /** One more every this many ms. */
  readonly everyMs: number;
}

export const REPORT_RATE_DEFAULTS = Object.freeze({
  /**
   * Stats reports a node may send at once: a backlog re-sent after an outage (an index DB away for
   * a minute holds 20 of a node reporting every 3 s), an operator's reportStats.
   */
  burst: 30,
  /** One more every this many ms (a node reports every 60 s by default; tests every 3 s). */
  everyMs: 1_000,
  /** Nodes whose budget is remembered, per kind (the longest idle is forgotten first). */
  maxNodes: 10_000,
});

/**
 * Each kind's budget per node. Stats: REPORT_RATE_DEFAULTS. Orphans: a reorg reports every block
 * it takes out, and a node that just joined reports the orphan pool it fills while syncing, so
 * the burst is larger (100) but the refill the same as stats'. Accepted blocks and model
 * versions are proven by the chain (block-check.ts: hash, proof of work, signatures; weights by
 * their hash), so a flood of them costs proof of work or is duplicates; their bucket only bounds
 * a node's backfill (100 blocks a tip, node-jobs.ts) plus a fast test chain, generously.
 * FL rounds: a coordinator reports each status of each round (4 slots, a few statuses each).
 */
export const REPORT_BUDGETS: Readonly<Record<ReportKind, ReportBudget>> = Object.freeze({
  'node.stats': { burst: REPORT_RATE_DEFAULTS.burst, everyMs: REPORT_RATE_DEFAULTS.everyMs },
  'block.orphaned': { burst: 100, everyMs: 1_000 },
  'block.accepted': { burst: 1_000, everyMs: 50 },
  'model.version': { burst: 1_000, everyMs: 50 },
  'fl.round': { burst: 60, everyMs: 1_000 },
});

/**
 * Budgets that node ids the index does not know yet share, by kind (open networks only: a roster
 * network refuses non-members, and members are admitted by an admin). A key is free to mint, so
 * per-node buckets alone let 300 fresh keys send one report each, all written (the review of
 * ATK-13's fix: another node's report held 28 s, 300 fake nodes on every dashboard): their
 * first reports share one bucket here, whatever their number. A node is known once one of its
 * stats reports is indexed (its node row), so an honest newcomer spends one stats token, then
 * has its own budgets; fresh keys become nodes at most at this bucket's refill (360 an hour).
 * Kinds the chain proves (accepted blocks, model versions) have no newcomer bucket: a node that
 * just joined reports its backfill of them before its first stats.
 */
export const NEWCOMER_BUDGETS: Readonly<Partial<Record<ReportKind, ReportBudget>>> = Object.freeze({
  'node.stats': { burst: 30, everyMs: 10_000 },
  'block.orphaned': { burst: 100, everyMs: 1_000 },
  'fl.round': { burst: 60, everyMs: 1_000 },
});

/** The one key of the newcomers' shared buckets. */
const NEWCOMERS = 'newcomers';

export interface ReportRateOptions {
  /** Stats' budget (REPORT_RATE_DEFAULTS), kept as the collector's option of old. */
  readonly burst?: number;
  readonly everyMs?: number;
  /** Other kinds' budgets, by kind (REPORT_BUDGETS). */
  readonly kinds?: Partial<Record<ReportKind, ReportBudget>>;
  /** The newcomers' shared budgets, by kind (NEWCOMER_BUDGETS). */
  readonly newcomers?: Partial<Record<ReportKind, ReportBudget>>;
  readonly maxNodes?: number;
  readonly now?: () => number;
}

interface Limit {
  readonly perSecond: number;
  readonly burst: number;
}

const limitOf = (b: ReportBudget): Limit => ({ perSecond: 1000 / b.everyMs, burst: b.burst });

export class ReportRate {
  private readonly buckets = new Map<ReportKind, TokenBuckets>();
  private readonly limits = new Map<ReportKind, Limit>();
  private readonly newcomerLimits = new Map<ReportKind, Limit>();
  private readonly newcomers: TokenBuckets;

  constructor(o: ReportRateOptions = {}) {
    const maxNodes = o.maxNodes ?? REPORT_RATE_DEFAULTS.maxNodes;
    for (const kind of Object.keys(REPORT_BUDGETS) as ReportKind[]) {
      const stats =
        kind === 'node.stats'
          ? {
              burst: o.burst ?? REPORT_BUDGETS[kind].burst,
              everyMs: o.everyMs ?? REPORT_BUDGETS[kind].everyMs,
            }
          : undefined;
      const budget = o.kinds?.[kind] ?? stats ?? REPORT_BUDGETS[kind];
      if (!(budget.burst >= 1 && budget.everyMs > 0))
        throw new RangeError(`report-rate: ${kind} needs a burst of at least 1 and a positive everyMs`);
      this.limits.set(kind, limitOf(budget));
      this.buckets.set(kind, new TokenBuckets(maxNodes, o.now));
      const shared = o.newcomers?.[kind] ?? NEWCOMER_BUDGETS[kind];
      if (!shared) continue;
      if (!(shared.burst >= 1 && shared.everyMs > 0))
        throw new RangeError(
          `report-rate: newcomers' ${kind} needs a burst of at least 1 and a positive everyMs`,
        );
      this.newcomerLimits.set(kind, limitOf(shared));
    }
    this.newcomers = new TokenBuckets(this.newcomerLimits.size, o.now);
  }

  /** Whether reports of `kind` from nodes the index does not know share a bucket. */
  sharesNewcomers(kind: ReportKind): boolean {
    return this.newcomerLimits.has(kind);
  }

  /**
   * Takes one `kind` report of a node the index does not know from the newcomers' shared
   * budget, or throws ReportRefused('newcomer-rate').
   */
  takeNewcomer(kind: ReportKind, nodeId: string): void {
    const limit = this.newcomerLimits.get(kind);
    if (!limit) return;
    const wait = this.newcomers.take(`${NEWCOMERS}.${kind}`, limit);
    if (wait > 0)
      throw new ReportRefused(
        'newcomer-rate',
        `node ${nodeId.slice(0, 64)} is new to the index and new nodes' ${kind} reports came faster than ${limit.burst} at once and one per ${1000 / limit.perSecond} ms; next in ${wait} s`,
      );
  }

  /** Takes one `kind` report from `nodeId`'s budget, or throws ReportRefused('report-rate'). */
  take(kind: ReportKind, nodeId: string): void {
    const limit = this.limits.get(kind)!;
    const wait = this.buckets.get(kind)!.take(nodeId, limit);
    if (wait > 0)
      throw new ReportRefused(
        'report-rate',
        `node ${nodeId.slice(0, 64)} sent ${kind} reports faster than ${limit.burst} at once and one per ${1000 / limit.perSecond} ms; next in ${wait} s`,
      );
  }
}
