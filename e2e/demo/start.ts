/**
 * The local demo (`npm start`), and the same stack for the browser tests (`startDemo()` with
 * temp dirs and free ports): Redis (the one at REDIS_URL, or a redis-server started here), three
 * mining nodes on loopback bootstrapping to each other, the collector, the gateway with GraphiQL
 * and the built console, on the embedded SQLite index DB under the data dir.
 *
 * State lives in the data dir (default .data/demo): node-{1,2,3}/ (identity and chain store),
 * network.json (the demo chain's parameters, written once so a restart resumes the same chain),
 * index.db, tokens.json (the admin token, created on first start), redis.conf (the password of the
 * redis-server the demo starts when none answers, 0600), gateway/ (the gateway's key and
 * the certificate node-1, the network's admin, signs for it on every start as needed, so the
 * nodes obey the commands it signs) and one log file per process.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { redactUrl } from '../../jobs/redis.ts';
import { toHex } from '../../node/chain/bytes.ts';
import type { NetworkConfig } from '../../node/chain/network-config.ts';
import { targetForWork } from '../../node/chain/pow.ts';
import { ensureDeviceNetwork } from '../../node/membership/create-network.ts';
import {
  ensureGatewayCertificate,
  keyOfDataDir,
  loadOrCreateKeyFile,
} from '../../node/membership/gateway-member.ts';
import { which } from '../cluster/children.ts';
import { type TestNetworkConfig, testNetworkConfig } from '../cluster/network-config.ts';
import { nodeArgs, nodeBinary, parseReady, REPO_ROOT } from '../cluster/node-process.ts';
import { liveServices, portOrFree, Service } from '../cluster/service.ts';
import { collectorProcess, gatewayProcess } from '../cluster/service-process.ts';
import { DEMO_REDIS_CONFIG, HOW_TO_GET_REDIS, redisAnswers, redisIsOpen, startDemoRedis } from './redis.ts';
import { type ConsoleServer, startConsoleServer } from './serve-console.ts';

export const DEFAULT_DATA_DIR = path.join(REPO_ROOT, '.data/demo');
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** Demo block time: a block every few seconds, so the console always has something new. */
export const DEMO_BLOCK_TIME_MS = 3000;
/**
 * The first blocks' difficulty assumes ~150k hashes/s for the whole network: what three miners
 * manage on a busy 2-core laptop. A faster machine mines the first blocks quicker and the
 * retarget (every 10 blocks, ×4 at most) catches up within a few dozen blocks.
 */
const DEMO_START_HASHES_PER_MS = 150n;
/** Stats every 10 s instead of 60 s: the console's charts and node list move while you watch. */
export const DEMO_SCHEDULE = 'stats.report=10000';
/**
 * Every demo node trains on its slice of the spam corpus, and node-1 coordinates a federated
 * round this often, so the console's Models page fills while you watch.
 */
export const DEMO_FL_EVERY_MS = 30_000;

export interface DemoOptions {
  dataDir?: string;
  /** Redis to use (default REDIS_URL or redis://127.0.0.1:6379); started here if none answers. */
  redisUrl?: string;
  /**
   * Always start a private redis-server on a free port (tests: Redis pub/sub is server-wide, so
   * sharing a Redis with a running demo would mix both clusters' events and reports).
   */
  privateRedis?: boolean;
  /** Preferred ports; a taken one is replaced by a free one. 0 = any free port. */
  gatewayPort?: number;
  consolePort?: number;
  /** Index DB URL (default file:<dataDir>/index.db). */
  databaseUrl?: string;
  nodes?: number;
  /** Block time of a new demo chain (ignored when network.json already exists). */
  blockTimeMs?: number;
  /** Extra network-config fields of a new demo chain (tests pin the difficulty). */
  network?: TestNetworkConfig;
  /** Scheduler periods passed to the nodes (`--schedule`); default DEMO_SCHEDULE. */
  schedule?: string;
  /** Federated learning: node-1 coordinates a round this often (0 = no FL); default DEMO_FL_EVERY_MS. */
  flEveryMs?: number;
  /** Where progress lines go (default stderr). */
  log?: (line: string) => void;
  /** The built console to serve (default web/dist). */
  consoleDir?: string;
}

