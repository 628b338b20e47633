import { blockFieldSuggestionsPlugin } from '@escape.tech/graphql-armor-block-field-suggestions';
import { costLimitPlugin } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { usePrometheus } from '@graphql-yoga/plugin-prometheus';
import { useResponseCache } from '@graphql-yoga/plugin-response-cache';
import {
  type GraphQLError,
  NoSchemaIntrospectionCustomRule,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { AdminClient } from '../jobs/admin-client.ts';
import type { IndexDb } from '../jobs/index-db/open.ts';
import type { CairnPubSub } from '../jobs/pubsub.ts';
import { searchRefusals } from '../schema/entry-search.ts';
import { unauthenticated } from '../schema/errors.ts';
import { droppedEvents } from '../schema/event-rows.ts';
import { type CairnContext, schema } from '../schema/index.ts';
import { DEFAULT_MAX_BODY_BYTES, useBodyLimit } from './body-limit.ts';
import { type AddressedRequest, clientAddresses } from './client-address.ts';
import { DEFAULT_MAX_ANSWER_BYTES, DEFAULT_MAX_LIST_COST, listCostRule } from './list-cost.ts';
import {
  createOriginPolicy,
  DEFAULT_ALLOWED_HOSTS,
  DEFAULT_CORS_ORIGINS,
  type OriginPolicy,
} from './origins.ts';
import { RATE_DEFAULTS, type RateLimit, RateLimiter, type RateRefusal } from './rate-limit.ts';
import { EventInvalidatedCache, TOPIC_TYPES } from './read-cache.ts';
import { TypeTaggedResponses } from './response-cache.ts';
import { sharedSubscriptionMetrics, useSharedSubscriptions } from './shared-subscriptions.ts';
import type { WebSocketLimits } from './socket-limit.ts';
import {
  type SubscriptionCaller,
  SubscriptionLimiter,
  type SubscriptionLimits,
  useSubscriptionSlots,
} from './subscription-limit.ts';
import { bearerToken, createTokenVerifier, type TokenCheck, type TokenEntry } from './tokens.ts';
import { DEFAULT_MAX_VARIABLES_DEPTH, useVariablesLimit } from './variables-limit.ts';

export interface GatewayLimits {
  /** Deepest selection set (default 12). */
  maxDepth?: number;
  /** graphql-armor cost limit (default 5000). */
  maxCost?: number;
  /** Objects an answer may hold, lists counted by their page size (default 20,000; list-cost.ts). */
  maxListCost?: number;
  /** Bytes an answer may take by its fields' size bounds (default 16 MiB; list-cost.ts). */
  maxAnswerBytes?: number;
  /** Aliases per operation (default 30). */
  maxAliases?: number;
  /** Lexer tokens per document (default 5000). */
  maxTokens?: number;
  /** Directives per operation (default 50). */
  maxDirectives?: number;
  /** Request body bytes (default 512 KiB); larger bodies get 413. */
  maxBodyBytes?: number;
  /** How deeply variables may nest (default 32; variables-limit.ts): deeper gets 400. */
  maxVariablesDepth?: number;
}

export interface GatewayOptions {
  db: IndexDb;
  pubsub: CairnPubSub;
  admin: AdminClient;
  /** Accepted bearer tokens (SHA-256 hashes with roles). */
  tokens?: readonly TokenEntry[];
  limits?: GatewayLimits;
  /** Serve GraphiQL on GET /graphql (default: when not in production). */
  graphiql?: boolean;
  /**
   * Production defaults (default: NODE_ENV === 'production'): no GraphiQL, no introspection, no
   * field suggestions, /metrics behind a token. Each can be turned back on by its own option.
   */
  production?: boolean;
  /** Answer __schema/__type queries (default: when not in production). */
  introspection?: boolean;
  /** "Did you mean …" in validation errors, a map of the schema (default: when not in production). */
  fieldSuggestions?: boolean;
  /** /metrics without a token (default: when not in production); else any configured token. */
  metricsPublic?: boolean;
  /** Browser origins allowed by CORS and on the WebSocket (default DEFAULT_CORS_ORIGINS). */
  corsOrigins?: readonly string[];
  /**
   * Host names the gateway answers besides IP addresses and `localhost` (origins.ts): its public
   * names (`cairn.example.org`, `.example.org` for subdomains, or an origin such as
   * `https://cairn.example.org`). The node:http server adds its listen host; other Hosts get 421.
   */
  allowedHosts?: readonly string[];
  /**
   * Requests per second per bearer token, unless its entry has a `rate` (default
   * RATE_DEFAULTS[mode].token; null = no limit).
   */
  tokenRateLimit?: RateLimit | null;
  /**
   * Requests per second per anonymous client host, invalid tokens included (default
   * RATE_DEFAULTS[mode].anonymous: on in production, off in development; null = no limit).
   */
  anonymousRateLimit?: RateLimit | null;
  /** Open subscriptions per caller and operations per WebSocket (default SUBSCRIPTION_DEFAULTS). */
  subscriptionLimits?: Partial<SubscriptionLimits>;
  /** Open WebSockets per client host and in all (default WEBSOCKET_DEFAULTS; the server applies them). */
  webSocketLimits?: Partial<WebSocketLimits>;
  logger?: Logger;
  /** Reads and subscriptions need at least a viewer token. */
  requireViewer?: boolean;
  /**
   * Reverse proxies (IP ranges) whose X-Forwarded-For names the client for the per-host caps
   * (client-address.ts; compose: the console). Default none: every peer is its own client.
   */
  trustedProxies?: readonly string[];
  /** How long mutations wait for a node (default 30 s). */
  adminTimeoutMs?: number;
  /** TTL of the shared hot-read cache, cleared on events (default 1000 ms; 0 disables). */
  cacheTtlMs?: number;
  /** Readiness checks besides the DB query (e.g. a Redis ping); throw to report not ready. */
  readinessChecks?: Record<string, () => Promise<unknown>>;
}

export interface Gateway {
  readonly yoga: YogaServerInstance<Record<string, unknown>, CairnContext>;
  /** WHATWG fetch handler (queries, mutations, SSE subscriptions) with the body limit applied. */
  readonly fetch: (request: Request) => Promise<Response>;
  /** The request body limit in bytes (`limits.maxBodyBytes` or its default). */
  readonly maxBodyBytes: number;
  /** Which browser origins may use it (the WebSocket upgrade checks it too). */
  readonly origins: OriginPolicy;
  /** Refusals outside GraphQL validation, by reason (a WebSocket from a foreign origin, …). */
  readonly refused: Counter<'reason'>;
  /**
   * Takes one operation from the caller's rate limit (graphql-ws subscribes go through the same
   * buckets as HTTP requests): undefined when allowed, else the refusal (counted).
   */
  readonly rateLimit: (authorization: unknown, address: string | undefined) => RateRefusal | undefined;
  /** The subscription caps; the WebSocket server checks its per-socket one (server.ts). */
  readonly subscriptions: SubscriptionLimiter;
  /** The client a node:http request is from: the peer, or whom a trusted proxy forwards. */
  readonly clientAddress: (req: AddressedRequest | undefined) => string | undefined;
  /**
   * Whether a graphql-ws connection_init may open a session: with requireViewer only one that
   * carries an accepted token (anything else is counted and the socket closed: 4403), so a
   * tokenless socket holds no per-host WebSocket slot past its init.
   */
  readonly admitsSocket: (connectionParams: Record<string, unknown> | undefined) => boolean;
  /** Stops the cache's event subscriptions; the caller owns db, pubsub and admin. */
  readonly close: () => Promise<void>;
}

export const DEFAULT_LIMITS: Required<GatewayLimits> = {
  maxDepth: 12,
  maxCost: 5000,
  maxListCost: DEFAULT_MAX_LIST_COST,
  maxAnswerBytes: DEFAULT_MAX_ANSWER_BYTES,
  maxAliases: 30,
  maxTokens: 5000,
  maxDirectives: 50,
  maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
  maxVariablesDepth: DEFAULT_MAX_VARIABLES_DEPTH,
};

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    p,
    new Promise<never>((_, reject) => {
      setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms).unref();
    }),
  ]);

