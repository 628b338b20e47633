import { UnrecoverableError } from 'bullmq';
import type { BlockErrorCode } from '../../node/chain/validation.ts';

/** Why the collector refused a report: the chain's own codes, and those of the report itself. */
export type RefusalCode =
  | BlockErrorCode
  /** The header or an entry does not decode, or decodes to other bytes than were sent. */
  | 'malformed-block'
  /** `hash` is not sha256(header). */
  | 'bad-hash'
  /** A summary field (height, prevHash, target, …) disagrees with the header it came with. */
  | 'header-mismatch'
  /** A height-0 block other than the network's genesis. */
  | 'bad-genesis'
  /** The report's totalWork is not its parent's plus the work of its target. */
  | 'wrong-total-work'
  /** Its parent never reached the index within the hold time. */
  | 'unknown-parent'
  /** A model version's weights do not hash to the version's hash (jobs/model-weights.ts). */
  | 'weights-mismatch'
  /** A model version's weights are not a canonical model encoding. */
  | 'malformed-weights'
  /** The job carries no signed report (report-envelope.ts), or its node id carries no key. */
  | 'unsigned'
  | 'unverifiable'
  /** The signature is not the named node's over this kind, job id and payload. */
  | 'bad-report-signature'
  /** Signed, but not what its kind's schema says. */
  | 'malformed-report'
  /** A timestamp ahead of the collector's clock by more than the allowed skew. */
  | 'report-from-future'
  /** Roster networks: the reporting node is not a member (or no longer one) at the index's head. */
  | 'not-a-member'
  /** An FL round report from another node than the round's coordinator, or without `coordinate`. */
  | 'not-coordinator'
  /** A model version whose model entry never reached the index within the hold time. */
  | 'model-not-indexed'
  /**
   * A stats report older than its node's newest indexed one by more than the late window: a
   * replay (the report log that deduplicates is pruned), never a current value.
   */
  | 'stale-report'
  /** An orphan report whose height, parent or miner disagree with the indexed block's header. */
  | 'orphan-mismatch'
  /** A node's reports beyond its budget for the kind (report-rate.ts): one node must not hold the queue. */
  | 'report-rate'
  /**
   * Open networks: reports of node ids the index does not know yet beyond the budget they share
   * (report-rate.ts NEWCOMER_BUDGETS): fresh keys are free, so they share one.
   */
  | 'newcomer-rate';

/**
 * A report the collector will not index, ever: failing it without retries is right (BullMQ does
 * not retry an UnrecoverableError), and it is counted under its code.
 */
export class ReportRefused extends UnrecoverableError {
  override readonly name = 'ReportRefused';
  readonly code: RefusalCode;
  constructor(code: RefusalCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/** Why a report cannot be judged yet. */
export type HoldCode =
  | 'unknown-parent'
  | 'timestamp-in-future'
  | 'entry-timestamp-in-future'
  /** A model version (or a completed round) whose model entry is not in an indexed block yet. */
  | 'model-not-indexed';

/**
 * A report that may become indexable later: its parent is not indexed yet (reports from several
 * nodes, or retries, arrive out of order), or it is ahead of our clock. Never indexed on trust:
 * the collector delays the job and judges it again.
 */
export class ReportHeld extends Error {
  override readonly name = 'ReportHeld';
  readonly code: HoldCode;
  readonly waitingFor?: string;
  constructor(
    code: HoldCode,
    message: string,
    /** The block hash whose indexing makes this report judgeable again (unknown-parent). */
    waitingFor?: string,
  ) {
    super(`${code}: ${message}`);
    this.code = code;
    this.waitingFor = waitingFor;
  }
}
