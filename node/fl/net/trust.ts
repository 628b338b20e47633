/**
 * Who may do what in federated learning (issue 16, trusted rounds): on a roster network only
 * members holding `coordinate` announce rounds and only members holding `train` are invited,
 * judged by the roster (the chain's, or the certificate a peer was admitted with). On an open
 * network anyone may coordinate and a peer is invited when its status says it trains, as before.
 * The model entry a round commits is held to the same rule by the chain (chain/model-ledger.ts,
 * membership/roster-state.ts), so a node that ignores these checks gets nothing committed.
 */
import type { Capability, Member, MembershipMode } from '../../membership/view.ts';

export interface FlRoster {
  /** `roster`: membership is the chain's roster, so `mayTrain` is a view every node shares. */
  readonly mode: MembershipMode;
  /** Whether `peer` (a peer id; this node's own included) may announce rounds. */
  mayCoordinate(peer: string): boolean;
  /** Whether `peer` (this node's own id included) may be invited to train. */
  mayTrain(peer: string): boolean;
}

export interface FlRosterSource {
  readonly mode: MembershipMode;
  /** Roster mode: the member `peer` is now (chain or admitted certificate), if any. */
  member(peer: string): Pick<Member, 'capabilities'> | undefined;
  /** Open mode: the capabilities `peer` claims (its status; this node's own flags for itself). */
  claims(peer: string): readonly string[];
}

export function flRoster(s: FlRosterSource): FlRoster {
  const holds = (peer: string, cap: Capability) => s.member(peer)?.capabilities.has(cap) ?? false;
  if (s.mode === 'roster')
    return { mode: s.mode, mayCoordinate: (p) => holds(p, 'coordinate'), mayTrain: (p) => holds(p, 'train') };
  return { mode: s.mode, mayCoordinate: () => true, mayTrain: (p) => s.claims(p).includes('train') };
}

export type RoundRequestCode = 'not-coordinator' | 'not-a-trainer' | 'bad-peer-id' | 'stopped';

/** Why this node will not run a requested round (an operator's or the gateway's request). */
export class RoundRequestRefused extends Error {
  override readonly name = 'RoundRequestRefused';
  readonly code: RoundRequestCode;
  constructor(code: RoundRequestCode, message: string) {
    super(message);
    this.code = code;
  }
}
