import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, type Registry } from 'prom-client';
import { decodeEntry } from '../chain/entry-codec.ts';
import type { SealedEntry } from '../chain/types.ts';
import { ControlError, type ControlErrorCode, type EntryOutcome, type NodeControl } from '../control.ts';
import { MAX_CLASSIFY_CHARS } from '../fl/classify.ts';
import type { Logger } from '../log.ts';
import { type MessagingService, SendRefused } from '../messaging/service.ts';
import { createApiGuard } from './guard.ts';

const MAX_BODY = 64 * 1024;

/** What a route may answer besides 200; each is counted in `cairn_api_errors_total{route,code}`. */
export type ApiErrorCode =
  | 'API_BAD_REQUEST'
  | 'API_NOT_FOUND'
  | 'API_PAYLOAD_TOO_LARGE'
  | 'API_UNAVAILABLE'
  | 'API_ENTRY_REJECTED'
  | 'API_NO_MODEL'
  | 'API_UNAUTHORIZED'
  | 'API_INTERNAL';

const STATUS_OF: Record<ApiErrorCode, number> = {
  API_BAD_REQUEST: 400,
  API_NOT_FOUND: 404,
  API_PAYLOAD_TOO_LARGE: 413,
  // A well-formed request the node cannot act on now (no peer to reconcile with, say).
  API_UNAVAILABLE: 409,
  API_ENTRY_REJECTED: 422,
  // Nothing to classify with until a first model version is committed.
  API_NO_MODEL: 409,
  API_UNAUTHORIZED: 401,
  API_INTERNAL: 500,
};

