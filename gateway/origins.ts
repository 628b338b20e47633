/**
 * Which browser origins may use the gateway. A browser page on another origin must not read
 * answers (CORS) nor open a graphql-ws socket (which CORS does not cover: the upgrade only
 * carries `Origin`, and a socket authenticated by connectionParams would be the page's to use).
 * Requests without `Origin` are not from a browser page and pass; same-origin pages (GraphiQL,
 * a console served through a proxy on the gateway's own host) pass.
 */

/** The console's own origin in the demo and in compose (port 5173). */
export const DEFAULT_CORS_ORIGINS: readonly string[] = ['http://localhost:5173', 'http://127.0.0.1:5173'];

/** `https://Example.org:443/x` → `https://example.org`; undefined for `null` and non-URLs. */
export function normalizeOrigin(origin: string): string | undefined {
  try {
    const u = new URL(origin);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.origin;
  } catch {
    return undefined;
  }
}

export interface OriginPolicy {
  /** True when a request with this Origin (and Host) may be served. */
  allows(origin: string | null | undefined, host: string | null | undefined): boolean;
  /** True when the origin is on the allow-list (CORS headers are sent for it). */
  listed(origin: string | null | undefined): boolean;
  readonly origins: readonly string[];
}

export function createOriginPolicy(allowList: readonly string[]): OriginPolicy {
  const origins = allowList.map((o) => {
    const n = normalizeOrigin(o);
    if (!n) throw new Error(`CORS origin ${JSON.stringify(o)} is not an http(s) origin`);
    return n;
  });
  const set = new Set(origins);
  const listed = (origin: string | null | undefined) => {
    const n = origin ? normalizeOrigin(origin) : undefined;
    return n !== undefined && set.has(n);
  };
  return {
    origins,
    listed,
    allows: (origin, host) => {
      if (origin === undefined || origin === null) return true;
      if (listed(origin)) return true;
      const n = normalizeOrigin(origin);
      return n !== undefined && host !== null && host !== undefined && new URL(n).host === host.toLowerCase();
    },
  };
}
