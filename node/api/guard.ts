/**
 * What a request to the node's HTTP API must show before any route runs. The API binds to
 * loopback, but loopback alone does not keep a web page out: any page the operator opens can
 * POST to 127.0.0.1 (a `text/plain` form post needs no CORS preflight), and a DNS-rebinding page
 * can even read the answers under its own host name. So:
 *   - `Host` must name this machine (421 otherwise): a rebinding page sends its own name;
 *   - every POST needs the cookie token (401): a page cannot read the data dir;
 *   - every POST is `application/json` (415): a browser cannot send that cross-origin without a
 *     preflight, which this API never grants.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';

export type RefusalCode = 'API_HOST_NOT_ALLOWED' | 'API_UNAUTHORIZED' | 'API_UNSUPPORTED_MEDIA_TYPE';

export interface Refusal {
  readonly status: 401 | 415 | 421;
  readonly code: RefusalCode;
  readonly message: string;
}

/** Host names a loopback API answers to, whatever it binds (and the bound host itself). */
export const LOOPBACK_HOST_NAMES: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

/** `example:8080` → `example`, `[::1]:8080` → `[::1]`, lowercased; undefined when unparsable. */
export function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const h = header.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::\d{1,5})?$/.exec(h);
  return m?.[1];
}

/** A listen host as it appears in a Host header (IPv6 literals in brackets). */
const asHostName = (host: string) => {
  const h = host.toLowerCase();
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
};

export interface GuardOptions {
  /** The cookie's token. */
  readonly token: string;
  /** The host the API listens on (always allowed in `Host`). */
  readonly listenHost: string;
  /** More names `Host` may carry (e.g. the machine's name when bound beyond loopback). */
  readonly allowHosts?: readonly string[];
  /** Where the refusal counter goes (the node's registry). */
  readonly registry?: Registry;
}

export interface RequestFacts {
  readonly method?: string | undefined;
  readonly headers: {
    readonly host?: string | undefined;
    readonly authorization?: string | undefined;
    readonly 'content-type'?: string | undefined;
  };
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** Returns a check: undefined when the request may proceed, else why it may not. */
export function createApiGuard(o: GuardOptions): (req: RequestFacts) => Refusal | undefined {
  const allowed = new Set([
    ...LOOPBACK_HOST_NAMES,
    asHostName(o.listenHost),
    ...(o.allowHosts ?? []).map(asHostName),
  ]);
  const expected = digest(o.token);
  const refused = new Counter({
    name: 'cairn_api_refused_total',
    help: 'HTTP API requests refused before any route ran, by reason',
    labelNames: ['code'],
    registers: o.registry ? [o.registry] : [],
  });
  const refuse = (r: Refusal): Refusal => {
    refused.inc({ code: r.code });
    return r;
  };
  return (req) => {
    const name = hostName(req.headers.host);
    if (name === undefined || !allowed.has(name))
      return refuse({
        status: 421,
        code: 'API_HOST_NOT_ALLOWED',
        message: `Host ${JSON.stringify(req.headers.host ?? '')} is not one this node answers to (allowed: ${[...allowed].join(', ')}; add names with --http-allow-host)`,
      });
    if (req.method !== 'POST') return undefined;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    // Digests of equal length, compared in constant time: no timing oracle on the token.
    if (!m || !timingSafeEqual(digest(m[1]!), expected))
      return refuse({
        status: 401,
        code: 'API_UNAUTHORIZED',
        message:
          'POST needs "Authorization: Bearer <token>" with the token in the node\'s <data-dir>/.cookie (the node logs its path at start)',
      });
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json')
      return refuse({
        status: 415,
        code: 'API_UNSUPPORTED_MEDIA_TYPE',
        message: `POST bodies must be application/json (got ${JSON.stringify(req.headers['content-type'] ?? 'none')})`,
      });
    return undefined;
  };
}
