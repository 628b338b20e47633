import { SYNC_DEFAULTS } from '../options.ts';
import { RateLimiterGRCA, type RateQuota } from '../p2p/rate-limiter.ts';

/**
 * How many headers-first pre-syncs of deep forks may start per period, for the whole node and per
 * address group. A claim of a deep fork is free to make (a fresh id and a status), and each one
 * took a capped pre-sync of the one sync slot (~54 s at 200,000 headers), one after another for
 * as long as fresh ids kept coming. With this, a group past its pre-syncs (or the node past all
 * of them) has its deep claims wait, unpenalised, while claims of other groups and claims that
 * connect near our tip get the slot. Pure apart from the injected clock: GCRA (burst = limit).
 */
export interface PresyncBudgetOptions {
  readonly node: RateQuota;
  readonly group: RateQuota;
  readonly now?: () => number;
}

/** Why a pre-sync may not start now: the node's pre-syncs are spent, or its group's. */
export type PresyncRefusal = 'node' | 'group';

export class PresyncBudget {
  private readonly node: RateLimiterGRCA<'node'>;
  private readonly groups: RateLimiterGRCA;

  constructor(o: PresyncBudgetOptions = SYNC_DEFAULTS.presyncs) {
    this.node = new RateLimiterGRCA(o.node, o.now);
    this.groups = new RateLimiterGRCA(o.group, o.now);
  }

  /** Why a pre-sync for `group` could not start now, or undefined (nothing is taken). */
  refusal(group: string): PresyncRefusal | undefined {
    if (this.node.available('node') < 1) return 'node';
    if (this.groups.available(group) < 1) return 'group';
    return undefined;
  }

  /** Takes one pre-sync for `group` if both budgets allow it; else says which did not. */
  take(group: string): PresyncRefusal | undefined {
    const why = this.refusal(group);
    if (why) return why;
    this.node.allows('node');
    this.groups.allows(group);
    return undefined;
  }
}
