#!/usr/bin/env node
import path from 'node:path';
import { parseArgs } from 'node:util';
import { NodeJobs } from '../jobs/node-jobs.ts';
import { SCHEDULED_JOBS, type ScheduledJob } from '../jobs/queues.ts';
import { startHttpApi } from './api/http.ts';
import { readNetworkConfig } from './config-file.ts';
import type { FlOptions } from './fl/net/service.ts';
import {
  CAPABILITIES,
  type Capability,
  loadOrCreateIdentity,
  ROLES,
  type Role,
} from './identity/identity.ts';
import { createLogger } from './log.ts';
import { loadOrCreateOwnNetwork } from './membership/create-network.ts';
import { CairnNode } from './node.ts';

const HELP = `cairn node — a headless Cairn node

usage: npm run node -- [options]

  --data-dir DIR          where identity, chain store and peer data live (default ./.data/node)
  --listen MULTIADDR      address to listen on; repeatable
                          (default /ip4/127.0.0.1/tcp/0; WebRTC: /ip4/127.0.0.1/udp/0/webrtc-direct)
  --bootstrap MULTIADDR   a peer to connect to at start (with /p2p/<id>); repeatable
  --mine                  mine blocks (adds the "mine" capability)
  --mdns                  discover peers by multicast DNS on the LAN (off by default)
  --role ROLE             ${ROLES.join(' | ')} (default submind; open networks only:
                          on a roster network the member certificate decides)
  --capabilities LIST     comma-separated: ${CAPABILITIES.join(', ')} (likewise)
  --network-config FILE   JSON overrides of the network config (block time, targets,
                          membership "roster" | "open", admins, members, …). Without it
                          the node uses <data-dir>/network.json, created on first start
                          as a new roster network with this node's key as its admin
  --ice-server URL        a STUN/TURN server for WebRTC; repeatable (default: none)
  --http-host HOST        status/metrics endpoint host (default 127.0.0.1)
  --http-port PORT        status/metrics endpoint port (default 0 = any free port)
  --reconcile-ms MS       mempool reconciliation period (default 15000; 0 = off)
  --redis URL             run the node's jobs (schedulers, admin commands, reports to the
                          collector) on this Redis, e.g. redis://127.0.0.1:6379 (default: none;
                          the node never needs Redis to stay in consensus)
  --schedule LIST         scheduler periods in ms, e.g. stats.report=5000,chain.sync=30000
                          (defaults: mempool.sync 15000, chain.sync 30000, stats.report 60000,
                          peers.refresh 60000)
  --fl-slice K            federated learning: train on slice K (0-based) of the corpus …
  --fl-slices N           … split into N slices (needs the "train" capability)
  --fl-split MODE         iid | label-skew (default iid)
  --fl-seed S             seed of the deterministic split (default 42; same on every node)
  --fl-decline            decline every federated round (policy)
  --fl-misbehave KIND     testing only: send an oversized | malformed masked update
  --fl-every MS           coordinate one federated round every MS ms (default: only on command)
  --fl-deadline MS        how long a coordinated round waits for masked updates (default 60000)
  --log-level LEVEL       trace | debug | info | warn | error (default info)
  --help                  this text

Logs are JSON lines on stdout; the line with "msg":"ready" carries peerId, addrs and httpUrl.
SIGINT or SIGTERM shut the node down cleanly.`;

function fail(message: string): never {
  process.stderr.write(`cairn node: ${message}\n\n${HELP}\n`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        'data-dir': { type: 'string', default: path.resolve('.data/node') },
        listen: { type: 'string', multiple: true },
        bootstrap: { type: 'string', multiple: true, default: [] },
        mine: { type: 'boolean', default: false },
        mdns: { type: 'boolean', default: false },
        role: { type: 'string', default: 'submind' },
        capabilities: { type: 'string', default: '' },
        'network-config': { type: 'string' },
        'ice-server': { type: 'string', multiple: true, default: [] },
        'http-host': { type: 'string', default: '127.0.0.1' },
        'http-port': { type: 'string', default: '0' },
        'reconcile-ms': { type: 'string', default: '15000' },
        'log-level': { type: 'string', default: 'info' },
        redis: { type: 'string' },
        schedule: { type: 'string', default: '' },
        'fl-slice': { type: 'string' },
        'fl-slices': { type: 'string' },
        'fl-split': { type: 'string', default: 'iid' },
        'fl-seed': { type: 'string', default: '42' },
        'fl-decline': { type: 'boolean', default: false },
        'fl-misbehave': { type: 'string' },
        'fl-every': { type: 'string', default: '0' },
        'fl-deadline': { type: 'string', default: '60000' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    });
  } catch (err) {
    fail((err as Error).message);
  }
})();

