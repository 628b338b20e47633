/**
 * The services `npm test` needs — Redis (BullMQ, pub/sub) and PostgreSQL (the index DB's second
 * provider) — found where the suite expects them, or started privately from installed server
 * binaries, or else reported with one message naming what is missing and how to get it.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { TEST_POSTGRES_URL } from '../../jobs/index-db/testing.ts';
import { redactUrl, redisUrl } from '../../jobs/redis.ts';
import { isExecutable, which } from '../cluster/children.ts';
import { portOrFree, Service } from '../cluster/service.ts';
import { HOW_TO_GET_REDIS, redisAnswers, startRedisServer } from '../demo/redis.ts';

export { redisAnswers };

const execFileAsync = promisify(execFile);

/** True if a PostgreSQL server accepts a connection at `url` within `timeoutMs`. */
export async function postgresAnswers(url: string, timeoutMs = 2000): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export const HOW_TO_GET_POSTGRES = [
  'The index-DB tests need PostgreSQL (they create and drop their own databases; trust auth for user postgres).',
  '  • Debian/Ubuntu:  sudo apt-get install postgresql, then sudo pg_ctlcluster <version> main start',
  '  • macOS:          brew install postgresql@16 && brew services start postgresql@16',
  '  • a running one:  TEST_POSTGRES_URL=postgresql://user@host:5432/postgres npm test',
  'With the server binaries installed (initdb, postgres) and none running, npm test starts a private one.',
].join('\n');

export const REDIS_FOR_TESTS = HOW_TO_GET_REDIS.replaceAll('npm start', 'npm test');

/** Directories that hold `initdb` and `postgres`: PATH, then Debian's and Homebrew's layouts. */
export function postgresBinDirs(
  env: NodeJS.ProcessEnv = process.env,
  listDir: (dir: string) => string[] = safeReaddir,
): string[] {
  const dirs = (env.PATH ?? '').split(path.delimiter).filter(Boolean);
  const versioned = (root: string, prefix: string, suffix: string) =>
    listDir(root)
      .filter((n) => n.startsWith(prefix))
      .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }))
      .map((n) => path.join(root, n, suffix));
  return [
    ...dirs,
    ...versioned('/usr/lib/postgresql', '', 'bin'),
    ...versioned('/opt/homebrew/opt', 'postgresql', 'bin'),
    ...versioned('/usr/local/opt', 'postgresql', 'bin'),
  ];
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The first directory with both server binaries. */
export function findPostgresBin(dirs: readonly string[] = postgresBinDirs()): string | undefined {
  return dirs.find((d) => isExecutable(path.join(d, 'initdb')) && isExecutable(path.join(d, 'postgres')));
}

/** A private PostgreSQL server: its address, its process, and what a restart needs. */
export interface PrivatePostgres {
  readonly url: string;
  readonly port: number;
  /** The cluster's data directory, kept across a stop: `service.start()` restarts on it, same port. */
  readonly dataDir: string;
  /** The postmaster (under runuser as root); `start()` after a stop is a restart. */
  readonly service: Service;
  /**
   * PostgreSQL's fast shutdown (`pg_ctl stop -m fast`): every client is disconnected, open
   * transactions roll back, a checkpoint is written; what an operator's restart does. (A SIGTERM
   * to the Service is a smart shutdown, which waits for clients, and as root runuser follows it
   * with SIGKILL after 2 s.)
   */
  stopFast(): Promise<void>;
  /** Stops the server (fast) and deletes its directory. */
  remove(): Promise<void>;
}

/**
 * A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, no fsync) in a temp dir, killed with
 * the suite. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
 */
