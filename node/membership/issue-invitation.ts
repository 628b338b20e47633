import type { Hex } from '../chain/bytes.ts';
import { encodeInvitation, INVITATION_LIMITS } from './invitation.ts';
import type { InvitationBook, InvitationTerms } from './invitation-book.ts';

/** How long an invitation can be redeemed unless told otherwise. */
export const DEFAULT_INVITATION_VALID_MS = 7 * 86_400_000;

export interface IssuedInvitation {
  /** The invitation string (`cairn-invite:…`). */
  readonly text: string;
  /** Until when it can be redeemed. */
  readonly expiresAtMs: number;
  readonly terms: InvitationTerms;
}

/**
 * Records a single-use invitation in the inviting node's book and encodes its string: what the
 * `invite` command and the gateway's `inviteDevice` share. The invitation is redeemable for
 * `validForMs`, never past the membership it grants.
 */
export async function issueInvitation(
  book: InvitationBook,
  node: { readonly chainIdHex: Hex; readonly peerId: string; readonly addrs: readonly string[] },
  terms: InvitationTerms,
  validForMs: number,
  now = Date.now(),
): Promise<IssuedInvitation> {
  const addrs = node.addrs
    .map((a) => (a.includes('/p2p/') ? a : `${a}/p2p/${node.peerId}`))
    .slice(0, INVITATION_LIMITS.addrs);
  if (!addrs.length) throw new RangeError('the inviting node has no addresses to put in the invitation');
  const expiresAtMs = Math.min(now + validForMs, terms.memberUntilMs);
  const secret = await book.create(terms, expiresAtMs, now);
  return {
    text: encodeInvitation({ chainIdHex: node.chainIdHex, addrs, secret, expiresAtMs }),
    expiresAtMs,
    terms,
  };
}
