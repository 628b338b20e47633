/**
 * Where the gateway is, in order of precedence:
 *   1. `?gateway=http://host:4000` (or …/graphql) in the page URL — for pointing a hosted console
 *      at any gateway;
 *   2. `config.json` beside index.html (`{ "gateway": "…" }`), which the serving side writes
 *      (the demo's console server answers it from memory);
 *   3. the page's own origin at `/graphql`, for a server that proxies the gateway.
 */
export interface GatewayEndpoints {
  /** HTTP endpoint for queries and mutations. */
  readonly http: string;
  /** graphql-ws endpoint (same path, ws:/wss: scheme). */
  readonly ws: string;
  /** Where the URL came from, shown in the footer. */
  readonly source: 'query' | 'config.json' | 'same-origin';
}

export function normalizeGatewayUrl(raw: string, base: string = location.href): string {
  const url = new URL(raw, base);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  if (url.protocol === 'wss:') url.protocol = 'https:';
  // A gateway is an http(s) endpoint; anything else (javascript:, data:, …) is not one.
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new Error(`gateway URL ${raw} is not http(s) or ws(s)`);
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/graphql';
  url.hash = '';
  return url.toString();
}

export function wsUrlOf(httpUrl: string): string {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

function endpoints(http: string, source: GatewayEndpoints['source']): GatewayEndpoints {
  return { http, ws: wsUrlOf(http), source };
}

export async function resolveGateway(): Promise<GatewayEndpoints> {
  const fromQuery = new URLSearchParams(location.search).get('gateway');
  if (fromQuery) {
    // A stored token is not sent there without asking (token.ts): the override is a link anyone can craft.
    try {
      return endpoints(normalizeGatewayUrl(fromQuery), 'query');
    } catch (err) {
      console.warn(`ignoring ?gateway=: ${(err as Error).message}`);
    }
  }
  try {
    const res = await fetch('./config.json', { cache: 'no-store' });
    if (res.ok) {
      const cfg = (await res.json()) as { gateway?: unknown };
      if (typeof cfg.gateway === 'string' && cfg.gateway)
        return endpoints(normalizeGatewayUrl(cfg.gateway), 'config.json');
    }
  } catch {
    // No config.json (a plain static host): fall through to same origin.
  }
  return endpoints(normalizeGatewayUrl('/graphql'), 'same-origin');
}
