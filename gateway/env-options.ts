import { cidrProblem } from '../node/p2p/ip-ranges.ts';
import type { GatewayOptions } from './gateway.ts';
import type { RateLimit } from './rate-limit.ts';
import { parseTokensEnv, readConfigFile } from './tokens.ts';

const flag = (v: string | undefined): boolean | undefined =>
  v === undefined || v === '' ? undefined : v === '1' || v.toLowerCase() === 'true';

const list = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

/** `50` or `50/100` (per second / burst); `0` or `off` = no limit. */
export function parseRate(name: string, v: string | undefined): RateLimit | null | undefined {
  if (v === undefined || v === '') return undefined;
  if (v === '0' || v === 'off') return null;
  const m = /^(\d+(?:\.\d+)?)(?:\/(\d+))?$/.exec(v.trim());
  if (!m) throw new Error(`${name} must be PER_SECOND or PER_SECOND/BURST (got ${v})`);
  const perSecond = Number(m[1]);
  return { perSecond, burst: m[2] ? Number(m[2]) : Math.max(1, Math.ceil(perSecond * 2)) };
}

export type GatewayEnvOptions = Required<Pick<GatewayOptions, 'tokens' | 'requireViewer'>> &
  Pick<
    GatewayOptions,
    | 'adminTimeoutMs'
    | 'graphiql'
    | 'introspection'
    | 'fieldSuggestions'
    | 'metricsPublic'
    | 'corsOrigins'
    | 'allowedHosts'
    | 'tokenRateLimit'
    | 'anonymousRateLimit'
    | 'subscriptionLimits'
    | 'webSocketLimits'
    | 'trustedProxies'
  >;

/** A positive whole number, or undefined when unset. */
function count(name: string, v: string | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^[1-9]\d*$/.test(v.trim())) throw new Error(`${name} must be a positive whole number (got ${v})`);
  return Number(v);
}

/**
 * The gateway settings read from the environment, shared by `main.ts` and `fetch.ts`: the
 * CAIRN_GATEWAY_CONFIG file (tokens, requireViewer, adminTimeoutMs), plus CAIRN_TOKENS and
 * CAIRN_REQUIRE_VIEWER=1 (the file's requireViewer, when set, wins). Production defaults
 * (NODE_ENV=production) can be overridden one by one: CAIRN_GRAPHIQL, CAIRN_INTROSPECTION,
 * CAIRN_FIELD_SUGGESTIONS, CAIRN_METRICS_PUBLIC (1/0); CAIRN_CORS_ORIGINS (comma list);
 * CAIRN_ALLOWED_HOSTS (comma list of the gateway's public host names or origins: any other Host
 * but an IP address, localhost and the listen host gets 421, origins.ts);
 * CAIRN_TOKEN_RATE and CAIRN_ANON_RATE (PER_SECOND[/BURST], 0 = off; defaults in rate-limit.ts
 * RATE_DEFAULTS: per token 50/100, per anonymous host 10/50 in production and off in
 * development). A config-file token may carry its own `rate` ({ perSecond, burst }).
 * CAIRN_SUBSCRIPTIONS_PER_CALLER and CAIRN_OPERATIONS_PER_SOCKET (subscription-limit.ts
 * SUBSCRIPTION_DEFAULTS: 100 and 20; behind a reverse proxy every anonymous subscriber is the
 * proxy's one host unless it is trusted, as for rates), CAIRN_SUBSCRIPTIONS_ANONYMOUS and CAIRN_SUBSCRIPTIONS_TOTAL
 * (the gateway's ceilings: 2,000 without a token, 10,000 in all); CAIRN_WEBSOCKETS_PER_HOST and
 * CAIRN_WEBSOCKETS_TOTAL (open WebSockets, socket-limit.ts WEBSOCKET_DEFAULTS: 100 and 5,000).
 * CAIRN_TRUSTED_PROXIES (comma list of IP ranges): reverse proxies whose X-Forwarded-For names
 * the client for all of those per-host caps (client-address.ts); default none.
 */
export function gatewayEnvOptions(env: NodeJS.ProcessEnv = process.env): GatewayEnvOptions {
  const file = readConfigFile(env.CAIRN_GATEWAY_CONFIG);
  const o: GatewayEnvOptions = {
    tokens: [...file.tokens, ...parseTokensEnv(env.CAIRN_TOKENS)],
    requireViewer: file.requireViewer ?? env.CAIRN_REQUIRE_VIEWER === '1',
    adminTimeoutMs: file.adminTimeoutMs,
  };
  const set = <K extends keyof GatewayEnvOptions>(k: K, v: GatewayEnvOptions[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set('graphiql', flag(env.CAIRN_GRAPHIQL));
  set('introspection', flag(env.CAIRN_INTROSPECTION));
  set('fieldSuggestions', flag(env.CAIRN_FIELD_SUGGESTIONS));
  set('metricsPublic', flag(env.CAIRN_METRICS_PUBLIC));
  set('corsOrigins', list(env.CAIRN_CORS_ORIGINS));
  set('allowedHosts', list(env.CAIRN_ALLOWED_HOSTS));
  set('tokenRateLimit', parseRate('CAIRN_TOKEN_RATE', env.CAIRN_TOKEN_RATE));
  set('anonymousRateLimit', parseRate('CAIRN_ANON_RATE', env.CAIRN_ANON_RATE));
  const perCaller = count('CAIRN_SUBSCRIPTIONS_PER_CALLER', env.CAIRN_SUBSCRIPTIONS_PER_CALLER);
  const perSocket = count('CAIRN_OPERATIONS_PER_SOCKET', env.CAIRN_OPERATIONS_PER_SOCKET);
  const anonymous = count('CAIRN_SUBSCRIPTIONS_ANONYMOUS', env.CAIRN_SUBSCRIPTIONS_ANONYMOUS);
  const total = count('CAIRN_SUBSCRIPTIONS_TOTAL', env.CAIRN_SUBSCRIPTIONS_TOTAL);
  const limits = Object.entries({ perCaller, perSocket, anonymous, total }).filter(
    ([, v]) => v !== undefined,
  );
  if (limits.length) o.subscriptionLimits = Object.fromEntries(limits);
  const sockets = Object.entries({
    perHost: count('CAIRN_WEBSOCKETS_PER_HOST', env.CAIRN_WEBSOCKETS_PER_HOST),
    total: count('CAIRN_WEBSOCKETS_TOTAL', env.CAIRN_WEBSOCKETS_TOTAL),
  }).filter(([, v]) => v !== undefined);
  if (sockets.length) o.webSocketLimits = Object.fromEntries(sockets);
  const proxies = list(env.CAIRN_TRUSTED_PROXIES);
  for (const p of proxies ?? []) {
    const problem = cidrProblem(p);
    if (problem) throw new Error(`CAIRN_TRUSTED_PROXIES ${problem} (got ${p})`);
  }
  set('trustedProxies', proxies);
  return o;
}
