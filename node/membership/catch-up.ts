/**
 * Whether this node is behind: the one question the admission gate asks before it lets a peer
 * whose certificate it cannot judge yet serve it blocks (admission-gate.ts, read-only peers).
 *
 * A node that knows only genesis, or an old tip, cannot verify certificates issued by admins
 * added since, nor peers recorded since: it refuses them as `unknown-issuer`, and if every peer
 * it can reach is such a peer it can never sync (a deadlock). So while it is behind, such peers
 * may serve it; once it has caught up it judges them against the roster it then has.
 *
 * Behind: an *admitted* peer's status claims more work than our tip, or our tip is older than
 * `behindAfterMs` and no admitted peer is connected at all. Only admitted peers' claims count:
 * a read-only peer (any stranger with a self-signed certificate reads as `unknown-issuer`)
 * claiming huge work must not keep us behind, and so keep read-only slots open, by itself.
 * An old tip alone is not enough either: a quiet network (no block for a while) with members
 * connected is not a deadlock, and taking strangers read-only there would only feed them slots.
 */
import { MEMBERSHIP_DEFAULTS } from '../options.ts';

export interface CatchUpInputs {
  /** Our tip's timestamp (ms) and cumulative work. */
  readonly tipTimestampMs: number;
  readonly tipWork: bigint;
  /** The most work a fresh status of an admitted peer claims, if any sent one. */
  readonly bestAdmittedWork: bigint | undefined;
  /** Admitted peers connected now (read-only and pending ones do not count). */
  readonly admittedPeers: number;
  readonly nowMs: number;
  readonly behindAfterMs?: number;
}

export function isBehind(i: CatchUpInputs): boolean {
  if (i.bestAdmittedWork !== undefined && i.bestAdmittedWork > i.tipWork) return true;
  const old = i.nowMs - i.tipTimestampMs > (i.behindAfterMs ?? MEMBERSHIP_DEFAULTS.behindAfterMs);
  return old && i.admittedPeers === 0;
}

/** The most work claimed by the peers `admitted` says yes to, among `records` (a peer book's). */
export function bestAdmittedWork(
  records: Iterable<{
    readonly peer: { toString(): string };
    readonly status: { readonly totalWork: bigint };
  }>,
  admitted: (peer: string) => boolean,
): bigint | undefined {
  let best: bigint | undefined;
  for (const r of records) {
    if (!admitted(r.peer.toString())) continue;
    if (best === undefined || r.status.totalWork > best) best = r.status.totalWork;
  }
  return best;
}