export async function startPrivatePostgres(binDir: string, logFile: string): Promise<PrivatePostgres> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  let prefix: string[] = [];
  if (asRoot) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const runuser = which('runuser');
    if (id.status !== 0 || !runuser)
      throw new Error(
        'running as root, and there is no postgres user (or runuser) to run a private PostgreSQL as',
      );
    const uid = Number(id.stdout.trim());
    chownSync(dir, uid, -1);
    prefix = [runuser, '-u', 'postgres', '--'];
  }
  const run = (cmd: string, args: string[]) =>
    (prefix.length ? [prefix[0]!, [...prefix.slice(1), cmd, ...args]] : [cmd, args]) as [string, string[]];
  const [initCmd, initArgs] = run(path.join(binDir, 'initdb'), [
    '-D',
    data,
    '-A',
    'trust',
    '-U',
    'postgres',
    '-E',
    'UTF8',
    '--locale=C',
    '--no-sync',
  ]);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${(init.stderr || init.stdout).trim()}`);
  const port = await portOrFree(0);
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const [cmd, args] = run(path.join(binDir, 'postgres'), [
    '-D',
    data,
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
    '-c',
    'max_connections=200',
  ]);
  const service = new Service({
    name: 'postgres',
    command: cmd,
    args,
    logFile,
    track: true,
    ready: () => postgresAnswers(url, 500),
    readyTimeoutMs: 30_000,
  });
  await service.start();
  const stopFast = async () => {
    if (!service.running) return;
    const [ctl, ctlArgs] = run(path.join(binDir, 'pg_ctl'), [
      'stop',
      '-D',
      data,
      '-m',
      'fast',
      '-w',
      '-t',
      '30',
    ]);
    await execFileAsync(ctl, ctlArgs).catch((err: Error & { stderr?: string }) => {
      throw new Error(`pg_ctl stop failed: ${(err.stderr || err.message).trim()}`);
    });
    // The postmaster is gone; this reaps runuser (or returns its exit at once).
    await service.stop({ timeoutMs: 5_000 });
  };
  return {
    url,
    port,
    dataDir: data,
    service,
    stopFast,
    remove: async () => {
      await stopFast().catch(() => service.kill());
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export type ServiceCheck =
  | {
      readonly ok: true;
      readonly env: Record<string, string>;
      readonly started: Service[];
      readonly notes: string[];
    }
  | { readonly ok: false; readonly message: string };

export interface ServiceCheckOptions {
  readonly redisUrl?: string;
  readonly postgresUrl?: string;
  /** Where private services write their logs. */
  readonly logDir: string;
  /** Starts private servers when none answers (default true). */
  readonly startPrivate?: boolean;
  readonly postgresBin?: string | undefined;
}

/**
 * Redis at REDIS_URL and PostgreSQL at TEST_POSTGRES_URL, or private ones; the env the tests
 * then need. Redis's server binary is required either way: the cluster tests start their own.
 */
export async function ensureServices(opts: ServiceCheckOptions): Promise<ServiceCheck> {
  const env: Record<string, string> = {};
  const started: Service[] = [];
  const notes: string[] = [];
  const missing: string[] = [];
  const rUrl = opts.redisUrl ?? redisUrl();
  const pgUrl = opts.postgresUrl ?? TEST_POSTGRES_URL;
  const startPrivate = opts.startPrivate ?? true;

  const redisBin = which('redis-server');
  if (!redisBin) {
    missing.push(`redis-server is not installed (the cluster tests start private ones).\n${REDIS_FOR_TESTS}`);
  } else if (!(await redisAnswers(rUrl))) {
    if (startPrivate) {
      const port = await portOrFree(0);
      started.push(await startRedisServer(port, path.join(opts.logDir, 'redis.log'), opts.logDir));
      env.REDIS_URL = `redis://127.0.0.1:${port}`;
      notes.push(`no Redis at ${rUrl}: started a private redis-server at ${env.REDIS_URL}`);
    } else missing.push(`no Redis answers at ${rUrl}.\n${REDIS_FOR_TESTS}`);
  }

  if (!(await postgresAnswers(pgUrl))) {
    const bin = 'postgresBin' in opts ? opts.postgresBin : findPostgresBin();
    if (startPrivate && bin) {
      try {
        const pgPrivate = await startPrivatePostgres(bin, path.join(opts.logDir, 'postgres.log'));
        started.push(pgPrivate.service);
        env.TEST_POSTGRES_URL = pgPrivate.url;
        notes.push(
          `no PostgreSQL at ${redactUrl(pgUrl)}: started a private one from ${bin} at ${pgPrivate.url}`,
        );
      } catch (err) {
        missing.push(
          `no PostgreSQL answers at ${redactUrl(pgUrl)}, and a private one could not start: ${(err as Error).message}\n${HOW_TO_GET_POSTGRES}`,
        );
      }
    } else missing.push(`no PostgreSQL answers at ${redactUrl(pgUrl)}.\n${HOW_TO_GET_POSTGRES}`);
  }

  if (missing.length) {
    await Promise.allSettled(started.map((s) => s.stop()));
    return { ok: false, message: missing.join('\n\n') };
  }
  return { ok: true, env, started, notes };
}
