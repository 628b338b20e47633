import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { formatIssues } from '../jobs/payloads.ts';
import { ROLES, type Role } from '../schema/index.ts';
import type { RateLimit } from './rate-limit.ts';

/** A bearer token the gateway accepts: only its SHA-256 is configured, never the token itself. */
export interface TokenEntry {
  /** For logs and config errors; the rate limit is keyed by `sha256`, so names may repeat. */
  readonly name: string;
  readonly role: Role;
  /** SHA-256 of the token (its UTF-8 bytes), lowercase hex. */
  readonly sha256: string;
  /** Its own rate instead of the gateway's per-token rate (a load test's token, say). */
  readonly rate?: RateLimit;
}

const Sha256Hex = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 hex digits'));

const RateSchema = z.object({ perSecond: z.number().positive(), burst: z.number().int().min(1) }).strict();

export const TokenEntrySchema = z
  .object({
    name: z.string().min(1).max(64),
    role: z.enum(ROLES),
    sha256: Sha256Hex,
    rate: RateSchema.optional(),
  })
  .strict();

/** `CAIRN_GATEWAY_CONFIG` file: tokens plus optional gateway settings. */
export const GatewayConfigFile = z
  .object({
    // A token without a name is called by its place in the file (`file-1`, …).
    tokens: z
      .array(TokenEntrySchema.extend({ name: TokenEntrySchema.shape.name.optional() }))
      .default([])
      .transform((ts) => ts.map((t, i): TokenEntry => ({ ...t, name: t.name ?? `file-${i + 1}` }))),
    requireViewer: z.boolean().optional(),
    adminTimeoutMs: z.number().int().positive().optional(),
  })
  .strict();
export type GatewayConfigFile = z.infer<typeof GatewayConfigFile>;

export const sha256Hex = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

/** `CAIRN_TOKENS=role:sha256hex,role:sha256hex,…` (an optional `name=` prefix: `ops=admin:…`). */
export function parseTokensEnv(value: string | undefined): TokenEntry[] {
  if (!value?.trim()) return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((item, i) => {
      const m = /^(?:([^=:]+)=)?([a-z]+):([0-9a-fA-F]+)$/.exec(item);
      if (!m)
        throw new Error(`CAIRN_TOKENS item ${i + 1} must be role:sha256hex (got ${item.slice(0, 12)}…)`);
      return TokenEntrySchema.parse({ name: m[1] ?? `env-${i + 1}`, role: m[2], sha256: m[3] });
    });
}

export function readConfigFile(file: string | undefined): GatewayConfigFile {
  if (!file) return GatewayConfigFile.parse({});
  const parsed = GatewayConfigFile.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

/**
 * A verified token has a role, its entry's name, and its configured SHA-256 as `id` (the key of
 * its rate-limit bucket: distinct tokens never share one); no token has role null.
 */
export type TokenCheck =
  | { role: Role | null; name?: string; id?: string; rate?: RateLimit }
  | { invalid: true };

/**
 * Resolves a presented token to its role. Every configured hash is compared (in constant time,
 * without stopping at a match) so timing does not reveal which entry matched or how far.
 */
export function createTokenVerifier(entries: readonly TokenEntry[]): (token: string | null) => TokenCheck {
  const hashes = entries.map((e) => ({ entry: e, digest: Buffer.from(e.sha256, 'hex') }));
  return (token) => {
    if (token === null) return { role: null };
    const digest = createHash('sha256').update(token, 'utf8').digest();
    let match: (typeof hashes)[number] | undefined;
    for (const h of hashes) if (timingSafeEqual(digest, h.digest) && match === undefined) match = h;
    if (match === undefined) return { invalid: true };
    const { role, name, sha256, rate } = match.entry;
    return { role, name, id: sha256, rate };
  };
}

/** The token from `Authorization: Bearer <token>` (or a bare value), null when absent or empty. */
export function bearerToken(header: unknown): string | null {
  if (typeof header !== 'string') return null;
  const v = header.trim();
  if (!v) return null;
  const m = /^Bearer\s+(.+)$/i.exec(v);
  return (m ? m[1]!.trim() : v) || null;
}
