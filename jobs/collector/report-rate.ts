/**
 * A budget per reporting node for stats reports. The collector judges reports one at a time in
 * the queue's order and each stats report writes two rows (a snapshot and the network figures):
 * one member pushing thousands of them held every other node's blocks and stats back for as
 * long as it liked (ATK-13: 300 queued flood reports kept another node's report 30 s behind),
 * and grew the index by two rows a report. A node reports stats every 60 s (plus an operator's
 * `reportStats`), so a bucket of REPORT_RATE_DEFAULTS.burst refilled at one per `everyMs` does
 * not refuse an honest node; beyond it a report is refused `report-rate` before any DB work (it
 * is signature-checked and counted, cheap next to a write), with a receipt, so the node does not
 * send it again. What a flood can hold others back by is then the burst's writes, whatever its
 * size (fair service across nodes would need a queue per node). Keyed by the signer's node id, which the signature proves; bounded in nodes.
 */
import { TokenBuckets } from '../token-buckets.ts';
import { ReportRefused } from './report-errors.ts';

export const REPORT_RATE_DEFAULTS = Object.freeze({
  /**
   * Stats reports a node may send at once: a backlog re-sent after an outage (an index DB away for
   * a minute holds 20 of a node reporting every 3 s), an operator's reportStats.
   */
  burst: 30,
  /** One more every this many ms (a node reports every 60 s by default; tests every 3 s). */
  everyMs: 1_000,
  /** Nodes whose budget is remembered (the longest idle is forgotten first). */
  maxNodes: 10_000,
});

export interface ReportRateOptions {
  readonly burst?: number;
  readonly everyMs?: number;
  readonly maxNodes?: number;
  readonly now?: () => number;
}

export class StatsReportRate {
  private readonly buckets: TokenBuckets;
  private readonly limit: { perSecond: number; burst: number };

  constructor(o: ReportRateOptions = {}) {
    const everyMs = o.everyMs ?? REPORT_RATE_DEFAULTS.everyMs;
    this.limit = { perSecond: 1000 / everyMs, burst: o.burst ?? REPORT_RATE_DEFAULTS.burst };
    this.buckets = new TokenBuckets(o.maxNodes ?? REPORT_RATE_DEFAULTS.maxNodes, o.now);
  }

  /** Takes one report from `nodeId`'s budget, or throws ReportRefused('report-rate'). */
  take(nodeId: string): void {
    const wait = this.buckets.take(nodeId, this.limit);
    if (wait > 0)
      throw new ReportRefused(
        'report-rate',
        `node ${nodeId.slice(0, 64)} sent stats faster than ${this.limit.burst} at once and one per ${1000 / this.limit.perSecond} ms; next in ${wait} s`,
      );
  }
}
