import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { AdminClient } from '../jobs/admin-client.ts';
import type { CommandSigner } from '../jobs/command-signer.ts';
import { type IndexDb, type IndexDbLocation, openIndexDb } from '../jobs/index-db/open.ts';
import { type CairnPubSub, createCairnPubSub } from '../jobs/pubsub.ts';
import { createRedis, redisUrl } from '../jobs/redis.ts';
import { declaredTooLarge } from './body-limit.ts';
import { createGateway, type Gateway, type GatewayOptions } from './gateway.ts';
import { WebSocketLimiter } from './socket-limit.ts';

export interface GatewayServerOptions extends Partial<Omit<GatewayOptions, 'readinessChecks'>> {
  /** Default 4000; 0 picks a free port. */
  port?: number;
  host?: string;
  /** Redis for pub/sub, admin commands and the readiness ping (default REDIS_URL or local). */
  redisUrl?: string;
  /** Queue and pub/sub namespace for the pubsub/admin it creates (default CAIRN_NAMESPACE or `cairn`). */
  namespace?: string;
  /** Where to open the index DB when `db` is not given (default from DATABASE_URL). */
  location?: IndexDbLocation;
  /** How long close() lets in-flight HTTP requests finish before cutting them (default 5 s). */
  closeGraceMs?: number;
  /** The key the admin client it creates signs commands with (default: a throwaway key nodes refuse). */
  signer?: CommandSigner;
}

export interface GatewayServer {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  readonly server: Server;
  readonly gateway: Gateway;
  /** The bus this instance subscribes on (publishing through it reaches every instance). */
  readonly pubsub: CairnPubSub;
  /** Open WebSockets, capped per host and in all. */
  readonly sockets: WebSocketLimiter;
  /** Stops accepting, closes WebSocket clients, then what this server opened itself. */
  readonly close: () => Promise<void>;
}

/**
 * HTTP and graphql-ws on one port and one path (`/graphql`), plus `/health`, `/ready` and
 * `/metrics`. Resources passed in (db, pubsub, admin) stay the caller's; those it opens it closes.
 */
