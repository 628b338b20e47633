/**
 * A membership view that is plain data, for tests and benches of the parts that enforce
 * membership (node/membership/view.ts is the contract; the real roster derives the same answers
 * from the chain): keys the "chain" records, keys holding a certificate (`cert:<key>` in this
 * stand-in encoding; one presented but not in `certified` reads as from an unknown issuer),
 * revoked keys, and listeners told of revocations.
 */
import type { Hex } from '../chain/bytes.ts';
import type { Admission, Member, MembershipView } from '../membership/view.ts';

export const testCertificate = (key: Hex): Uint8Array => new TextEncoder().encode(`cert:${key}`);

export const testMember = (key: Hex, name: string, overrides: Partial<Member> = {}): Member => ({
  publicKeyHex: key,
  name,
  role: 'submind',
  capabilities: new Set(['mine', 'submit']),
  issuedAtMs: 0,
  expiresAtMs: Number.MAX_SAFE_INTEGER,
  admin: false,
  ...overrides,
});

export class StaticRoster {
  /** Keys the chain itself records (genesis members, admins). */
  readonly onChain = new Map<Hex, Member>();
  /** Keys an admin issued a certificate to (not yet on the chain). */
  readonly certified = new Map<Hex, Member>();
  readonly revoked = new Set<Hex>();
  private readonly listeners = new Set<(c: { revoked: readonly Hex[] }) => void>();

  /** One node's view: the shared roster and the certificate that node presents. */
  view(ownCertificate: Uint8Array | undefined): MembershipView {
    return {
      mode: 'roster',
      admit: (key, cert, now): Admission => {
        if (this.revoked.has(key)) return { ok: false, code: 'revoked' };
        const m = this.onChain.get(key);
        if (m) return { ok: true, member: m };
        if (!cert) return { ok: false, code: 'no-certificate' };
        const text = new TextDecoder().decode(cert);
        if (!text.startsWith('cert:')) return { ok: false, code: 'malformed-certificate' };
        if (text !== `cert:${key}`) return { ok: false, code: 'wrong-subject' };
        const c = this.certified.get(key);
        if (!c) return { ok: false, code: 'unknown-issuer' };
        if (c.issuedAtMs > now) return { ok: false, code: 'not-yet-valid' };
        return c.expiresAtMs > now ? { ok: true, member: c } : { ok: false, code: 'expired' };
      },
      memberAt: (key) => (this.revoked.has(key) ? undefined : this.onChain.get(key)),
      certifiedCapabilities: (key, now) => {
        const c = this.certified.get(key);
        return c && c.expiresAtMs > now ? c.capabilities : undefined;
      },
      ownCertificate: () => ownCertificate,
      onChange: (l) => {
        this.listeners.add(l);
        return () => this.listeners.delete(l);
      },
    };
  }

  /** Revokes `key` and tells every view's listeners, as a mined revocation would. */
  revoke(key: Hex): void {
    this.revoked.add(key);
    for (const l of this.listeners) l({ revoked: [key] });
  }
}
