/**
 * The roster as a pure function of (genesis config, config entries along a chain): who is a
 * member, with which capabilities, who is an admin, who was revoked. No I/O, no clock: every
 * judgement takes the time it is made at, so every node derives the same roster at every height.
 *
 * Changes are `config` entries (so signed by their author) with these keys:
 *
 *   member.add     hex of a member certificate (certificate.ts) issued by an admin
 *   member.revoke  64 hex digits: the key whose certificates issued up to the entry's timestamp
 *                  are void from then on (a later certificate re-admits it)
 *   admin.add      64 hex digits: a vote to make the key an admin
 *   admin.remove   64 hex digits: a vote to remove an admin
 *
 * Admin-set changes are accumulating proposals: each admin's `admin.add`/`admin.remove` entry is
 * one vote, and the change takes effect in the block where a strict majority of the current
 * admins have voted for it. Any admin-set change clears every open proposal, since votes were
 * counted against an admin set that no longer exists. Chosen over one multi-signed entry because
 * each admin signs on their own device at their own time, with the entry signature Cairn has,
 * and the votes are on the chain for everyone to audit.
 *
 * Validity is judged against the roster at the block's parent (all entries of a block alike);
 * effects then apply in block order. So a member added in a block may act from the next one.
 */
import { type Hex, toHex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import {
  capabilitiesOfMask,
  capabilityMask,
  NEVER_EXPIRES,
  type NetworkConfig,
} from '../chain/network-config.ts';
import type { SealedEntry } from '../chain/types.ts';
import {
  type Certificate,
  certificateForChain,
  certificateSignatureValid,
  decodeCertificate,
} from './certificate.ts';
import { type AdmissionRefusal, CAPABILITIES, type Capability, type Member, type Role } from './view.ts';

export const MEMBER_ADD = 'member.add';
export const MEMBER_REVOKE = 'member.revoke';
export const ADMIN_ADD = 'admin.add';
export const ADMIN_REMOVE = 'admin.remove';
const MEMBERSHIP_KEYS: ReadonlySet<string> = new Set([MEMBER_ADD, MEMBER_REVOKE, ADMIN_ADD, ADMIN_REMOVE]);
/**
 * Open admin proposals one admin may have started or voted for at most: beyond, it may still
 * vote on proposals others opened, but open no new one. Per admin, not for all together, so one
 * rogue admin cannot fill the table and keep the majority from voting it out.
 */
export const MAX_OPEN_PROPOSALS_PER_ADMIN = 4;

/** Open proposals `admin` has voted for. */
const openProposalsOf = (proposals: ReadonlyMap<string, ReadonlySet<Hex>>, admin: Hex): number => {
  let n = 0;
  for (const votes of proposals.values()) if (votes.has(admin)) n++;
  return n;
};
/** An observer syncs and reads: whatever its certificate lists, it never mines, submits or coordinates. */
const OBSERVER_DENIED: ReadonlySet<Capability> = new Set(['mine', 'submit', 'coordinate']);
const KEY = /^[0-9a-f]{64}$/;

export type MembershipErrorCode =
  | 'miner-not-member'
  | 'miner-expired'
  | 'miner-not-yet-valid'
  | 'miner-lacks-mine'
  | 'author-not-member'
  | 'author-expired'
  | 'author-not-yet-valid'
  | 'author-lacks-submit'
  | 'author-lacks-coordinate'
  | 'author-not-admin'
  | 'bad-certificate'
  | 'certificate-revoked'
  | 'certificate-expired'
  | 'bad-revocation'
  | 'bad-admin-change';

const MEMBERSHIP_CODES: ReadonlySet<string> = new Set<MembershipErrorCode>([
  'miner-not-member',
  'miner-expired',
  'miner-not-yet-valid',
  'miner-lacks-mine',
  'author-not-member',
  'author-expired',
  'author-not-yet-valid',
  'author-lacks-submit',
  'author-lacks-coordinate',
  'author-not-admin',
  'bad-certificate',
  'certificate-revoked',
  'certificate-expired',
  'bad-revocation',
  'bad-admin-change',
]);

/**
 * Whether an entry rejection is a membership rule: judged against the roster at our tip, which
 * an honest relayer at another tip (a revocation not yet seen, a reorg) may not share. Gossip
 * and reconciliation ignore such entries without blaming the relayer, as for a clock ahead.
 */
export const isMembershipCode = (code: string): code is MembershipErrorCode => MEMBERSHIP_CODES.has(code);

export interface MembershipProblem {
  readonly code: MembershipErrorCode;
  readonly message: string;
}

export interface MemberRecord {
  readonly publicKeyHex: Hex;
  readonly name: string;
  readonly role: Role;
  /** Effective capabilities (an observer's denied ones removed). */
  readonly capabilities: ReadonlySet<Capability>;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
}

export interface RosterState {
  readonly admins: ReadonlySet<Hex>;
  readonly members: ReadonlyMap<Hex, MemberRecord>;
  /** Key → timestamp of the latest entry revoking it: its certificates issued up to then are void. */
  readonly revoked: ReadonlyMap<Hex, number>;
  /** Open admin-set proposals (`add:<key>`, `remove:<key>`) → the admins who voted for them. */
  readonly proposals: ReadonlyMap<string, ReadonlySet<Hex>>;
}

const effective = (role: Role, caps: Iterable<Capability>): ReadonlySet<Capability> =>
  new Set([...caps].filter((c) => role !== 'observer' || !OBSERVER_DENIED.has(c)));

export function genesisRoster(config: NetworkConfig): RosterState {
  const members = new Map<Hex, MemberRecord>();
  for (const m of config.members) {
    const key = m.publicKey.toLowerCase();
    members.set(key, {
      publicKeyHex: key,
      name: m.name,
      role: m.role,
      capabilities: effective(m.role, capabilitiesOfMask(capabilityMask(m.capabilities))),
      issuedAtMs: config.genesisTimestamp,
      expiresAtMs: m.expiresAtMs ?? NEVER_EXPIRES,
    });
  }
  return {
    admins: new Set(config.admins.map((a) => a.toLowerCase())),
    members,
    revoked: new Map(),
    proposals: new Map(),
  };
}

/** Strict majority of `n` admins. */
export const majorityOf = (n: number): number => Math.floor(n / 2) + 1;

export function isMembershipEntry(e: SealedEntry): boolean {
  return e.payload.kind === 'config' && e.payload.changes.some(([k]) => MEMBERSHIP_KEYS.has(k));
}

/** The member `key` is in `state`, admins included (they hold every capability). */
export function memberOf(state: RosterState, key: Hex): Member | undefined {
  const rec = state.members.get(key);
  if (state.admins.has(key)) {
    return {
      publicKeyHex: key,
      name: rec?.name ?? 'admin',
      role: rec?.role === 'observer' || !rec ? 'hub' : rec.role,
      capabilities: new Set(CAPABILITIES),
      issuedAtMs: rec?.issuedAtMs ?? 0,
      expiresAtMs: NEVER_EXPIRES,
      admin: true,
    };
  }
  return rec ? { ...rec, admin: false } : undefined;
}

export type Holding = 'ok' | 'not-member' | 'not-yet-valid' | 'expired' | 'lacks';

/**
 * Whether `key` holds `cap` at `atMs` according to `state`: only inside its certificate's window
 * [issued-at, expires-at). A certificate may be recorded before its issued-at (pre-issued), and
 * must not let its subject mine or submit in blocks stamped before then.
 */
export function holds(state: RosterState, key: Hex, cap: Capability, atMs: number): Holding {
  if (state.admins.has(key)) return 'ok';
  const rec = state.members.get(key);
  if (!rec) return 'not-member';
  if (rec.issuedAtMs > atMs) return 'not-yet-valid';
  if (rec.expiresAtMs <= atMs) return 'expired';
  return rec.capabilities.has(cap) ? 'ok' : 'lacks';
}

/** Whether the miner of a block stamped `atMs` on a chain whose roster is `state` may mine it. */
export function minerProblem(state: RosterState, minerHex: Hex, atMs: number): MembershipProblem | undefined {
  const h = holds(state, minerHex, 'mine', atMs);
  if (h === 'ok') return undefined;
  const code = (
    {
      'not-member': 'miner-not-member',
      'not-yet-valid': 'miner-not-yet-valid',
      expired: 'miner-expired',
      lacks: 'miner-lacks-mine',
    } as const
  )[h];
  return { code, message: `miner ${minerHex.slice(0, 16)}…: ${h === 'lacks' ? 'no mine capability' : h}` };
}

/**
 * Why `certificate` does not make its subject a member under `state` at `atMs`, as an admission
 * refusal code (the handshake's vocabulary), or undefined if it does.
 */
export function certificateRefusal(
  state: RosterState,
  c: Certificate,
  chainId: Uint8Array,
  atMs: number,
): AdmissionRefusal | undefined {
  if (!certificateForChain(c, chainId)) return 'wrong-network';
  // The signature first: it is checkable against the issuer key the certificate names, so
  // 'unknown-issuer' always means "validly signed by a key we do not know as an admin (yet)",
  // which a node that is behind may owe to its stale roster (p2p/admission-gate.ts, read-only).
  if (!certificateSignatureValid(c)) return 'bad-signature';
  if (!state.admins.has(c.issuerHex)) return 'unknown-issuer';
  const revokedAt = state.revoked.get(c.subjectHex);
  if (revokedAt !== undefined && c.issuedAtMs <= revokedAt) return 'revoked';
  if (c.issuedAtMs > atMs) return 'not-yet-valid';
  if (c.expiresAtMs <= atMs) return 'expired';
  return undefined;
}

function parseCertificate(value: string): Certificate | string {
  if (!/^([0-9a-f]{2})+$/.test(value)) return 'not lowercase hex';
  try {
    return decodeCertificate(Buffer.from(value, 'hex'));
  } catch (err) {
    if (err instanceof DecodeError) return err.message;
    throw err;
  }
}

/**
 * Why entry `e`, in a block stamped `atMs` (or offered to the mempool at `atMs`) on a chain
 * whose roster is `state`, breaks a membership rule: its author's permission for its kind, and
 * for config entries the membership changes it carries.
 */
export function entryProblem(
  state: RosterState,
  e: SealedEntry,
  chainId: Uint8Array,
  atMs: number,
): MembershipProblem | undefined {
  const author = toHex(e.author);
  const p = e.payload;
  if (p.kind === 'config') {
    if (!state.admins.has(author))
      return { code: 'author-not-admin', message: `config entry ${e.idHex} is not signed by an admin` };
    return changesProblem(state, p.changes, chainId, e);
  }
  const cap: Capability = p.kind === 'knowledge' ? 'submit' : 'coordinate';
  const h = holds(state, author, cap, atMs);
  if (h === 'ok') return undefined;
  const code = (
    {
      'not-member': 'author-not-member',
      'not-yet-valid': 'author-not-yet-valid',
      expired: 'author-expired',
      lacks: cap === 'submit' ? 'author-lacks-submit' : 'author-lacks-coordinate',
    } as const
  )[h];
  return { code, message: `${p.kind} entry ${e.idHex} by ${author.slice(0, 16)}…: ${h} (${cap})` };
}

function changesProblem(
  state: RosterState,
  changes: readonly (readonly [string, string])[],
  chainId: Uint8Array,
  e: SealedEntry,
): MembershipProblem | undefined {
  const author = toHex(e.author);
  for (const [k, v] of changes) {
    if (k === MEMBER_ADD) {
      const c = parseCertificate(v);
      if (typeof c === 'string') return { code: 'bad-certificate', message: `member.add: ${c}` };
      const refusal = certificateRefusal(state, c, chainId, e.timestamp);
      if (refusal === 'revoked')
        return {
          code: 'certificate-revoked',
          message: `member.add: ${c.subjectHex} was revoked after issue`,
        };
      if (refusal === 'expired')
        return { code: 'certificate-expired', message: `member.add: certificate of ${c.subjectHex} expired` };
      // A certificate may be added before its validity starts (an admin pre-issuing it); it
      // grants nothing before issued-at: `holds` and the handshake both check the time.
      if (refusal && refusal !== 'not-yet-valid')
        return { code: 'bad-certificate', message: `member.add: ${refusal}` };
      if (state.admins.has(c.subjectHex))
        return { code: 'bad-certificate', message: 'member.add: the subject is an admin already' };
    } else if (k === MEMBER_REVOKE) {
      if (!KEY.test(v))
        return { code: 'bad-revocation', message: 'member.revoke: not 64 lowercase hex digits' };
      if (state.admins.has(v))
        return { code: 'bad-revocation', message: 'member.revoke: admins leave by an admin.remove majority' };
    } else if (k === ADMIN_ADD || k === ADMIN_REMOVE) {
      if (!KEY.test(v)) return { code: 'bad-admin-change', message: `${k}: not 64 lowercase hex digits` };
      if (k === ADMIN_ADD && state.admins.has(v))
        return { code: 'bad-admin-change', message: `${k}: ${v.slice(0, 16)}… is an admin already` };
      if (k === ADMIN_REMOVE && !state.admins.has(v))
        return { code: 'bad-admin-change', message: `${k}: ${v.slice(0, 16)}… is not an admin` };
      if (k === ADMIN_REMOVE && state.admins.size === 1)
        return { code: 'bad-admin-change', message: `${k}: a roster network keeps at least one admin` };
      const id = proposalId(k, v);
      if (
        !state.proposals.has(id) &&
        openProposalsOf(state.proposals, author) >= MAX_OPEN_PROPOSALS_PER_ADMIN
      )
        return {
          code: 'bad-admin-change',
          message: `this admin has ${MAX_OPEN_PROPOSALS_PER_ADMIN} admin proposals open already`,
        };
    }
  }
  return undefined;
}

const proposalId = (key: string, value: string) => `${key === ADMIN_ADD ? 'add' : 'remove'}:${value}`;

/**
 * The roster after `entries` (already judged valid against `state`), in order. The same object
 * when none of them changes membership, so blocks without changes share their parent's roster.
 */
export function applyEntries(state: RosterState, entries: readonly SealedEntry[]): RosterState {
  if (!entries.some(isMembershipEntry)) return state;
  let admins = new Set(state.admins);
  const members = new Map(state.members);
  const revoked = new Map(state.revoked);
  let proposals = new Map([...state.proposals].map(([k, v]) => [k, new Set(v)] as const));
  for (const e of entries) {
    if (e.payload.kind !== 'config') continue;
    const author = toHex(e.author);
    for (const [k, v] of e.payload.changes) {
      if (k === MEMBER_ADD) {
        const c = parseCertificate(v);
        if (typeof c === 'string') continue;
        // Revoked earlier in this very block: the revocation, later in chain order, wins.
        const revokedAt = revoked.get(c.subjectHex);
        if (revokedAt !== undefined && c.issuedAtMs <= revokedAt) continue;
        if (admins.has(c.subjectHex)) continue;
        members.set(c.subjectHex, {
          publicKeyHex: c.subjectHex,
          name: c.name,
          role: c.role,
          capabilities: effective(c.role, c.capabilities),
          issuedAtMs: c.issuedAtMs,
          expiresAtMs: c.expiresAtMs,
        });
      } else if (k === MEMBER_REVOKE) {
        if (admins.has(v)) continue;
        revoked.set(v, Math.max(revoked.get(v) ?? 0, e.timestamp));
        members.delete(v);
      } else if (k === ADMIN_ADD || k === ADMIN_REMOVE) {
        // A vote from an admin removed earlier in this block no longer counts.
        if (!admins.has(author)) continue;
        if (k === ADMIN_ADD ? admins.has(v) : !admins.has(v) || admins.size === 1) continue;
        const id = proposalId(k, v);
        // The per-admin bound holds within a block too: extra new proposals open nothing.
        if (!proposals.has(id) && openProposalsOf(proposals, author) >= MAX_OPEN_PROPOSALS_PER_ADMIN)
          continue;
        const votes = proposals.get(id) ?? new Set<Hex>();
        votes.add(author);
        proposals.set(id, votes);
        if (votes.size >= majorityOf(admins.size)) {
          admins = new Set(admins);
          if (k === ADMIN_ADD) {
            admins.add(v);
            revoked.delete(v);
          } else admins.delete(v);
          proposals = new Map();
        }
      }
    }
  }
  return { admins, members, revoked, proposals };
}

/** Every key that is admitted in `before` at `atMs` and not in `after` (revoked, expired, demoted). */
export function lostAdmission(before: RosterState, after: RosterState, atMs: number): Hex[] {
  const out: Hex[] = [];
  const admitted = (s: RosterState, k: Hex) => s.admins.has(k) || (s.members.get(k)?.expiresAtMs ?? 0) > atMs;
  for (const k of new Set([...before.admins, ...before.members.keys()]))
    if (admitted(before, k) && !admitted(after, k)) out.push(k);
  // Revoked keys the chain never recorded (admitted by a presented certificate only).
  for (const [k, at] of after.revoked)
    if (before.revoked.get(k) !== at && !out.includes(k) && !admitted(after, k)) out.push(k);
  return out;
}
