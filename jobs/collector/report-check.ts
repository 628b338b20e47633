/**
 * The checks every report passes before the index reads it, whatever its kind: its signature (the
 * node its `nodeId` names signed it, report-envelope.ts), its kind's schema, and its timestamps
 * (none ahead of the collector's clock by more than a small skew: a stats report dated 9999 would
 * otherwise freeze the node's row, since a re-sent report must not roll the row back). Kind-specific
 * rules that need the index (membership, model entries, round coordinators) are IndexWriter's.
 */
import { formatIssues, ReportPayload, type ReportPayloads } from '../payloads.ts';
import type { ReportKind } from '../queues.ts';
import { openReport } from '../report-envelope.ts';
import { ReportRefused } from './report-errors.ts';

export const REPORT_CHECK_DEFAULTS = Object.freeze({
  /** How far a report's timestamps may be ahead of the collector's clock (NTP-synced hosts). */
  maxClockSkewMs: 2 * 60_000,
});

/** The timestamps each kind carries (ISO strings; null where not set yet). */
const TIMES: { [K in ReportKind]: (r: ReportPayloads[K]) => readonly (string | null)[] } = {
  'node.stats': (r) => [r.at],
  'block.accepted': () => [], // The header's timestamp is judged with the block (block-check.ts).
  'block.orphaned': (r) => [r.at],
  'model.version': (r) => [r.at],
  'fl.round': (r) => [r.startedAt, r.finishedAt],
};

export interface CheckedReport<K extends ReportKind> {
  readonly report: ReportPayloads[K];
  /** The reporting node's Ed25519 key (its peer id's). */
  readonly nodeKey: Uint8Array;
}

/**
 * The report a job carries, if it is signed, well-formed and not from the future; otherwise a
 * ReportRefused whose code is the reason (`unsigned`, `bad-report-signature`, `malformed-report`,
 * `report-from-future`, …).
 */
export function checkReport<K extends ReportKind>(
  kind: K,
  jobId: string,
  data: unknown,
  now: number,
  maxClockSkewMs: number = REPORT_CHECK_DEFAULTS.maxClockSkewMs,
): CheckedReport<K> {
  const opened = openReport(kind, jobId, data);
  if (!opened.ok) throw new ReportRefused(opened.code, opened.message);
  const parsed = ReportPayload[kind].safeParse(opened.report);
  if (!parsed.success)
    throw new ReportRefused(
      'malformed-report',
      `malformed ${kind} report: ${formatIssues(parsed.error.issues.slice(0, 5))}`,
    );
  const report = parsed.data as ReportPayloads[K];
  for (const t of TIMES[kind](report as never)) {
    if (t === null) continue;
    const ms = Date.parse(t);
    if (ms > now + maxClockSkewMs)
      throw new ReportRefused('report-from-future', `${t} is ${ms - now} ms ahead of the collector's clock`);
  }
  return { report, nodeKey: opened.nodeKey };
}
