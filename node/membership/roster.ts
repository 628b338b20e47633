/**
 * The roster at the main chain's tip as a MembershipView: what the connection gater, admission
 * handshake, gossip scoring and the mempool ask. It derives nothing itself: the chain keeps the
 * roster at every block (ledger.ts); this answers from the tip's and tells listeners which keys
 * lost admission whenever the tip's roster changes (call `refresh` on every new head).
 */
import type { Hex } from '../chain/bytes.ts';
import { DecodeError } from '../chain/codec/errors.ts';
import { decodeCertificate } from './certificate.ts';
import { certificateRefusal, lostAdmission, memberOf, type RosterState } from './roster-state.ts';
import {
  type Admission,
  type AdmissionRefusal,
  CAPABILITIES,
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

/** One line of the roster as an admin sees it. */
export interface RosterListing extends Member {
  readonly state: 'member' | 'expired' | 'revoked';
  readonly revokedAtMs?: number;
}

export class Roster implements MembershipView {
  readonly mode: MembershipMode;
  private readonly listeners = new Set<(change: { readonly revoked: readonly Hex[] }) => void>();
  private last: RosterState;

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
    return {
      ok: true,
      member: {
        publicKeyHex: key,
        name: cert.name,
        role: cert.role,
        capabilities: new Set(
          cert.capabilities.filter(
            (c) => cert.role !== 'observer' || (c !== 'mine' && c !== 'submit' && c !== 'coordinate'),
          ),
        ),
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
