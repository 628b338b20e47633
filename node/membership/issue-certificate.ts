/**
 * What an admin's node does when a device redeems an invitation (join-protocol.ts `issue`): sign
 * the device's certificate with the admin key and make the `member.add` config entry that records
 * it on the chain. Pure: the caller submits the entry (mempool, gossip) and answers the bytes.
 */
import { createEntry } from '../chain/authoring.ts';
import { fromHex, type Hex, toHex } from '../chain/bytes.ts';
import type { SigningKey } from '../chain/signature.ts';
import type { SealedEntry } from '../chain/types.ts';
import { type Certificate, signCertificate } from './certificate.ts';
import type { InvitationTerms } from './invitation-book.ts';
import { MEMBER_ADD } from './roster-state.ts';

export function issueMembership(
  chainId: Uint8Array,
  terms: InvitationTerms,
  subjectHex: Hex,
  admin: SigningKey,
  nowMs = Date.now(),
): { certificate: Certificate; addition: SealedEntry } {
  const certificate = signCertificate(
    {
      chainId,
      subject: fromHex(subjectHex),
      name: terms.name,
      role: terms.role,
      capabilities: terms.capabilities,
      issuedAtMs: nowMs,
      expiresAtMs: terms.memberUntilMs,
    },
    admin,
  );
  const addition = createEntry(
    { kind: 'config', changes: [[MEMBER_ADD, toHex(certificate.encoded)]] },
    admin,
    nowMs,
  );
  return { certificate, addition };
}
