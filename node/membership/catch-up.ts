/**
 * Whether this node is behind: the one question the admission gate asks before it lets a peer
 * whose certificate it cannot judge yet serve it blocks (admission-gate.ts, read-only peers).
 *
 * A node that knows only genesis, or an old tip, cannot verify certificates issued by admins
 * added since, nor peers recorded since: it refuses them as `unknown-issuer`, and if every peer
 * it can reach is such a peer it can never sync (a deadlock). So while it is behind, such peers
 * may serve it; once it has caught up it judges them against the roster it then has.
 *
 * Behind: our tip is older than `behindAfterMs`, or a peer's status claims more work than our
 * tip. Claims are not trusted for anything else: the worst a false one does is keep read-only
 * peers (served nothing, their gossip refused, bounded in number) a while longer.
 */
import { MEMBERSHIP_DEFAULTS } from '../options.ts';

export interface CatchUpInputs {
  /** Our tip's timestamp (ms) and cumulative work. */
  readonly tipTimestampMs: number;
  readonly tipWork: bigint;
  /** The most work a fresh peer status claims, if any peer sent one. */
  readonly bestClaimedWork: bigint | undefined;
  readonly nowMs: number;
  readonly behindAfterMs?: number;
}

export function isBehind(i: CatchUpInputs): boolean {
  if (i.nowMs - i.tipTimestampMs > (i.behindAfterMs ?? MEMBERSHIP_DEFAULTS.behindAfterMs)) return true;
  return i.bestClaimedWork !== undefined && i.bestClaimedWork > i.tipWork;
}
