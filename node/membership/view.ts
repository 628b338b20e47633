/**
 * The contract between membership (the roster derived from the chain, `node/membership/roster.ts`)
 * and the parts that enforce it: the connection gater and admission handshake (`node/p2p/`), gossip
 * scoring, the mempool and chain validation. Each of those depends on this narrow view, never on
 * the roster's implementation or on the whole node.
 *
 * A member certificate is self-contained: an admin signs (public key, name, role, capabilities,
 * issued-at, expiry). A peer presents its certificate in the admission handshake, so a node that
 * has not yet synced the block recording an addition can still admit the new member; the chain
 * records additions and revocations so every node derives the same roster at every height.
 */
import type { Hex } from '../chain/bytes.ts';

export const MEMBERSHIP_MODES = ['roster', 'open'] as const;
/** `roster`: only admitted devices take part (the default for networks Cairn creates); `open`: anyone. */
export type MembershipMode = (typeof MEMBERSHIP_MODES)[number];

export const ROLES = ['submind', 'hub', 'backup', 'observer'] as const;
export type Role = (typeof ROLES)[number];

/**
 * In encoding order: certificates and the genesis roster store a set as a u8 bit mask, bit i for
 * CAPABILITIES[i], so new capabilities go at the end (and there is room for no ninth in a u8).
 * `command`: may sign admin commands that nodes run (jobs/command-verifier.ts); the gateway's key
 * holds it, nodes do not.
 */
export const CAPABILITIES = [
  'mine',
  'train',
  'coordinate',
  'submit',
  'relay',
  'archive',
  'message',
  'command',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** A verified member: what a valid certificate (or the genesis roster) grants a key. */
export interface Member {
  readonly publicKeyHex: Hex;
  readonly name: string;
  readonly role: Role;
  readonly capabilities: ReadonlySet<Capability>;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  /** Admins are members with every capability and may sign config entries. */
  readonly admin: boolean;
}

/** Why a key is not admitted; each code is counted in `cairn_membership_refusals_total{code}`. */
export type AdmissionRefusal =
  | 'no-certificate'
  | 'malformed-certificate'
  | 'bad-signature'
  | 'unknown-issuer'
  | 'wrong-subject'
  | 'wrong-network'
  | 'not-yet-valid'
  | 'expired'
  | 'revoked';

export type Admission =
  | { readonly ok: true; readonly member: Member }
  | { readonly ok: false; readonly code: AdmissionRefusal };

export interface MembershipView {
  readonly mode: MembershipMode;
  /**
   * Whether `publicKeyHex` may take part now, judged at the current main-chain tip: a member the
   * chain (or genesis) records, or one whose presented certificate (canonical bytes, as encoded by
   * `node/membership/certificate.ts`) verifies against the tip's admins and is neither expired nor
   * revoked. In open mode every key is admitted with every capability except admin.
   */
  admit(publicKeyHex: Hex, certificate: Uint8Array | undefined, nowMs: number): Admission;
  /** The member `publicKeyHex` is at the tip according to the chain alone, if any. */
  memberAt(publicKeyHex: Hex, nowMs: number): Member | undefined;
  /**
   * The capabilities `publicKeyHex` holds by certificates this node knows of (ones it issued, or
   * saw admitted), unexpired at `nowMs`; undefined when it knows none. A certificate is
   * admission before its `member.add` is mined, so the chain's record alone (memberAt) does not
   * say everything a key may do: rules that must not touch a miner ask this too.
   */
  certifiedCapabilities(publicKeyHex: Hex, nowMs: number): ReadonlySet<Capability> | undefined;
  /** This node's own certificate bytes to present in the handshake (undefined for admins/genesis members without one, and in open mode). */
  ownCertificate(): Uint8Array | undefined;
  /**
   * Called after the tip's roster changed (a block added or revoked members, or a reorg), with
   * the keys that lost admission, so the network layer can disconnect them within one block time.
   */
  onChange(listener: (change: { readonly revoked: readonly Hex[] }) => void): () => void;
}