export async function startGatewayServer(options: GatewayServerOptions = {}): Promise<GatewayServer> {
  const url = redisUrl(options.redisUrl);
  const owned: (() => Promise<unknown>)[] = [];
  const log = options.logger;

  let db: IndexDb | undefined = options.db;
  if (!db) {
    db = await openIndexDb(options.location);
    const opened = db;
    owned.push(() => opened.$disconnect());
  }
  let pubsub: CairnPubSub | undefined = options.pubsub;
  if (!pubsub) {
    const bus = createCairnPubSub(url, options.namespace);
    pubsub = bus.pubsub;
    owned.push(bus.close);
  }
  let admin = options.admin;
  if (!admin) {
    const client = new AdminClient(url, options.namespace, options.signer, log);
    admin = client;
    owned.push(() => client.close());
  }
  // Readiness pings fail fast while Redis is down instead of queueing behind the reconnect.
  const probe = createRedis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  owned.push(() => probe.quit().catch(() => probe.disconnect()));

  const listenHost = options.host ?? '127.0.0.1';
  const gateway = createGateway({
    ...options,
    // A listen host given by name (HOST=cairn.lan) is one the gateway answers to.
    allowedHosts: [...(options.allowedHosts ?? []), ...(isIP(listenHost) ? [] : [listenHost])],
    db,
    pubsub,
    admin,
    readinessChecks: { redis: () => probe.ping() },
  });
  const { yoga } = gateway;
  const maxBody = gateway.maxBodyBytes;

  /** A foreign Host is DNS rebinding or a misrouted request: 421 before anything else (origins.ts). */
  const misdirected = (host: string | undefined) => {
    gateway.refused.inc({ reason: 'host' });
    log?.debug({ host }, 'request for a host this gateway does not serve refused');
    return `Misdirected request: this gateway does not serve the host ${JSON.stringify(host)} (allowed: IP addresses, localhost, its listen host and CAIRN_ALLOWED_HOSTS)`;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (!gateway.origins.hostAllowed(req.headers.host)) {
      const message = misdirected(req.headers.host);
      send(
        res,
        Response.json(
          { errors: [{ message, extensions: { code: 'MISDIRECTED_REQUEST' } }] },
          { status: 421 },
        ),
        true,
      );
      return;
    }
    const declared = req.headers['content-length'];
    const refused = declaredTooLarge(declared, maxBody);
    if (refused) {
      // Refuse without reading, and close: the unread body must not be parsed as the next request.
      send(res, refused, true);
      return;
    }
    // Chunked bodies too: useBodyLimit reads them bounded inside yoga's pipeline, so yoga's own
    // node handler writes every answer and the limiter sees the client address in {req, res}.
    Promise.resolve(yoga.requestListener(req, res)).catch((err) => failed(res, err, log));
  });

  const sockets = new WebSocketLimiter(options.webSocketLimits);
  const wss = new WebSocketServer({
    server,
    path: yoga.graphqlEndpoint,
    maxPayload: maxBody,
    // CORS does not cover WebSockets: a page on any origin could open one and act with the
    // token it puts in connectionParams, or read anonymous subscriptions. Refused at the upgrade.
    verifyClient: (info, done) => {
      if (!gateway.origins.hostAllowed(info.req.headers.host))
        return done(false, 421, misdirected(info.req.headers.host));
      if (!gateway.origins.allows(info.req.headers.origin, info.req.headers.host)) {
        gateway.refused.inc({ reason: 'websocket-origin' });
        log?.warn({ origin: info.req.headers.origin }, 'WebSocket from a foreign origin refused');
        return done(false, 403, `Origin ${info.req.headers.origin} is not allowed`);
      }
      // Idle sockets hold no subscription slot: they are capped themselves (socket-limit.ts).
      const slot = sockets.open(gateway.clientAddress(info.req));
      if (typeof slot !== 'function') {
        gateway.refused.inc({ reason: `websocket-${slot.reason}` });
        return done(false, 429, slot.message);
      }
      info.req.socket.once('close', slot);
      done(true);
    },
  });
  const wsServer = useServer(
    {
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args) as never,
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args) as never,
      // With viewer tokens required, a socket whose connection_init carries none is closed
      // (4403) at once: it could run nothing, and open it held one of its host's slots.
      onConnect: (ctx) => gateway.admitsSocket(ctx.connectionParams),
      onSubscribe: async (ctx, _id, params) => {
        // Each subscribe counts against the caller's rate limit, like an HTTP request.
        const cp = ctx.connectionParams ?? {};
        const limited = gateway.rateLimit(
          cp.authorization ?? cp.Authorization ?? cp.token,
          gateway.clientAddress(ctx.extra.request),
        );
        if (limited)
          return [
            new GraphQLError(limited.message, {
              extensions: { code: 'RATE_LIMITED', retryAfter: limited.retryAfter },
            }),
          ];
        // ctx.subscriptions already holds this operation's id.
        const crowded = gateway.subscriptions.checkSocket(Object.keys(ctx.subscriptions).length);
        if (crowded) {
          gateway.refused.inc({ reason: `subscriptions-${crowded.reason}` });
          return [new GraphQLError(crowded.message, { extensions: { code: 'SUBSCRIPTION_LIMIT' } })];
        }
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        let document: ReturnType<typeof parse>;
        let contextValue: unknown;
        try {
          document = parse(params.query);
          const errors = validate(schema, document);
          if (errors.length) return errors;
          // Authentication happens here, when the subscription starts (wrong token → UNAUTHENTICATED).
          contextValue = await contextFactory();
        } catch (err) {
          return [toGraphQLError(err)];
        }
        return {
          schema,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue,
          rootValue: { execute, subscribe },
        } as ExecutionArgs;
      },
    },
    wss,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 4000, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = listenHost;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const httpUrl = `http://${hostForUrl}:${port}${yoga.graphqlEndpoint}`;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      for (const client of wss.clients) client.close(1001, 'Gateway shutting down');
      await wsServer.dispose();
      const grace = setTimeout(() => server.closeAllConnections(), options.closeGraceMs ?? 5000);
      await stopped;
      clearTimeout(grace);
      await gateway.close();
      for (const release of owned.reverse())
        await release().catch((err) => log?.warn({ err }, 'close failed'));
      log?.info('gateway closed');
    })();
    return closing;
  };

  return {
    url: httpUrl,
    wsUrl: httpUrl.replace(/^http/, 'ws'),
    port,
    server,
    gateway,
    pubsub,
    sockets,
    close,
  };
}

type Enveloped = { execute: (a: ExecutionArgs) => unknown; subscribe: (a: ExecutionArgs) => unknown };

function toGraphQLError(err: unknown) {
  // GraphQLError instances keep their extensions (e.g. UNAUTHENTICATED); anything else is masked.
  if (err && typeof err === 'object' && 'extensions' in err && 'message' in err) return err as never;
  return { message: 'Unexpected error.' } as never;
}

/**
 * Last resort for a request whose handler threw: a 500 if nothing was written yet, else the
 * socket is cut (headers cannot be sent twice). Never rethrows: an unhandled rejection would end
 * the process, and with it every other client's connection.
 */
function failed(res: ServerResponse, err: unknown, log?: { error: (o: object, m: string) => void }) {
  log?.error({ err }, 'request handler failed');
  if (res.headersSent || res.writableEnded) {
    res.destroy();
    return;
  }
  res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL' } }] }));
}

/** Writes one of the server's own small JSON refusals (421, 413) and, with `close`, ends the connection. */
function send(res: ServerResponse, response: Response, close: boolean): void {
  const headers = Object.fromEntries(response.headers);
  if (close) headers.connection = 'close';
  response
    .arrayBuffer()
    .then((body) => {
      res.writeHead(response.status, headers);
      res.end(Buffer.from(body));
    })
    .catch((err) => failed(res, err));
}