if (values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
if (!(ROLES as readonly string[]).includes(values.role)) fail(`unknown role "${values.role}"`);
const capabilities = values.capabilities
  .split(',')
  .map((c) => c.trim())
  .filter(Boolean);
for (const c of capabilities)
  if (!(CAPABILITIES as readonly string[]).includes(c)) fail(`unknown capability "${c}"`);
if (values.mine && !capabilities.includes('mine')) capabilities.push('mine');
const httpPort = Number(values['http-port']);
if (!Number.isInteger(httpPort) || httpPort < 0 || httpPort > 65535)
  fail('--http-port must be a port number');

const schedule: Partial<Record<ScheduledJob, number>> = {};
for (const item of values.schedule.split(',').filter(Boolean)) {
  const [name, ms] = item.split('=');
  if (!(SCHEDULED_JOBS as readonly string[]).includes(name ?? '')) fail(`unknown scheduled job "${name}"`);
  const n = Number(ms);
  if (!Number.isInteger(n) || n < 100) fail(`--schedule ${name} needs a period of at least 100 ms`);
  schedule[name as ScheduledJob] = n;
}

const intFlag = (name: string, v: string | undefined, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`--${name} needs an integer ≥ ${min}`);
  return n;
};
const sliceIndex = intFlag('fl-slice', values['fl-slice'], 0);
const sliceCount = intFlag('fl-slices', values['fl-slices'], 1);
if ((sliceIndex === undefined) !== (sliceCount === undefined)) fail('--fl-slice and --fl-slices go together');
if (sliceIndex !== undefined && sliceIndex >= sliceCount!) fail('--fl-slice must be below --fl-slices');
if (values['fl-split'] !== 'iid' && values['fl-split'] !== 'label-skew')
  fail('--fl-split is iid or label-skew');
const misbehave = values['fl-misbehave'];
if (misbehave !== undefined && misbehave !== 'oversized' && misbehave !== 'malformed')
  fail('--fl-misbehave is oversized or malformed');
const fl: FlOptions = {
  ...(sliceIndex !== undefined
    ? {
        slice: {
          index: sliceIndex,
          of: sliceCount!,
          mode: values['fl-split'],
          seed: intFlag('fl-seed', values['fl-seed'], 0)!,
        },
      }
    : {}),
  decline: values['fl-decline'],
  ...(misbehave ? { misbehave } : {}),
  everyMs: intFlag('fl-every', values['fl-every'], 0)!,
  deadlineMs: intFlag('fl-deadline', values['fl-deadline'], 100)!,
};

const log = createLogger(values['log-level']);

// Signals are handled from the first moment: one that arrives during start-up stops the node
// as soon as it is up, instead of killing it half-way through opening its store.
let requested: string | undefined;
let shutdown: (signal: string, exitCode?: number) => Promise<void> = async (signal) => {
  requested ??= signal;
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

const dataDir = path.resolve(values['data-dir']);
const network = values['network-config']
  ? await readNetworkConfig(values['network-config'])
  : await (async () => {
      const own = await loadOrCreateIdentity(dataDir);
      const r = await loadOrCreateOwnNetwork(dataDir, own.publicKeyHex);
      if (r.created) log.info({ file: r.file, admin: own.publicKeyHex }, 'created a new roster network');
      return r.config;
    })();
const node = await CairnNode.start({
  dataDir,
  listen: values.listen?.length ? values.listen : ['/ip4/127.0.0.1/tcp/0'],
  bootstrap: values.bootstrap,
  mine: values.mine,
  mdns: values.mdns,
  role: values.role as Role,
  capabilities: capabilities as Capability[],
  network,
  iceServers: values['ice-server'],
  reconcileIntervalMs: Number(values['reconcile-ms']),
  logger: log,
  fl,
});
const api = await startHttpApi(node, values['http-host'], httpPort);
const jobs = values.redis
  ? await NodeJobs.start({ node, redisUrl: values.redis, schedule, log: node.log.child({ part: 'jobs' }) })
  : undefined;
node.log.info(
  {
    peerId: node.identity.peerId.toString(),
    addrs: node.host.getMultiaddrs().map(String),
    httpUrl: api.url,
    height: node.chain.tip.height,
    mining: values.mine,
    redis: values.redis ?? null,
  },
  'ready',
);

/** Exit code after a failed store commit (EX_IOERR): a supervisor restarts the node once space is back. */
const EXIT_STORAGE_FAILED = 74;
/** How long a node whose store failed stays up to show why (status, metrics) before it exits. */
const STORAGE_FAILURE_EXIT_MS = 5_000;
node.chainService.once('storage-failed', (failure) => {
  node.log.error(
    { reason: failure.reason, committedHeight: failure.committedHeight, exitInMs: STORAGE_FAILURE_EXIT_MS },
    `store failed: exiting with code ${EXIT_STORAGE_FAILED}; a restart reopens at the last committed head`,
  );
  setTimeout(() => void shutdown('storage-failed', EXIT_STORAGE_FAILED), STORAGE_FAILURE_EXIT_MS).unref();
});

let stopping = false;
shutdown = async (signal: string, exitCode = 0) => {
  if (stopping) return;
  stopping = true;
  node.log.info({ signal }, 'shutting down');
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  api.server.close();
  api.server.closeAllConnections();
  await jobs?.stop();
  await node.stop();
  node.log.info({ exitCode }, 'stopped');
  process.exit(exitCode);
};
if (requested) void shutdown(requested);
