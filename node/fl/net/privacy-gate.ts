/**
 * A node's privacy decisions as a participant: which DP modes it takes part in, and, for
 * record-level rounds, whether its ledger (node/fl/privacy-budget.ts, `<dataDir>/fl-privacy.json`)
 * can afford the round. It charges and persists the ledger before the node trains, keeps the
 * declines by reason, and is what `GET /fl/privacy` and `POST /fl/budget` read and change.
 *
 * Declining is a normal answer: `decide` returns the reason, counted in
 * `cairn_fl_declined_total{reason}` and logged; only a charge the ledger would have refused (two
 * rounds accepted at once that together overspend) throws, and then the round goes without us.
 */
import path from 'node:path';
import type { Counter } from 'prom-client';
import type { Logger } from '../../log.ts';
import {
  DECLINE_REASONS,
  type LedgerEntry,
  loadLedger,
  type PrivacyLedger,
  type PrivacyPolicy,
  type PrivacyReport,
  saveLedger,
} from '../privacy-budget.ts';
import type { DpMode, RoundPrivacy } from './wire.ts';

export const LEDGER_FILE = 'fl-privacy.json';

/** Why a participant declines on privacy grounds: the ledger's reasons and the mode's. */
export const PRIVACY_DECLINE_REASONS = [
  ...DECLINE_REASONS,
  /** A mode this version cannot read (a newer coordinator's). */
  'unknown-mode',
  /** An update-level round at a node that takes part in record-level rounds only. */
  'mode-not-accepted',
  /** The ledger has not been loaded (the service is starting or failed to read it). */
  'ledger-unavailable',
] as const;
export type PrivacyDeclineReason = (typeof PRIVACY_DECLINE_REASONS)[number];

export type PrivacyDecision =
  | { readonly ok: true; readonly mode: 'update' }
  | {
      readonly ok: true;
      readonly mode: 'record';
      readonly epsilonAfter: number;
      readonly epsilonRound: number;
    }
  | { readonly ok: false; readonly reason: PrivacyDeclineReason; readonly message: string };

export interface PrivacyGateOptions {
  readonly dataDir: string;
  /**
   * `record`: only record-level rounds (an update-level round would spend this node's data
   * outside its ledger, so the budget would mean nothing). `update`: both.
   */
  readonly mode: DpMode;
  /** Set the ledger's budget to this at load (the operator's flag); absent: the ledger keeps its own. */
  readonly budgetEpsilon?: number;
  readonly policy?: Partial<PrivacyPolicy>;
  readonly declined: Counter<'reason'>;
  readonly log: Logger;
  /** The clock failures decay by (uncommitted-spend.ts); Date.now by default. */
  readonly now?: () => number;
}

export interface PrivacyStatus extends PrivacyReport {
  readonly mode: DpMode;
  /** Rounds declined on privacy grounds since start, by reason. */
  readonly declines: Readonly<Partial<Record<PrivacyDeclineReason, number>>>;
}

export class PrivacyGate {
  private ledger: PrivacyLedger | undefined;
  private loadError: Error | undefined;
  /** Saves run one after another, so an older state never lands after a newer one. */
  private saving: Promise<void> = Promise.resolve();
  private readonly declines: Partial<Record<PrivacyDeclineReason, number>> = {};
  readonly file: string;

  private readonly o: PrivacyGateOptions;
  constructor(o: PrivacyGateOptions) {
    this.o = o;
    this.file = path.join(o.dataDir, LEDGER_FILE);
  }

  get mode(): DpMode {
    return this.o.mode;
  }

  /**
   * Reads the ledger. A ledger that cannot be read is kept unreadable (every record-level round
   * is declined) rather than replaced by a fresh one: that would hand spent data a new budget.
   */
  async load(): Promise<void> {
    try {
      const ledger = await loadLedger(this.file, {
        ...this.o.policy,
        ...(this.o.budgetEpsilon !== undefined ? { budgetEpsilon: this.o.budgetEpsilon } : {}),
      });
      if (this.o.budgetEpsilon !== undefined && ledger.budgetEpsilon !== this.o.budgetEpsilon) {
        ledger.setBudget(this.o.budgetEpsilon);
        await saveLedger(this.file, ledger);
      }
      this.ledger = ledger;
      const r = ledger.report();
      this.o.log.info(
        {
          mode: this.o.mode,
          epsilon: r.epsilonTotal,
          budget: r.budgetEpsilon,
          delta: r.delta,
          rounds: r.rounds,
        },
        'privacy ledger loaded',
      );
    } catch (err) {
      this.loadError = err as Error;
      this.o.log.error({ err: (err as Error).message, file: this.file }, 'privacy ledger unreadable');
    }
  }

