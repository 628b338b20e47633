import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toHex } from '../chain/bytes.ts';
import { decodeEntry } from '../chain/entry-codec.ts';
import type { SealedEntry } from '../chain/types.ts';
import type { CairnNode } from '../node.ts';
import { createApiGuard } from './guard.ts';

const MAX_BODY = 64 * 1024;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `body larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new HttpError(400, 'body is not valid JSON');
  }
}

const stringList = (v: unknown, what: string): string[] => {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw new HttpError(400, `${what} must be a list of strings`);
  return v;
};

const json = (v: unknown) =>
  JSON.stringify(v, (_k, x) =>
    typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x,
  );

/**
 * Where an entry is on this node: in the mempool, or included in a block of the main chain (an
 * entry is in at most one main-chain block). 404 if neither. Read-only; scans the main chain
 * from the tip down, so it is meant for tests and operators, not hot paths.
 */
function entryStatus(
  node: CairnNode,
  id: string,
): { id: string; status: 'mempool' | 'included'; height?: number; block?: string } {
  if (node.chain.mempool.has(id)) return { id, status: 'mempool' };
  const tree = node.chain.tree;
  for (let h = tree.tip.height; h > 0; h--) {
    const b = tree.mainAt(h);
    if (b?.entryIds.includes(id)) return { id, status: 'included', height: h, block: b.hashHex };
  }
  throw new HttpError(404, `entry ${id} is neither in the mempool nor in the main chain`);
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
  node: CairnNode,
  host: string,
  port: number,
  access: ApiAccess,
): Promise<{ server: Server; url: string }> {
  const guard = createApiGuard({
    token: access.token,
    listenHost: host,
    allowHosts: access.allowHosts,
    registry: node.metrics.registry,
  });
  const routes: Record<string, (req: IncomingMessage, url: URL) => Promise<unknown> | unknown> = {
    'GET /health': () => ({ ok: true }),
    'GET /status': () => node.status(),
    'GET /mempool': () => ({ ids: node.chain.mempool.ids() }),
    // The roster at this node's tip (roster mode; empty in open mode).
    'GET /members': () => ({
      mode: node.membership.mode,
      members:
        node.membership.mode === 'open'
          ? []
          : node.membership.members(Date.now()).map((m) => ({
              publicKey: m.publicKeyHex,
              name: m.name,
              role: m.role,
              capabilities: [...m.capabilities],
              expiresAtMs: m.expiresAtMs,
              admin: m.admin,
            })),
    }),
    'GET /chain': (_req, url) => {
      const tip = node.chain.tip.height;
      const from = Math.max(0, Number(url.searchParams.get('from') ?? Math.max(0, tip - 20)));
      const to = Math.min(tip, Number(url.searchParams.get('to') ?? tip), from + 5000);
      if (!Number.isInteger(from) || !Number.isInteger(to))
        throw new HttpError(400, 'from and to must be integers');
      const blocks = [];
      for (let h = from; h <= to; h++) {
        const b = node.chain.tree.mainAt(h)!;
        blocks.push({
          height: h,
          hash: b.hashHex,
          entries: b.entryIds.length,
          timestamp: b.header.timestamp,
          miner: toHex(b.header.miner),
        });
      }
      return { blocks };
    },
    'POST /entries': async (req) => {
      const body = (await readJson(req)) as { content?: unknown; metadata?: unknown };
      if (typeof body.content !== 'string') throw new HttpError(400, 'content must be a string');
      const metadata = (body.metadata ?? []) as unknown;
      if (
        !Array.isArray(metadata) ||
        !metadata.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => typeof x === 'string'))
      ) {
        throw new HttpError(400, 'metadata must be a list of [key, value] string pairs');
      }
      let r: Awaited<ReturnType<CairnNode['addKnowledge']>>;
      try {
        r = await node.addKnowledge(body.content, metadata as [string, string][]);
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
      if (r.result.status === 'rejected') throw new HttpError(422, `${r.result.reason}: ${r.result.message}`);
      return { id: r.entry.idHex, status: r.result.status };
    },
    // An entry signed elsewhere (an admin's config or checkpoint, signed with a key this node
    // does not hold), as its canonical encoding in hex: checked like any gossiped entry.
    'POST /entries/signed': async (req) => {
      const { entry } = (await readJson(req)) as { entry?: unknown };
      if (typeof entry !== 'string' || !/^([0-9a-f]{2})+$/.test(entry))
        throw new HttpError(400, 'entry must be the encoded entry in lowercase hex');
      let decoded: SealedEntry;
      try {
        decoded = decodeEntry(Buffer.from(entry, 'hex'));
      } catch (err) {
        throw new HttpError(400, `not an entry: ${(err as Error).message}`);
      }
      const result = await node.submitSignedEntry(decoded);
      if (result.status === 'rejected') throw new HttpError(422, `${result.reason}: ${result.message}`);
      return { id: decoded.idHex, status: result.status };
    },
    'POST /admin/block-peers': async (req) => {
      const { peers } = (await readJson(req)) as { peers?: unknown };
      node.peers.block(stringList(peers, 'peers'));
      return { blocked: node.peers.blockedPeers() };
    },
    'POST /admin/unblock-peers': async (req) => {
      const { peers } = (await readJson(req)) as { peers?: unknown };
      node.peers.unblock(stringList(peers, 'peers'));
      return { blocked: node.peers.blockedPeers() };
    },
    'POST /admin/reconcile': async () => (await node.reconcileWithRandomPeer()) ?? { skipped: 'no peers' },
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
        json({ error: refusal.message, code: refusal.code }),
        'application/json',
        extra,
      );
    }
    if (req.method === 'GET' && url.pathname === '/metrics') {
      void node.metrics.registry.metrics().then((m) => send(200, m, node.metrics.registry.contentType));
      return;
    }
    const entryId = req.method === 'GET' ? /^\/entries\/([0-9a-f]{64})$/.exec(url.pathname)?.[1] : undefined;
    const handler = entryId ? () => entryStatus(node, entryId) : routes[`${req.method} ${url.pathname}`];
    if (!handler) return send(404, json({ error: `no route ${req.method} ${url.pathname}` }));
    Promise.resolve()
      .then(() => handler(req, url))
      .then((v) => send(200, json(v)))
      .catch((err) =>
        send(err instanceof HttpError ? err.status : 500, json({ error: (err as Error).message })),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return { server, url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}` };
}
