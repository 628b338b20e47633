/**
 * docker-compose.yml's Redis, run for real (the same steps as e2e/compose-redis-acl.test.ts):
 * compose's network-init command writes the identities and the ACL file into a temp dir, then a
 * throwaway redis-server on a loopback port starts with the compose file's own redis arguments.
 * `as(user)` connects as one of compose's ACL users, the way Cairn's components connect (scripts
 * by EVALSHA only, jobs/redis-scripts.ts); `restart()` kills and restarts the server.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { parse } from 'yaml';
import { type EvalshaOptions, evalshaOnly } from '../jobs/redis-scripts.ts';
import { loadOrCreateIdentity, type NodeIdentity } from '../node/identity/identity.ts';
import { REPO_ROOT } from './cluster/node-process.ts';

interface Service {
  command: string[];
  environment?: Record<string, string>;
}
export const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), {
  merge: true,
}) as { services: Record<string, Service> };

const USERS = ['node-1', 'node-2', 'node-3', 'collector', 'gateway', 'health'];
const PASSWORDS: Record<string, string> = Object.fromEntries(
  USERS.map((u) => [`CAIRN_REDIS_${u.toUpperCase().replace('-', '_')}_PASSWORD`, `${u}-pw`]),
);
const fill = (arg: string) =>
  arg.replace(/\$\{(\w+)(?::[?-][^}]*)?\}/g, (_m, v: string) => PASSWORDS[v] ?? '');

export interface AclRig {
  readonly port: number;
  /** The temp dir standing for compose's volumes: `cairn/` is cairn-data, `acl/` is redis-acl. */
  readonly dir: string;
  readonly ids: Record<string, NodeIdentity>;
  /** A client logged in as a compose ACL user (password `<user>-pw`). */
  as(user: string, o?: { enableReadyCheck?: boolean; scripts?: EvalshaOptions }): Redis;
  /** The redis-server's process (SIGKILLed by close). */
  readonly server: ChildProcess;
  /** SIGKILL, then the same server again on the same port (its AOF kept, its script cache not). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startComposeRedis(): Promise<AclRig> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-atk13-acl-'));
  const local = (arg: string) => arg.replace(/^\/(cairn|acl)(?=\/|$)/, (m) => path.join(dir, m));
  /** Compose's arguments as the test can run them: its paths in the test's dir, and the volume
   * handed to whoever runs the test (compose hands it to the image's uid 1000, as root). */
  const runnable = (args: readonly string[]) =>
    args.map((a, i) => (args[i - 1] === '--owner' ? `${process.getuid!()}:${process.getgid!()}` : local(a)));
  const init = compose.services['network-init']!;
  const initArgs = init.command.slice(4);
  const env = Object.fromEntries(Object.entries(init.environment ?? {}).map(([k, v]) => [k, fill(v)]));
  const child = spawn(
    process.execPath,
    [path.join(REPO_ROOT, 'node/network-init.ts'), ...runnable(initArgs)],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += d;
  });
  const [code] = await once(child, 'exit');
  if (code !== 0) throw new Error(`network-init failed: ${stderr}`);
  const ids: Record<string, NodeIdentity> = {};
  for (const n of ['node-1', 'node-2', 'node-3'])
    ids[n] = await loadOrCreateIdentity(path.join(dir, 'cairn', n));
  const [, ...args] = compose.services.redis!.command.map(fill).map(local);
  const spawnServer = () =>
    spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir], {
      stdio: 'ignore',
    });
  let server = spawnServer();
  const clients: Redis[] = [];
  const as = (user: string, o: { enableReadyCheck?: boolean; scripts?: EvalshaOptions } = {}) => {
    const r = new Redis({
      port,
      host: '127.0.0.1',
      username: user,
      password: `${user}-pw`,
      maxRetriesPerRequest: null,
      enableReadyCheck: o.enableReadyCheck ?? true,
      retryStrategy: () => 50,
    });
    r.on('error', () => {});
    clients.push(r);
    return evalshaOnly(r, o.scripts);
  };
  const kill = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGKILL');
      await exited;
    }
  };
  await untilUp(port);
  return {
    port,
    dir,
    ids,
    as,
    get server() {
      return server;
    },
    restart: async () => {
      await kill();
      server = spawnServer();
      await untilUp(port);
    },
    close: async () => {
      for (const c of clients) c.disconnect();
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Until the health user's PING answers (it may only PING: no ready check, a fresh client per try). */
async function untilUp(port: number): Promise<void> {
  for (let i = 0; ; i++) {
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      username: 'health',
      password: 'health-pw',
      enableReadyCheck: false,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    probe.on('error', () => {});
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch (err) {
      probe.disconnect();
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** `p`'s value, or 'timeout' after `ms`. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
