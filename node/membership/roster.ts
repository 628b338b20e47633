/**
 * The roster at the main chain's tip as a MembershipView: what the connection gater, admission
 * handshake, gossip scoring and the mempool ask. It derives nothing itself: the chain keeps the
 * roster at every block (ledger.ts); this answers from the tip's and tells listeners which keys
 * lost admission whenever the tip's roster changes (call `refresh` on every new head).
 */
import type { Hex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { type Certificate, decodeCertificate } from './certificate.ts';
import { certificateRefusal, lostAdmission, memberOf, type RosterState } from './roster-state.ts';
import {
  type Admission,
  type AdmissionRefusal,
  CAPABILITIES,
  type Capability,
  type Member,
  type MembershipMode,
  type MembershipView,
} from './view.ts';

/** What the roster needs of the chain: its mode, its id, and the roster at its tip. */
export interface RosterSource {
  readonly mode: MembershipMode;
  readonly chainId: Uint8Array;
  tipRoster(): RosterState;
}

export interface RosterOptions {
  /** This node's certificate (canonical bytes), presented in the handshake. */
  readonly certificate?: Uint8Array;
  /** Counts refusals by code (`cairn_membership_refusals_total{code}`). */
  readonly observe?: (code: AdmissionRefusal) => void;
}

const OPEN_MEMBER = (publicKeyHex: Hex): Member => ({
  publicKeyHex,
  name: publicKeyHex.slice(0, 8),
  role: 'submind',
  capabilities: new Set(CAPABILITIES),
  issuedAtMs: 0,
  expiresAtMs: Number.MAX_SAFE_INTEGER,
  admin: false,
});

/** Inside its certificate's window [issued-at, expires-at); admins always. */
const validAt = (m: Member, nowMs: number): boolean =>
  m.admin || (m.issuedAtMs <= nowMs && m.expiresAtMs > nowMs);

/**
 * Keys whose certificates are remembered (certifiedCapabilities). Only certificates an admin
 * signed get here (admitted, or issued by this node), so a stranger cannot flush it; the
 * oldest goes first past the bound.
 */
export const MAX_CERTIFIED_KEYS = 4_096;

/** What a certificate lets its subject do: an observer never mines, submits or coordinates. */
const certificateCapabilities = (cert: Certificate): Set<Capability> =>
  new Set(
    cert.capabilities.filter(
      (c) => cert.role !== 'observer' || (c !== 'mine' && c !== 'submit' && c !== 'coordinate'),
    ),
  );

/** One line of the roster as an admin sees it. */
export interface RosterListing extends Member {
  readonly state: 'member' | 'expired' | 'revoked';
  readonly revokedAtMs?: number;
}

export class Roster implements MembershipView {
  readonly mode: MembershipMode;
  private readonly listeners = new Set<(change: { readonly revoked: readonly Hex[] }) => void>();
  private last: RosterState;

  /** Per key, the certificates known for it (capabilities, expiry): see certifiedCapabilities. */
  private readonly certified = new Map<Hex, { capabilities: Capability[]; expiresAtMs: number }[]>();

  private readonly source: RosterSource;
  private readonly opts: RosterOptions;
  constructor(source: RosterSource, opts: RosterOptions = {}) {
    this.source = source;
    this.opts = opts;
    this.mode = source.mode;
    this.last = source.tipRoster();
  }

  admit(publicKeyHex: Hex, certificate: Uint8Array | undefined, nowMs: number): Admission {
    const key = publicKeyHex.toLowerCase();
    if (this.mode === 'open') return { ok: true, member: OPEN_MEMBER(key) };
    const recorded = this.memberAt(key, nowMs);
    if (recorded) return { ok: true, member: recorded };
    const refused = (code: AdmissionRefusal): Admission => {
      this.opts.observe?.(code);
      return { ok: false, code };
    };
    if (!certificate) {
      // A chain record that ran out is "expired", not "no certificate": say what to renew.
      const state = this.source.tipRoster();
      const rec = state.members.get(key);
      if (state.revoked.has(key) && !rec) return refused('revoked');
      if (rec && rec.issuedAtMs > nowMs) return refused('not-yet-valid');
      return refused(rec ? 'expired' : 'no-certificate');
    }
    let cert: ReturnType<typeof decodeCertificate>;
    try {
      cert = decodeCertificate(certificate);
    } catch (err) {
      if (err instanceof DecodeError) return refused('malformed-certificate');
      throw err;
    }
    if (cert.subjectHex !== key) return refused('wrong-subject');
    const refusal = certificateRefusal(this.source.tipRoster(), cert, this.source.chainId, nowMs);
    if (refusal) return refused(refusal);
    this.noteCertificate(cert);
    return {
      ok: true,
      member: {
        publicKeyHex: key,
        name: cert.name,
        role: cert.role,
        capabilities: certificateCapabilities(cert),
        issuedAtMs: cert.issuedAtMs,
        expiresAtMs: cert.expiresAtMs,
        admin: false,
      },
    };
  }

  memberAt(publicKeyHex: Hex, nowMs: number): Member | undefined {
    const key = publicKeyHex.toLowerCase();
    if (this.mode === 'open') return OPEN_MEMBER(key);
    const m = memberOf(this.source.tipRoster(), key);
    return m && validAt(m, nowMs) ? m : undefined;
  }

  /**
   * Remembers a certificate an admin signed for its subject: one this node issued (an invitation
   * redeemed, its `member.add` not mined yet) or one it admitted. Callers pass only certificates
   * they verified or signed.
   */
  noteCertificate(cert: Certificate): void {
    const key = cert.subjectHex;
    const known = this.certified.get(key) ?? [];
    this.certified.delete(key);
    known.push({ capabilities: [...certificateCapabilities(cert)], expiresAtMs: cert.expiresAtMs });
    // A key presents the same certificate on every connection: keep one entry per distinct one.
    const distinct = new Map(known.map((k) => [`${k.expiresAtMs}:${k.capabilities.join()}`, k]));
    this.certified.set(key, [...distinct.values()].slice(-8));
    while (this.certified.size > MAX_CERTIFIED_KEYS)
      this.certified.delete(this.certified.keys().next().value!);
  }

  certifiedCapabilities(publicKeyHex: Hex, nowMs: number): ReadonlySet<Capability> | undefined {
    const live = (this.certified.get(publicKeyHex.toLowerCase()) ?? []).filter((k) => k.expiresAtMs > nowMs);
    return live.length ? new Set(live.flatMap((k) => k.capabilities)) : undefined;
  }

  ownCertificate(): Uint8Array | undefined {
    return this.mode === 'open' ? undefined : this.opts.certificate;
  }

  onChange(listener: (change: { readonly revoked: readonly Hex[] }) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Call after the chain's head changed: if the tip's roster is another one than last time (a
   * block added or revoked members, or a reorg), listeners hear which keys lost admission.
   */
  refresh(nowMs: number): void {
    const next = this.source.tipRoster();
    if (next === this.last) return;
    const revoked = lostAdmission(this.last, next, nowMs);
    this.last = next;
    for (const l of this.listeners) l({ revoked });
  }

  /**
   * Everyone the tip's roster knows, for the gateway and the console: members (expired ones
   * too, marked so) and revoked keys that hold no newer certificate.
   */
  listing(nowMs: number): RosterListing[] {
    const state = this.source.tipRoster();
    const keys = new Set([...state.admins, ...state.members.keys()]);
    const out: RosterListing[] = [...keys].flatMap((k) => {
      const m = memberOf(state, k);
      return m ? [{ ...m, state: m.expiresAtMs > nowMs ? ('member' as const) : ('expired' as const) }] : [];
    });
    for (const [k, at] of state.revoked) {
      if (keys.has(k)) continue;
      out.push({
        publicKeyHex: k,
        name: '',
        role: 'observer',
        capabilities: new Set(),
        issuedAtMs: 0,
        expiresAtMs: at,
        admin: false,
        state: 'revoked',
        revokedAtMs: at,
      });
    }
    return out;
  }

  /** Every member at the tip (admins included), for status pages and the gateway. */
  members(nowMs: number): Member[] {
    const state = this.source.tipRoster();
    const keys = new Set([...state.admins, ...state.members.keys()]);
    return [...keys].flatMap((k) => {
      const m = memberOf(state, k);
      return m && validAt(m, nowMs) ? [m] : [];
    });
  }
}