  /**
   * Whether this node takes part in a round announced with `privacy` by `coordinator` (the
   * caps on spend without a commit are per coordinator); counts and logs a decline.
   */
  decide(privacy: RoundPrivacy, label: string, coordinator: string): PrivacyDecision {
    const d = this.judge(privacy, coordinator);
    if (!d.ok) this.noteDecline(d.reason, d.message, label);
    return d;
  }

  /** Counts a decline for a reason found elsewhere (e.g. a charge refused at training time). */
  noteDecline(reason: PrivacyDeclineReason, message: string, label: string): void {
    this.declines[reason] = (this.declines[reason] ?? 0) + 1;
    this.o.declined.inc({ reason });
    this.o.log.info({ reason, round: label }, `declined a federated round: ${message}`);
  }

  private judge(privacy: RoundPrivacy, coordinator: string): PrivacyDecision {
    if (privacy.mode === 'unknown')
      return { ok: false, reason: 'unknown-mode', message: `DP mode ${privacy.code} is unknown here` };
    if (privacy.mode === 'update') {
      if (this.o.mode === 'record')
        return {
          ok: false,
          reason: 'mode-not-accepted',
          message: 'update-level DP does not protect records; this node takes record-level rounds only',
        };
      return { ok: true, mode: 'update' };
    }
    const ledger = this.ledger;
    if (!ledger)
      return {
        ok: false,
        reason: 'ledger-unavailable',
        message: this.loadError
          ? `privacy ledger unreadable: ${this.loadError.message}`
          : 'privacy ledger not loaded',
      };
    const a = ledger.canAfford(privacy.sgd, { coordinator, atMs: this.now() });
    if (!a.ok) return { ok: false, reason: a.reason, message: a.message };
    return { ok: true, mode: 'record', epsilonAfter: a.epsilonAfter, epsilonRound: a.epsilonRound };
  }

  /**
   * Charges a record-level round and persists the ledger; resolves once it is on disk, so the
   * update that follows exists only once its cost is recorded. Throws PrivacyBudgetError when the
   * round is no longer affordable (another round was charged since it was accepted). The round
   * counts as spent for nothing until `committed(label)`.
   */
  async charge(
    privacy: RoundPrivacy & { mode: 'record' },
    label: string,
    coordinator: string,
  ): Promise<LedgerEntry> {
    const ledger = this.ledger;
    if (!ledger) throw new Error('privacy ledger not loaded');
    const entry = ledger.charge(privacy.sgd, { label, coordinator, atMs: this.now() });
    await this.persist(ledger);
    this.o.log.info(
      {
        round: label,
        epsilonRound: entry.epsilonRound,
        epsilon: entry.epsilonTotal,
        budget: ledger.budgetEpsilon,
      },
      'record-level round charged',
    );
    return entry;
  }

  /**
   * The round's `fl-commit` arrived: its charge bought a version (privacy-budget.ts committed).
   * Never throws: a ledger that cannot be saved now keeps the round counted as uncommitted after
   * a restart, which only errs towards declining.
   */
  async committed(label: string): Promise<void> {
    const ledger = this.ledger;
    if (!ledger?.committed(label, this.now())) return;
    try {
      await this.persist(ledger);
    } catch (err) {
      this.o.log.warn(
        { err: (err as Error).message, round: label },
        'privacy ledger not saved after a commit',
      );
    }
  }

  /** The operator's new budget (raise it to let an exhausted node train again); persisted. */
  async setBudget(epsilon: number): Promise<PrivacyStatus> {
    const ledger = this.ledger;
    if (!ledger) throw new Error('privacy ledger not loaded');
    const before = ledger.budgetEpsilon;
    ledger.setBudget(epsilon);
    await this.persist(ledger);
    this.o.log.info({ before, budget: epsilon, epsilon: ledger.spent() }, 'privacy budget set');
    return this.status()!;
  }

  /** Undefined until the ledger is loaded. */
  status(): PrivacyStatus | undefined {
    if (!this.ledger) return undefined;
    return { ...this.ledger.report(), mode: this.o.mode, declines: { ...this.declines } };
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private persist(ledger: PrivacyLedger): Promise<void> {
    const next = this.saving.then(() => saveLedger(this.file, ledger));
    this.saving = next.catch(() => {});
    return next;
  }
}