/**
 * graphql-armor's validation rules throw by default, which ends validation with an ordinary
 * error (HTTP 200, no code). Reported into the validation context instead, a rejection is a
 * validation error like any other: code GRAPHQL_VALIDATION_FAILED, and 400 for clients that
 * accept application/graphql-response+json.
 */
const asValidationError = {
  propagateOnRejection: false,
  onReject: [(ctx: ValidationContext | null, err: GraphQLError) => ctx?.reportError(err)],
};

/** An envelop plugin that adds validation rules (graphql-js rules or our own). */
const validationRules = (rules: ValidationRule[]) => ({
  onValidate({ addValidationRule }: { addValidationRule: (rule: ValidationRule) => void }) {
    for (const rule of rules) addValidationRule(rule);
  },
});

const errorResponse = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  Response.json({ errors: [{ message, extensions: { code } }] }, { status, headers });

/** The Cairn GraphQL gateway as a yoga instance: schema, auth, limits, metrics, health. */
export function createGateway(options: GatewayOptions): Gateway {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  const production = options.production ?? process.env.NODE_ENV === 'production';
  const verify = createTokenVerifier(options.tokens ?? []);
  const ttlMs = options.cacheTtlMs ?? 1000;
  const cache = new EventInvalidatedCache(ttlMs);
  cache.watch(options.pubsub);
  // Whole query results, per role, for the same short time and dropped on the same events as the
  // read cache: a dashboard polled by many clients is executed once per change, not per request.
  const responses = new TypeTaggedResponses(schema, { max: 1000 });
  cache.onInvalidate((topic) => responses.invalidateTypes(TOPIC_TYPES[topic]));
  // An HTTP request's token is needed twice (response-cache session, then the context): verify it once.
  const checked = new WeakMap<Request, TokenCheck>();
  const checkRequest = (request: Request): TokenCheck => {
    let check = checked.get(request);
    if (!check) {
      check = verify(bearerToken(request.headers.get('authorization')));
      checked.set(request, check);
    }
    return check;
  };
  const roleOf = (request: Request): string => {
    const check = checkRequest(request);
    return 'invalid' in check ? 'invalid' : (check.role ?? 'anonymous');
  };
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  options.admin.registerMetrics(registry);
  registry.registerMetric(droppedEvents);
  registry.registerMetric(searchRefusals);
  const log = options.logger;
  const refused = new Counter({
    name: 'cairn_gateway_refused_total',
    help: 'Requests the gateway refused outside GraphQL validation, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const forwardedProblems = new Counter({
    name: 'cairn_gateway_forwarded_for_unread_total',
    help: "X-Forwarded-For headers from a trusted proxy that could not be read (the proxy's address counted instead), by problem",
    labelNames: ['problem'] as const,
    registers: [registry],
  });
  const addresses = clientAddresses(options.trustedProxies ?? [], (problem) =>
    forwardedProblems.inc({ problem }),
  );
  const origins = createOriginPolicy(options.corsOrigins ?? DEFAULT_CORS_ORIGINS, [
    ...DEFAULT_ALLOWED_HOSTS,
    ...(options.allowedHosts ?? []),
  ]);
  const introspection = options.introspection ?? !production;
  const fieldSuggestions = options.fieldSuggestions ?? !production;
  const metricsPublic = options.metricsPublic ?? !production;
  const rates = production ? RATE_DEFAULTS.production : RATE_DEFAULTS.development;
  const limiter = new RateLimiter({
    token: (options.tokenRateLimit === undefined ? rates.token : options.tokenRateLimit) ?? undefined,
    anonymous:
      (options.anonymousRateLimit === undefined ? rates.anonymous : options.anonymousRateLimit) ?? undefined,
  });
  /** One request of this caller against its bucket: undefined, or the refusal (counted). */
  const take = (check: TokenCheck, address: string | undefined): RateRefusal | undefined => {
    // An invalid token is a stranger: its tries count against its host, not a token's bucket.
    const refusal =
      'invalid' in check || check.role === null || check.id === undefined
        ? limiter.take({ kind: 'anonymous', address })
        : limiter.take({ kind: 'token', id: check.id, rate: check.rate });
    if (refusal) refused.inc({ reason: `rate-limited-${refusal.kind}` });
    return refusal;
  };

  const subscriptions = new SubscriptionLimiter(options.subscriptionLimits);
  new Gauge({
    name: 'cairn_gateway_subscriptions_open',
    help: 'Subscriptions this gateway holds, by kind (total, anonymous); capped by SUBSCRIPTION_DEFAULTS',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const open = subscriptions.open;
      this.set({ kind: 'total' }, open.total);
      this.set({ kind: 'anonymous' }, open.anonymous);
    },
  });
  /** The caller a subscription is counted against: the same split as the rate buckets. */
  const subscriber = (contextValue: unknown): SubscriptionCaller => {
    const c = (contextValue ?? {}) as {
      connectionParams?: Record<string, unknown>;
      request?: Request;
      req?: AddressedRequest;
    };
    const check = c.connectionParams
      ? verify(
          bearerToken(
            c.connectionParams.authorization ?? c.connectionParams.Authorization ?? c.connectionParams.token,
          ),
        )
      : c.request
        ? checkRequest(c.request)
        : verify(null);
    return 'invalid' in check || check.role === null || check.id === undefined
      ? { kind: 'anonymous', address: addresses.of(c.req) }
      : { kind: 'token', id: check.id };
  };

  const yoga = createYoga<Record<string, unknown>, CairnContext>({
    schema,
    graphqlEndpoint: '/graphql',
    graphiql: (options.graphiql ?? !production) ? { title: 'Cairn gateway' } : false,
    landingPage: false,
    // Listed origins only, and never the caller's Origin reflected back: a page elsewhere can
    // neither read answers nor send the Authorization header (no preflight is granted).
    cors: (request) => {
      const origin = request.headers.get('origin');
      return origin && origins.listed(origin)
        ? {
            origin: [origin],
            credentials: false,
            methods: ['GET', 'POST'],
            allowedHeaders: ['content-type', 'accept', 'authorization'],
          }
        : false;
    },
    // GraphQLErrors (auth, limits, coded command errors) pass through; anything else is masked.
    maskedErrors: true,
    batching: false,
    logging: log ?? false,
    context: ({
      request,
      connectionParams,
    }: {
      request?: Request;
      connectionParams?: Record<string, unknown>;
    }) => {
      // graphql-ws sends credentials in connectionParams (checked at subscribe); HTTP in a header.
      const check = connectionParams
        ? verify(
            bearerToken(
              connectionParams.authorization ?? connectionParams.Authorization ?? connectionParams.token,
            ),
          )
        : request
          ? checkRequest(request)
          : verify(null);
      if ('invalid' in check)
        throw unauthenticated('Invalid token: the bearer token matches no configured token');
      return {
        db: options.db,
        pubsub: options.pubsub,
        admin: options.admin,
        role: check.role,
        requireViewer: options.requireViewer ?? false,
        adminTimeoutMs: options.adminTimeoutMs,
        cache,
      } satisfies CairnContext;
    },
    plugins: [
      {
        // Rate limits first (the cheapest refusal), then /metrics' token: both before any parsing.
        onRequest({ request, url, serverContext, endResponse }) {
          if (url.pathname === '/health' || url.pathname === '/ready') return;
          const check = checkRequest(request);
          // node:http gives the request (serverContext.req); the fetch path has none: a serverless
          // host limits per client at its edge, and one bucket shared by every anonymous caller
          // would let one stranger lock all of them out.
          const limited = take(
            check,
            addresses.of((serverContext as { req?: AddressedRequest } | undefined)?.req),
          );
          if (limited) {
            return endResponse(
              errorResponse(429, 'RATE_LIMITED', limited.message, {
                'retry-after': String(limited.retryAfter),
              }),
            );
          }
          if (url.pathname === '/metrics' && !metricsPublic && ('invalid' in check || check.role === null)) {
            refused.inc({ reason: 'metrics-unauthenticated' });
            return endResponse(
              errorResponse(401, 'UNAUTHENTICATED', '/metrics needs a bearer token', {
                'www-authenticate': 'Bearer realm="cairn-gateway"',
              }),
            );
          }
        },
      },
      useBodyLimit(limits.maxBodyBytes),
      useVariablesLimit(limits.maxVariablesDepth, () => refused.inc({ reason: 'variables-too-deep' })),
      useSubscriptionSlots(subscriptions, subscriber, (reason) =>
        refused.inc({ reason: `subscriptions-${reason}` }),
      ),
      // After the slots (each subscriber holds its own) and before nothing that reads results:
      // subscribers of the same document, variables and role share one execution per event.
      useSharedSubscriptions((ctx) => {
        const c = ctx as Partial<CairnContext>;
        return c.db === options.db ? JSON.stringify([c.role ?? null, c.requireViewer ?? false]) : undefined;
      }, sharedSubscriptionMetrics(registry)),
      // graphql-armor's protections one by one, in an order that names the actual abuse: the
      // token count stops huge documents while parsing, and a deep query is reported as too
      // deep rather than as too costly (which it also is).
      maxTokensPlugin({ n: limits.maxTokens }),
      maxAliasesPlugin({ n: limits.maxAliases, allowList: [], ...asValidationError }),
      maxDirectivesPlugin({ n: limits.maxDirectives, ...asValidationError }),
      maxDepthPlugin({
        n: limits.maxDepth,
        ignoreIntrospection: true,
        flattenFragments: true,
        ...asValidationError,
      }),
      costLimitPlugin({ maxCost: limits.maxCost, ignoreIntrospection: true, ...asValidationError }),
      validationRules([
        listCostRule({
          maxCost: limits.maxListCost,
          maxBytes: limits.maxAnswerBytes,
          onRefuse: (measure) =>
            refused.inc({ reason: measure === 'objects' ? 'list-cost' : 'answer-bytes' }),
        }),
        ...(introspection ? [] : [NoSchemaIntrospectionCustomRule]),
      ]),
      ...(fieldSuggestions ? [] : [blockFieldSuggestionsPlugin()]),
      useResponseCache({
        session: roleOf,
        cache: responses.cache,
        buildResponseCacheKey: responses.buildKey,
        ttl: ttlMs,
        // HTTP only: the plugin keys a result by what yoga records while parsing an HTTP request's
        // params, which a graphql-ws operation never passes through (its context has no request);
        // enabled there, every query or mutation over a WebSocket threw and closed the socket.
        enabled: (request) => ttlMs > 0 && request !== undefined,
        includeExtensionMetadata: false,
      }),
      // A request that executed a query others wait for (response-cache.ts, flights) has its
      // answer: whether or not the result was cached, they may look again.
      { onResponse: ({ request }: { request: Request }) => responses.finish(request) },
      usePrometheus({
        registry,
        endpoint: '/metrics',
        // Request-level metrics only: per-phase histograms and the deprecated-field counter (a
        // document walk per request) cost a fifth of a cached request and tell little here.
        metrics: {
          graphql_yoga_http_duration: true,
          graphql_envelop_request: true,
          graphql_envelop_request_duration: true,
          graphql_envelop_error_result: true,
          graphql_envelop_phase_subscribe: true,
          graphql_envelop_deprecated_field: false,
          graphql_envelop_phase_parse: false,
          graphql_envelop_phase_validate: false,
          graphql_envelop_phase_context: false,
          graphql_envelop_phase_execute: false,
          graphql_envelop_schema_change: false,
          graphql_envelop_execute_resolver: false,
          graphql_envelop_request_time_summary: false,
        },
      }),
      {
        // GET /ready: the index DB answers a query and every extra check (Redis ping) passes.
        async onRequest({ request, url, endResponse }) {
          if (url.pathname !== '/ready' || request.method !== 'GET') return;
          const checks: Record<string, () => Promise<unknown>> = {
            db: () => options.db.$queryRawUnsafe('SELECT 1'),
            ...options.readinessChecks,
          };
          const failures: string[] = [];
          await Promise.all(
            Object.entries(checks).map(([name, check]) =>
              withTimeout(check(), 2000, name).catch((err: Error) =>
                failures.push(`${name}: ${err.message}`),
              ),
            ),
          );
          endResponse(
            Response.json(failures.length ? { ready: false, reason: failures.join('; ') } : { ready: true }, {
              status: failures.length ? 503 : 200,
            }),
          );
        },
      },
    ],
  });

  return {
    yoga,
    maxBodyBytes: limits.maxBodyBytes,
    origins,
    refused,
    rateLimit: (authorization, address) => take(verify(bearerToken(authorization)), address),
    subscriptions,
    clientAddress: (req) => addresses.of(req),
    admitsSocket: (connectionParams) => {
      if (!options.requireViewer) return true;
      const cp = connectionParams ?? {};
      const check = verify(bearerToken(cp.authorization ?? cp.Authorization ?? cp.token));
      if (!('invalid' in check) && check.role !== null) return true;
      refused.inc({ reason: 'websocket-no-token' });
      return false;
    },
    // useBodyLimit bounds chunked bodies inside yoga, on this path and on node:http alike.
    fetch: async (request) => yoga.fetch(request),
    close: () => cache.close(),
  };
}