class HttpError extends Error {
  readonly code: ApiErrorCode;
  constructor(code: ApiErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

const CODE_OF: Record<ControlErrorCode, ApiErrorCode> = {
  invalid: 'API_BAD_REQUEST',
  'too-large': 'API_PAYLOAD_TOO_LARGE',
  unavailable: 'API_UNAVAILABLE',
  'no-model': 'API_NO_MODEL',
};

const SEND_CODE_OF: Record<SendRefused['code'], ApiErrorCode> = {
  'unknown-recipient': 'API_NOT_FOUND',
  oversized: 'API_PAYLOAD_TOO_LARGE',
  'to-self': 'API_BAD_REQUEST',
  stopped: 'API_UNAVAILABLE',
};

/** A refused request as an HttpError: the node's own refusals keep their message. */
const asHttpError = (err: unknown): HttpError =>
  err instanceof HttpError
    ? err
    : err instanceof ControlError
      ? new HttpError(CODE_OF[err.code], err.message)
      : err instanceof SendRefused
        ? new HttpError(SEND_CODE_OF[err.code], err.message)
        : new HttpError('API_INTERNAL', (err as Error).message);

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError('API_PAYLOAD_TOO_LARGE', `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new HttpError('API_BAD_REQUEST', 'body is not valid JSON');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new HttpError('API_BAD_REQUEST', 'body must be a JSON object');
  return body as Record<string, unknown>;
}

const stringList = (v: unknown, what: string): string[] => {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw new HttpError('API_BAD_REQUEST', `${what} must be a list of strings`);
  return v;
};

/** An optional integer query parameter (absent: undefined). */
const intParam = (url: URL, name: string): number | undefined => {
  const raw = url.searchParams.get(name);
  if (raw === null) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new HttpError('API_BAD_REQUEST', `${name} must be an integer`);
  return n;
};

/** An entry the mempool refused is a 422 with its reason; otherwise its id and what became of it. */
const admitted = (o: EntryOutcome) => {
  if (!o.accepted) throw new HttpError('API_ENTRY_REJECTED', o.reason ?? 'rejected');
  return { id: o.id, status: o.status };
};

/** What of the node's operator surface the HTTP API uses. */
export type ApiControl = Pick<
  NodeControl,
  | 'status'
  | 'submit'
  | 'submitSigned'
  | 'mempool'
  | 'blocks'
  | 'locateEntry'
  | 'members'
  | 'blockPeers'
  | 'unblockPeers'
  | 'reconcile'
  | 'classify'
  | 'flPrivacy'
  | 'setFlBudget'
>;

/** What of messaging the HTTP API uses. */
export type ApiMessaging = Pick<MessagingService, 'send' | 'inbox' | 'outbox'>;

export interface ApiDeps {
  readonly control: ApiControl;
  /** Direct messages (`/messages`); absent: those routes answer 409. */
  readonly messaging?: ApiMessaging;
  /** Served at `/metrics`; the API's own counters register here too. */
  readonly registry: Registry;
  readonly log: Logger;
}

export interface ApiAccess {
  /** The token every POST must carry (the data dir's `.cookie`). */
  readonly token: string;
  /** Host names besides loopback and the listen host that `Host` may carry. */
  readonly allowHosts?: readonly string[];
}

/**
 * The node's local HTTP endpoint (loopback by default): health and status, Prometheus
 * metrics, a few operator actions. Cluster tests and operators talk to nodes through it; every
 * request passes the guard first (Host allow-list, and for POST the cookie token and JSON).
 */
export async function startHttpApi(
  deps: ApiDeps,
  host: string,
  port: number,
  access: ApiAccess,
): Promise<{ server: Server; url: string }> {
  const { control, registry, log } = deps;
  const tokenDigest = createHash('sha256').update(access.token, 'utf8').digest();
  // Reading messages is as private as sending them: GET /messages needs the POST token too.
  const requireToken = (req: IncomingMessage) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(createHash('sha256').update(m[1]!, 'utf8').digest(), tokenDigest))
      throw new HttpError(
        'API_UNAUTHORIZED',
        'messages need "Authorization: Bearer <token>" (the data dir\'s .cookie)',
      );
  };
  const messaging = () => {
    if (!deps.messaging) throw new HttpError('API_UNAVAILABLE', 'messaging is not running on this node');
    return deps.messaging;
  };
  const spamVerdict = async (text: string) => {
    try {
      const c = await control.classify(text.slice(0, MAX_CLASSIFY_CHARS));
      return { spam: c.spam, score: c.score, version: c.version, round: c.round };
    } catch {
      return null;
    }
  };
  const guard = createApiGuard({
    token: access.token,
    listenHost: host,
    allowHosts: access.allowHosts,
    registry,
  });
  const errors = new Counter({
    name: 'cairn_api_errors_total',
    help: 'HTTP API requests a route refused or failed, by route and code',
    labelNames: ['route', 'code'],
    registers: [registry],
  });
  type Handler = (req: IncomingMessage, url: URL) => Promise<unknown> | unknown;
  const routes: Record<string, Handler> = {
    'GET /health': () => ({ ok: true }),
    'GET /status': () => control.status(),
    'GET /mempool': () => control.mempool(),
    // The roster at this node's tip, with expired and revoked keys marked (empty in open mode).
    'GET /members': () => {
      const { mode, members } = control.members();
      return {
        mode,
        members: members.map((m) => ({
          publicKey: m.publicKeyHex,
          name: m.name,
          role: m.role,
          capabilities: [...m.capabilities],
          admin: m.admin,
          issuedAtMs: m.issuedAtMs,
          expiresAtMs: m.expiresAtMs,
          state: m.state,
          ...(m.revokedAtMs === undefined ? {} : { revokedAtMs: m.revokedAtMs }),
        })),
      };
    },
    'GET /chain': (_req, url) => control.blocks({ from: intParam(url, 'from'), to: intParam(url, 'to') }),
    // Entry ids are 64 hex chars; `<id>` cannot occur in a parsed pathname (it would be %3C…).
    'GET /entries/<id>': (_req, url) => {
      const id = url.pathname.slice('/entries/'.length);
      const at = control.locateEntry(id);
      if (!at)
        throw new HttpError('API_NOT_FOUND', `entry ${id} is neither in the mempool nor in the main chain`);
      return at;
    },
    'POST /entries': async (req) => {
      const body = await readJson(req);
      if (typeof body.content !== 'string')
        throw new HttpError('API_BAD_REQUEST', 'content must be a string');
      const metadata = body.metadata ?? [];
      if (
        !Array.isArray(metadata) ||
        !metadata.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'string'))
      ) {
        throw new HttpError('API_BAD_REQUEST', 'metadata must be a list of [key, value] string pairs');
      }
      return admitted(await control.submit(body.content, metadata as [string, string][]));
    },
    // An entry signed elsewhere (an admin's config or checkpoint, signed with a key this node
    // does not hold), as its canonical encoding in hex: checked like any gossiped entry.
    'POST /entries/signed': async (req) => {
      const { entry } = await readJson(req);
      if (typeof entry !== 'string' || !/^([0-9a-f]{2})+$/.test(entry))
        throw new HttpError('API_BAD_REQUEST', 'entry must be the encoded entry in lowercase hex');
      let decoded: SealedEntry;
      try {
        decoded = decodeEntry(Buffer.from(entry, 'hex'));
      } catch (err) {
        throw new HttpError('API_BAD_REQUEST', `not an entry: ${(err as Error).message}`);
      }
      return admitted(await control.submitSigned(decoded));
    },
    'POST /admin/block-peers': async (req) =>
      control.blockPeers(stringList((await readJson(req)).peers, 'peers')),
    'POST /admin/unblock-peers': async (req) =>
      control.unblockPeers(stringList((await readJson(req)).peers, 'peers')),
    // With `peerId`, that peer; without, a random connected one (409 when there is none).
    'POST /admin/reconcile': async (req) => {
      const { peerId } = await readJson(req);
      if (peerId !== undefined && typeof peerId !== 'string')
        throw new HttpError('API_BAD_REQUEST', 'peerId must be a string');
      return control.reconcile(peerId);
    },
    // A direct message to a member (by name), a peer id or an identity key: queued in the
    // persisted outbox; the answer says whether its receipt came back within a few seconds.
    'POST /messages': async (req) => {
      const { to, text } = await readJson(req);
      if (typeof to !== 'string' || to.length === 0 || to.length > 128)
        throw new HttpError('API_BAD_REQUEST', 'to must be a member name, a peer id or a public key');
      if (typeof text !== 'string') throw new HttpError('API_BAD_REQUEST', 'text must be a string');
      return messaging().send(to, text);
    },
    // Each message with the newest committed model's verdict on it (issue 16: the model in use),
    // judged as it is read, so a message is judged by the current model whenever it was received;
    // `spam: null` before the first model version (or for a text the model cannot take).
    'GET /messages': async (req, url) => {
      requireToken(req);
      const messages = await messaging().inbox(intParam(url, 'after') ?? 0, intParam(url, 'limit') ?? 100);
      return {
        messages: await Promise.all(messages.map(async (m) => ({ ...m, spam: await spamVerdict(m.text) }))),
      };
    },
    'GET /messages/outbox': async (req, url) => {
      requireToken(req);
      return { messages: await messaging().outbox(intParam(url, 'limit') ?? 100) };
    },
    // The newest committed model's verdict: {version, round, spam, score} (409 before the first).
    'POST /classify': async (req) => {
      const { text } = await readJson(req);
      if (typeof text !== 'string') throw new HttpError('API_BAD_REQUEST', 'text must be a string');
      if (text.length > MAX_CLASSIFY_CHARS)
        throw new HttpError(
          'API_PAYLOAD_TOO_LARGE',
          `text is ${text.length} characters; at most ${MAX_CLASSIFY_CHARS}`,
        );
      return control.classify(text);
    },
    // The privacy ledger: ε spent per round and in total, budget, remaining, declines by reason.
    'GET /fl/privacy': () => control.flPrivacy(),
    // {epsilon}: the new budget (a POST, so it needs the cookie token like every mutation here).
    'POST /fl/budget': async (req) => {
      const { epsilon } = await readJson(req);
      if (typeof epsilon !== 'number' || !Number.isFinite(epsilon) || epsilon < 0)
        throw new HttpError('API_BAD_REQUEST', 'epsilon must be a finite number ≥ 0');
      return control.setFlBudget(epsilon);
    },
  };
  /** The route key of a request: entry ids collapse to one key, so metric labels stay bounded. */
  const routeOf = (method: string | undefined, url: URL): string | undefined => {
    const key =
      method === 'GET' && /^\/entries\/[0-9a-f]{64}$/.test(url.pathname)
        ? 'GET /entries/<id>'
        : `${method} ${url.pathname}`;
    return Object.hasOwn(routes, key) ? key : undefined;
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status: number, body: string, type = 'application/json', extra = {}) => {
      res.writeHead(status, { 'content-type': type, ...extra });
      res.end(body);
    };
    const refusal = guard(req);
    if (refusal) {
      // Refused before the body is read: close, so the unread body is not taken for a request.
      const extra: Record<string, string> = { connection: 'close' };
      if (refusal.status === 401) extra['www-authenticate'] = 'Bearer realm="cairn-node"';
      return send(
        refusal.status,
        JSON.stringify({ error: refusal.message, code: refusal.code }),
        'application/json',
        extra,
      );
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      void registry.metrics().then(
        (m) => send(200, m, registry.contentType),
        (err: Error) => send(500, JSON.stringify({ error: err.message, code: 'API_INTERNAL' })),
      );
      return;
    }
    const route = routeOf(req.method, url);
    const fail = (cause: unknown) => {
      const err = asHttpError(cause);
      errors.inc({ route: route ?? 'unknown', code: err.code });
      if (err.code === 'API_INTERNAL') log.error({ route, err: cause }, 'API route failed');
      send(STATUS_OF[err.code], JSON.stringify({ error: err.message, code: err.code }));
    };
    if (!route) return fail(new HttpError('API_NOT_FOUND', `no route ${req.method} ${url.pathname}`));
    Promise.resolve()
      .then(() => routes[route]!(req, url))
      .then((v) => send(200, JSON.stringify(v)))
      .catch(fail);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}` };
}
