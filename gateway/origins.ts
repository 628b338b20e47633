/**
 * Which browser origins may use the gateway, and which Host names it answers. A browser page on
 * another origin must not read answers (CORS) nor open a graphql-ws socket (which CORS does not
 * cover: the upgrade only carries `Origin`, and a socket authenticated by connectionParams would
 * be the page's to use). Requests without `Origin` are not from a browser page and pass;
 * same-origin pages (GraphiQL, a console served through a proxy on the gateway's own host) pass.
 *
 * "Same origin" is judged against Host names the gateway knows are its own, never against the
 * Host header alone: with DNS rebinding a page at http://evil.example:4000 gets evil.example
 * resolved to 127.0.0.1, and its requests then carry Host evil.example:4000 and an Origin to
 * match, and are same-origin to the browser, so CORS does not stop them either. So a Host that is
 * not an IP address, `localhost`, the listen host or an allowed name is refused (421) before
 * anything else. An IP-literal Host cannot be rebound: the page's origin is then that address.
 */
import { isIP } from 'node:net';

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

/** Host names answered besides IP addresses and the listen host (`CAIRN_ALLOWED_HOSTS` adds more). */
export const DEFAULT_ALLOWED_HOSTS: readonly string[] = ['localhost'];

export interface OriginPolicy {
  /** True when a request with this Origin (and Host) may be served. */
  allows(origin: string | null | undefined, host: string | null | undefined): boolean;
  /** True when the origin is on the allow-list (CORS headers are sent for it). */
  listed(origin: string | null | undefined): boolean;
  /** True when the gateway answers this Host header (absent: not a browser, and HTTP/1.0). */
  hostAllowed(host: string | null | undefined): boolean;
  readonly origins: readonly string[];
  /** The allowed host names (IP addresses are allowed besides). */
  readonly hosts: readonly string[];
}

/** Letters, digits, dots, dashes, an optional port, or a bracketed IPv6 address: nothing else. */
const HOST_HEADER = /^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/;

/** `Evil.Example.:4000` → `evil.example`, `[::1]:80` → `::1`; undefined for what is no host. */
export function hostName(host: string): string | undefined {
  const h = host.trim().toLowerCase();
  if (!HOST_HEADER.test(h)) return undefined;
  const name = h.startsWith('[') ? h.slice(1, h.indexOf(']')) : h.replace(/:\d+$/, '');
  return name.replace(/\.$/, '') || undefined;
}

/** An allowed-hosts entry: a host name, `.example.org` (it and its subdomains), or an origin. */
function allowedName(entry: string): string {
  const e = entry.trim().toLowerCase();
  if (e.includes('://')) {
    const n = normalizeOrigin(e);
    if (n) return hostName(new URL(n).host)!;
  } else {
    const dot = e.startsWith('.') ? '.' : '';
    const name = hostName(e.slice(dot.length));
    if (name) return dot + name;
  }
  throw new Error(`allowed host ${JSON.stringify(entry)} is not a host name, .domain or http(s) origin`);
}

export function createOriginPolicy(
  allowList: readonly string[],
  allowedHosts: readonly string[] = DEFAULT_ALLOWED_HOSTS,
): OriginPolicy {
  const origins = allowList.map((o) => {
    const n = normalizeOrigin(o);
    if (!n) throw new Error(`CORS origin ${JSON.stringify(o)} is not an http(s) origin`);
    return n;
  });
  const set = new Set(origins);
  const hosts = [...new Set(allowedHosts.map(allowedName))];
  const exact = new Set(hosts.filter((h) => !h.startsWith('.')));
  const suffixes = hosts.filter((h) => h.startsWith('.'));
  const listed = (origin: string | null | undefined) => {
    const n = origin ? normalizeOrigin(origin) : undefined;
    return n !== undefined && set.has(n);
  };
  const hostAllowed = (host: string | null | undefined) => {
    if (host === undefined || host === null) return true;
    const name = hostName(host);
    if (name === undefined) return false;
    return (
      isIP(name) !== 0 || exact.has(name) || suffixes.some((s) => name.endsWith(s) || name === s.slice(1))
    );
  };
  return {
    origins,
    hosts,
    listed,
    hostAllowed,
    allows: (origin, host) => {
      if (origin === undefined || origin === null) return true;
      if (listed(origin)) return true;
      const n = normalizeOrigin(origin);
      return (
        n !== undefined &&
        host !== null &&
        host !== undefined &&
        hostAllowed(host) &&
        new URL(n).host === host.trim().toLowerCase()
      );
    },
  };
}