export interface DemoNode {
  readonly name: string;
  readonly service: Service;
  peerId: string;
  addrs: string[];
  httpUrl: string;
  /** The node API's token file: POSTs send its token (see nodeApiHeaders). */
  cookieFile?: string;
}

export interface Demo {
  readonly dataDir: string;
  /** False on the first start in this data dir (a new chain), true when resuming one. */
  readonly resumed: boolean;
  readonly redisUrl: string;
  /** True if this demo started the redis-server itself. */
  readonly ownRedis: boolean;
  readonly databaseUrl: string;
  readonly gatewayPort: number;
  /** HTTP (and, with ws:, graphql-ws) endpoint; GraphiQL in a browser. */
  readonly gatewayUrl: string;
  readonly consoleUrl: string;
  readonly adminToken: string;
  readonly nodes: readonly DemoNode[];
  /** Its own start() starts it again on the same port (after stop() or kill()). */
  readonly gateway: Service;
  readonly collector: Service;
  /** Stops everything: console, gateway, nodes, collector, then the redis-server if it is ours. */
  stop(): Promise<void>;
}

interface TokenFile {
  admin: { name: string; token: string; sha256: string; createdAt: string };
}

/** The demo's admin token: created once, kept in <dataDir>/tokens.json (mode 600). */
export function loadOrCreateToken(dataDir: string): TokenFile['admin'] {
  const file = path.join(dataDir, 'tokens.json');
  if (existsSync(file)) {
    const t = JSON.parse(readFileSync(file, 'utf8')) as Partial<TokenFile>;
    if (t.admin?.token && t.admin.sha256) return t.admin;
  }
  const token = `cairn_${randomBytes(24).toString('base64url')}`;
  const admin = {
    name: 'demo-admin',
    token,
    sha256: createHash('sha256').update(token, 'utf8').digest('hex'),
    createdAt: new Date().toISOString(),
  };
  writeFileSync(file, `${JSON.stringify({ admin }, null, 2)}\n`, { mode: 0o600 });
  return admin;
}

/**
 * The demo chain's parameters: written on first start, reused afterwards (same genesis, same
 * chain). A roster network, like every network Cairn creates: node-1 is its admin and the other
 * nodes are members, their identities created here before they first start.
 */
export function ensureNetworkConfig(
  dataDir: string,
  blockTimeMs: number,
  extra: TestNetworkConfig = {},
  nodeCount = 3,
): string {
  const config = testNetworkConfig({
    name: 'cairn-demo',
    genesisMessage: 'Cairn demo network',
    blockTimeMs,
    initialTarget: targetForWork(BigInt(blockTimeMs) * DEMO_START_HASHES_PER_MS),
    ...extra,
  });
  return ensureDeviceNetwork(
    dataDir,
    Array.from({ length: nodeCount }, (_, i) => `node-${i + 1}`),
    config as Partial<NetworkConfig>,
  );
}

/**
 * Node i (1-based) trains on slice i-1 of n; node-1 also coordinates the rounds. Record-level
 * DP-SGD (the node default, written out so the demo says what it runs): each node spends at most
 * its budget (ε = 3 at δ = 1e-5, 20 rounds of the default plan), then declines; POST /fl/budget
 * on a node's API raises it.
 */
const flArgs = (i: number, n: number, everyMs: number): string[] => [
  '--capabilities',
  'train',
  '--fl-mode',
  'record',
  '--fl-slice',
  String(i - 1),
  '--fl-slices',
  String(n),
  ...(i === 1 ? ['--fl-every', String(everyMs)] : []),
];

/** What the demo says when it runs on a Redis that takes commands from anyone (README: demo). */
export const OPEN_REDIS_WARNING = (url: string) =>
  [
    `WARNING: the Redis at ${redactUrl(url)} obeys clients without a password. Any local user can then`,
    '  stop the demo’s queues and reports (CONFIG SET requirepass, FLUSHALL, SHUTDOWN, CLIENT PAUSE) and',
    '  read every queued job; signatures still keep it from commanding a node or forging a report.',
    '  Give that Redis a password (requirepass) and start with REDIS_URL=redis://:PASSWORD@host:port,',
    '  or stop it: with none answering, npm start runs its own, with a password only it knows.',
  ].join('\n');

