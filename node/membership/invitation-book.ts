/**
 * The inviter's side of invitations: one file per open invitation under
 * `<dataDir>/invitations/`, named by the SHA-256 of its secret (the secret itself is never
 * stored, so reading the directory does not let anyone redeem). The `invite` command adds
 * files; the running node redeems them. Redeeming marks the file used (atomically, by rename)
 * before anything is issued, so an invitation is single-use even if two joiners race.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Hex, toHex } from '../chain/bytes.ts';
import { sha256 } from '../chain/hash.ts';
import { SECRET_BYTES } from './invitation.ts';
import { CAPABILITIES, type Capability, ROLES, type Role } from './view.ts';

/** What the admin decided for the device that redeems the invitation. */
export interface InvitationTerms {
  readonly name: string;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
  /** When the membership (the certificate) ends. */
  readonly memberUntilMs: number;
}

interface InvitationFile extends InvitationTerms {
  readonly version: 1;
  readonly createdAtMs: number;
  /** Until when the invitation can be redeemed. */
  readonly expiresAtMs: number;
  readonly usedBy?: Hex;
  readonly usedAtMs?: number;
}

export type RedeemRefusal = 'unknown-invitation' | 'invitation-used' | 'invitation-expired';

export class InvitationError extends Error {
  override readonly name = 'InvitationError';
  readonly code: RedeemRefusal;
  constructor(code: RedeemRefusal, message: string) {
    super(message);
    this.code = code;
  }
}

export const NAME_MAX_BYTES = 64;

export function assertValidTerms(t: InvitationTerms): void {
  if (!t.name.trim() || new TextEncoder().encode(t.name).length > NAME_MAX_BYTES)
    throw new RangeError(`a member name is 1 to ${NAME_MAX_BYTES} bytes`);
  if (!(ROLES as readonly string[]).includes(t.role)) throw new RangeError(`unknown role "${t.role}"`);
  for (const c of t.capabilities)
    if (!(CAPABILITIES as readonly string[]).includes(c)) throw new RangeError(`unknown capability "${c}"`);
}

const secretId = (secret: Uint8Array): Hex => toHex(sha256(secret));

export class InvitationBook {
  private readonly dir: string;
  /** Redemptions under way in this process: the rename makes it single-use across processes. */
  private readonly redeeming = new Set<Hex>();

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'invitations');
  }

  /** Records a new invitation; returns its one-time secret (to put in the invitation string). */
  async create(terms: InvitationTerms, expiresAtMs: number, now = Date.now()): Promise<Uint8Array> {
    assertValidTerms(terms);
    const secret = new Uint8Array(randomBytes(SECRET_BYTES));
    const file: InvitationFile = {
      version: 1,
      name: terms.name,
      role: terms.role,
      capabilities: [...new Set(terms.capabilities)],
      memberUntilMs: terms.memberUntilMs,
      createdAtMs: now,
      expiresAtMs,
    };
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const target = path.join(this.dir, `${secretId(secret)}.json`);
    await writeFile(target, JSON.stringify(file), { mode: 0o600, flag: 'wx' });
    await chmod(target, 0o600);
    return secret;
  }

  /**
   * Redeems an invitation for `publicKeyHex`: its terms, once. Marks it used before returning,
   * so a crash after this point burns the invitation rather than letting it be used twice.
   */
  async redeem(secret: Uint8Array, publicKeyHex: Hex, now = Date.now()): Promise<InvitationTerms> {
    if (secret.length !== SECRET_BYTES) throw new InvitationError('unknown-invitation', 'no such invitation');
    const id = secretId(secret);
    if (this.redeeming.has(id)) throw new InvitationError('invitation-used', 'this invitation is being used');
    this.redeeming.add(id);
    try {
      const open = path.join(this.dir, `${id}.json`);
      let inv: InvitationFile;
      try {
        inv = JSON.parse(await readFile(open, 'utf8')) as InvitationFile;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        const used = await readFile(path.join(this.dir, `${id}.used.json`), 'utf8').catch(() => undefined);
        if (used) throw new InvitationError('invitation-used', 'this invitation has been used already');
        throw new InvitationError('unknown-invitation', 'no such invitation');
      }
      if (now > inv.expiresAtMs)
        throw new InvitationError(
          'invitation-expired',
          `this invitation expired at ${new Date(inv.expiresAtMs).toISOString()}`,
        );
      const usedFile = path.join(this.dir, `${id}.used.json`);
      await writeFile(open, JSON.stringify({ ...inv, usedBy: publicKeyHex, usedAtMs: now }), { mode: 0o600 });
      await rename(open, usedFile);
      return {
        name: inv.name,
        role: inv.role,
        capabilities: inv.capabilities,
        memberUntilMs: inv.memberUntilMs,
      };
    } finally {
      this.redeeming.delete(id);
    }
  }
}