/** A Redis URL without its password, and the environment that gives a node the password. */
export function passwordApart(url: string): { url: string; env: Record<string, string> } {
  try {
    const u = new URL(url);
    if (!u.password) return { url, env: {} };
    const password = decodeURIComponent(u.password);
    u.password = '';
    return { url: u.toString(), env: { CAIRN_REDIS_PASSWORD: password } };
  } catch {
    return { url, env: {} };
  }
}

export async function startDemo(opts: DemoOptions = {}): Promise<Demo> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dataDir = path.resolve(opts.dataDir ?? DEFAULT_DATA_DIR);
  // Owner only, like a node's data dir: it holds the admin token, the gateway's key, the index
  // DB and logs; a dir made by an older demo is tightened too.
  for (const dir of ['', 'logs', 'gateway', 'collector'].map((d) => path.join(dataDir, d))) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }
  const logOf = (name: string) => path.join(dataDir, 'logs', `${name}.log`);
  const started: Service[] = [];
  let consoleServer: ConsoleServer | undefined;

  const stopAll = async () => {
    await consoleServer?.close();
    const byName = (n: string) => started.filter((s) => s.spec.name === n);
    const nodes = started.filter((s) => s.spec.name.startsWith('node-'));
    // Clients first, then the producers of reports, then their consumer, then the bus.
    for (const group of [byName('gateway'), nodes, byName('collector'), byName('redis')])
      await Promise.all(group.map((s) => s.stop()));
    await Promise.all(started.map((s) => s.closeLog()));
  };

  try {
    // ---- Redis ----
    let redisUrl = opts.redisUrl ?? process.env.REDIS_URL ?? DEFAULT_REDIS_URL;
    let ownRedis = false;
    if (opts.privateRedis) {
      const port = await portOrFree(0);
      log(`starting a private redis-server on 127.0.0.1:${port}`);
      const own = await startDemoRedis(port, logOf('redis'), dataDir);
      started.push(own.service);
      redisUrl = own.url;
      ownRedis = true;
    } else if (await redisAnswers(redisUrl)) {
      if (await redisIsOpen(redisUrl)) log(OPEN_REDIS_WARNING(redisUrl));
    } else {
      const u = new URL(redisUrl);
      const local = ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) && !u.password;
      if (!local || !which('redis-server'))
        throw new Error(
          `no Redis answers at ${redisUrl}${local ? ' and redis-server is not installed' : ''}.\n${HOW_TO_GET_REDIS}`,
        );
      log(
        `no Redis at ${redisUrl}: starting redis-server on 127.0.0.1:${u.port || 6379} (password in ${DEMO_REDIS_CONFIG})`,
      );
      const own = await startDemoRedis(Number(u.port || 6379), logOf('redis'), dataDir);
      started.push(own.service);
      redisUrl = own.url;
      ownRedis = true;
    }

    // ---- index DB, token, network ----
    const databaseUrl = opts.databaseUrl ?? `file:${path.join(dataDir, 'index.db')}`;
    const token = loadOrCreateToken(dataDir);
    const resumed = existsSync(path.join(dataDir, 'network.json'));
    const networkConfig = ensureNetworkConfig(
      dataDir,
      opts.blockTimeMs ?? DEMO_BLOCK_TIME_MS,
      opts.network,
      opts.nodes ?? 3,
    );
    const env = { REDIS_URL: redisUrl, DATABASE_URL: databaseUrl };
    // The gateway's own key, admitted by node-1 (the admin): nodes run only commands it signs.
    const gatewayId = await ensureGatewayCertificate({
      keyFile: path.join(dataDir, 'gateway', 'identity.json'),
      certificateFile: path.join(dataDir, 'gateway', 'certificate.hex'),
      networkFile: networkConfig,
      admin: keyOfDataDir(path.join(dataDir, 'node-1')),
      name: 'demo-gateway',
    });
    if (gatewayId.issued)
      log(`admitted the gateway's key ${gatewayId.publicKeyHex.slice(0, 16)}… (certificate by node-1)`);

    // The collector and the gateway start while the nodes come up (they only need Redis and
    // the index DB); the nodes start one after another, each bootstrapping from those before it.
    // The collector's receipt key: nodes count a report delivered only on its signed receipt
    // (jobs/report-receipt.ts), not on a job state any Redis client can write.
    const collectorKeyFile = path.join(dataDir, 'collector', 'identity.json');
    const collectorKey = toHex(loadOrCreateKeyFile(collectorKeyFile).publicKey);
    const collector = collectorProcess(
      logOf('collector'),
      { ...env, CAIRN_NETWORK_CONFIG: networkConfig, CAIRN_COLLECTOR_KEY_FILE: collectorKeyFile },
      { detached: true },
    );
    const gatewayPort = await portOrFree(opts.gatewayPort ?? 4000);
    const gatewayBase = `http://127.0.0.1:${gatewayPort}`;
    // Picked now: the gateway's CORS and WebSocket allow-list is the console's own origin.
    const consolePort = await portOrFree(opts.consolePort ?? 5173);
    const gateway = gatewayProcess(
      logOf('gateway'),
      gatewayPort,
      {
        ...env,
        CAIRN_TOKENS: `${token.name}=admin:${token.sha256}`,
        CAIRN_CORS_ORIGINS: `http://127.0.0.1:${consolePort},http://localhost:${consolePort}`,
        CAIRN_GATEWAY_KEY: gatewayId.keyFile,
        CAIRN_GATEWAY_CERTIFICATE: gatewayId.certificateFile,
      },
      { detached: true },
    );
    started.push(collector, gateway);
    log(`starting the collector and the gateway (${gatewayBase}/graphql)`);
    const services = Promise.all([collector.start(), gateway.start()]);
    services.catch(() => {});

    const nodeRedis = passwordApart(redisUrl);
    const nodes: DemoNode[] = [];
    const nodeCount = opts.nodes ?? 3;
    const flEveryMs = opts.flEveryMs ?? DEMO_FL_EVERY_MS;
    for (let i = 1; i <= nodeCount; i++) {
      const name = `node-${i}`;
      const bootstrap = nodes.flatMap((n) => n.addrs);
      const node: DemoNode = {
        name,
        peerId: '',
        addrs: [],
        httpUrl: '',
        service: new Service({
          name,
          command: nodeBinary(),
          args: nodeArgs({
            dataDir: path.join(dataDir, name),
            listen: ['/ip4/127.0.0.1/tcp/0'],
            bootstrap,
            mine: true,
            mdns: false,
            httpPort: 0,
            networkConfig,
            args: [
              // A command line is readable by every local user (ps); the password goes in the
              // child's environment (owner only), which the node reads (withRedisPassword).
              '--redis',
              nodeRedis.url,
              '--collector-keys',
              collectorKey,
              '--schedule',
              opts.schedule ?? DEMO_SCHEDULE,
              ...(flEveryMs > 0 ? flArgs(i, nodeCount, flEveryMs) : []),
            ],
          }),
          env: nodeRedis.env,
          logFile: logOf(name),
          readyLine: (l) => parseReady(l) !== undefined,
          detached: true,
        }),
      };
      const off = node.service.onLine((l) => {
        const ready = parseReady(l);
        if (ready) Object.assign(node, ready);
      });
      started.push(node.service);
      log(
        `starting ${name}${bootstrap.length ? ` (bootstrap: ${nodes.map((n) => n.name).join(', ')})` : ''}`,
      );
      await node.service.start();
      off();
      nodes.push(node);
    }
    await services;
    // The collector created the index DB (SQLite: the file and its journals) with the umask's mode.
    if (databaseUrl.startsWith('file:'))
      for (const suffix of ['', '-wal', '-shm', '-journal']) {
        const file = `${databaseUrl.slice('file:'.length)}${suffix}`;
        if (existsSync(file)) chmodSync(file, 0o600);
      }

    const gatewayUrl = `${gatewayBase}/graphql`;
    consoleServer = await startConsoleServer({
      dir: opts.consoleDir,
      port: consolePort,
      gatewayUrl,
    });

    const cs = consoleServer;
    return {
      dataDir,
      resumed,
      redisUrl,
      ownRedis,
      databaseUrl,
      gatewayPort,
      gatewayUrl,
      consoleUrl: cs.url,
      adminToken: token.token,
      nodes,
      gateway,
      collector,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** What `npm start` prints once everything is up (secrets but the admin token redacted). */
export function bannerLines(demo: Demo, height: number): string[] {
  return [
    '',
    `Cairn demo is up${demo.resumed ? ` (resumed the chain in ${demo.dataDir}, height ${height})` : ' (a new chain)'}:`,
    '',
    `  Console         ${demo.consoleUrl}`,
    `  GraphQL         ${demo.gatewayUrl}   (GraphiQL in a browser, graphql-ws on the same URL)`,
    `  Admin token     ${demo.adminToken}`,
    `                  (paste it in the console's Admin page, or: -H 'Authorization: Bearer <token>')`,
    `  Redis           ${redactUrl(demo.redisUrl)}${demo.ownRedis ? ' (started by the demo)' : ''}`,
    `  Index DB        ${demo.databaseUrl}`,
    ...demo.nodes.map((n) => `  ${n.name.padEnd(15)} ${n.httpUrl}/status   peer ${n.peerId}`),
    `  Data and logs   ${demo.dataDir}  (logs/)`,
    '',
    `Every node trains on a slice of the spam corpus; node-1 starts a federated round every ${DEMO_FL_EVERY_MS / 1000} s`,
    'with record-level DP-SGD: each node stops at its privacy budget (ε = 3; GET /fl/privacy, POST /fl/budget)',
    "(the console's Models page shows the versions; startFederatedRound in GraphiQL starts more).",
    '',
    'Ctrl-C stops everything; npm start again resumes the same chain.',
    '',
  ];
}

async function main(): Promise<void> {
  // Ctrl-C while starting: stop what is up so far (the children are in their own process group).
  const early = () => {
    void Promise.all(liveServices().map((s) => s.stop({ timeoutMs: 5000 }))).then(() => process.exit(130));
  };
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  const demo = await startDemo({
    dataDir: process.env.CAIRN_DEMO_DIR,
    databaseUrl: process.env.DATABASE_URL,
    gatewayPort: Number(process.env.PORT ?? 4000),
    consolePort: Number(process.env.CONSOLE_PORT ?? 5173),
  });
  const heights = await Promise.all(
    demo.nodes.map(async (n) => {
      try {
        return ((await (await fetch(`${n.httpUrl}/status`)).json()) as { height?: number }).height ?? 0;
      } catch {
        return 0;
      }
    }),
  );
  process.stdout.write(`${bannerLines(demo, Math.max(...heights)).join('\n')}\n`);

  const watch = setInterval(() => {
    for (const s of [demo.collector, demo.gateway, ...demo.nodes.map((n) => n.service)])
      if (s.exit && !s.stopping) {
        s.stopping = true;
        process.stderr.write(
          `\n${s.spec.name} exited unexpectedly (${JSON.stringify(s.exit)}); its log: ${s.spec.logFile}\n  ${s.recentLog(10).join('\n  ')}\n`,
        );
      }
  }, 1000);

  process.off('SIGINT', early);
  process.off('SIGTERM', early);
  let stoppingSince = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stoppingSince) {
      // npm forwards the terminal's SIGINT that this process also got: ignore the echo; a
      // Ctrl-C pressed again later means "no more waiting".
      if (Date.now() - stoppingSince < 2000) return;
      process.stdout.write('second signal: killing what is left\n');
      for (const s of liveServices()) void s.kill();
      process.exit(130);
    }
    stoppingSince = Date.now();
    clearInterval(watch);
    process.stdout.write(
      `\n${sig}: stopping the gateway, the nodes, the collector${demo.ownRedis ? ' and redis' : ''}…\n`,
    );
    void demo.stop().then(
      () => {
        process.stdout.write('stopped.\n');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`stop failed: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) {
  main().catch((err: unknown) => {
    process.stderr.write(`\nnpm start failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
