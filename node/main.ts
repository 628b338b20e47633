#!/usr/bin/env node
import { existsSync } from 'node:fs';
import path from 'node:path';
import { redactUrl } from '../jobs/redis-url.ts';
import { createApiCookie, removeApiCookie } from './api/cookie.ts';
import { startHttpApi } from './api/http.ts';
import { chainIdHex } from './chain/network-config.ts';
import { runClassify } from './cli/classify.ts';
import { runInvite } from './cli/invite.ts';
import { JoinError, joinNetwork, NETWORK_FILE, readInviterAddrs } from './cli/join.ts';
import { runMsg } from './cli/msg.ts';
import { removeNodeFile, writeNodeFile } from './cli/node-file.ts';
import { readNetworkConfig } from './config-file.ts';
import { nodeControl } from './control.ts';
import { prepareDataDir } from './data-dir.ts';
import { loadOrCreateIdentity } from './identity/identity.ts';
import { createLogger } from './log.ts';
import { loadOrCreateOwnNetwork } from './membership/create-network.ts';
import { CairnNode } from './node.ts';
import { OptionError } from './option-spec.ts';
import { HELP, parseNodeArgs } from './options.ts';

function fail(message: string): never {
  process.stderr.write(`cairn node: ${message}\n(npm run node -- --help lists the options)\n`);
  process.exit(2);
}

// Subcommands that work next to a node: `invite` (on an admin's machine), `classify` (asks the
// running node's model) and `join` (on a new device: redeems the invitation, then runs the node
// on the joined network).
const argv = process.argv.slice(2);
if (argv[0] === 'invite') process.exit(await runInvite(argv.slice(1)));
if (argv[0] === 'classify') process.exit(await runClassify(argv.slice(1)));
if (argv[0] === 'msg') process.exit(await runMsg(argv.slice(1)));
const joining = argv[0] === 'join' ? argv.slice(1) : undefined;
if (joining && (joining[0] === undefined || joining[0].startsWith('--')))
  fail('join needs the invitation: npm run node -- join <invitation> --data-dir DIR');

const cli = (() => {
  try {
    return parseNodeArgs(joining ? joining.slice(1) : argv);
  } catch (err) {
    if (err instanceof OptionError) fail(err.message);
    throw err;
  }
})();
if (cli.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const config = cli.config;

const log = createLogger(config.logLevel);

// Signals are handled from the first moment: one that arrives during start-up stops the node
// as soon as it is up, instead of killing it half-way through opening its store.
let requested: string | undefined;
let shutdown: (signal: string, exitCode?: number) => Promise<void> = async (signal) => {
  requested ??= signal;
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

const dataDir = path.resolve(config.dataDir);
await prepareDataDir(dataDir);
let networkConfigFile = config.networkConfig;
let bootstrap = config.bootstrap;
if (joining) {
  try {
    const joined = await joinNetwork(joining[0]!, dataDir, log.child({ part: 'join' }));
    networkConfigFile ??= joined.networkConfigFile;
    bootstrap = [...bootstrap, ...joined.bootstrap];
  } catch (err) {
    if (!(err instanceof JoinError)) throw err;
    process.stderr.write(`cairn node join: ${err.message}\n`);
    process.exit(1);
  }
} else {
  // A joined device keeps its inviter as a bootstrap peer on every start (node/cli/join.ts).
  bootstrap = [...new Set([...bootstrap, ...(await readInviterAddrs(dataDir))])];
}
// A data dir that joined a network (or was given one before) keeps its config.
const savedNetwork = path.join(dataDir, NETWORK_FILE);
if (!networkConfigFile && existsSync(savedNetwork)) networkConfigFile = savedNetwork;
// Otherwise a new data dir starts a network of its own: a roster network with this node's key
// as its first admin, kept in <data-dir>/network.json (so a restart resumes the same chain).
const network = networkConfigFile
  ? await readNetworkConfig(networkConfigFile)
  : await (async () => {
      const own = await loadOrCreateIdentity(dataDir);
      const r = await loadOrCreateOwnNetwork(dataDir, own.publicKeyHex);
      if (r.created) log.info({ file: r.file, admin: own.publicKeyHex }, 'created a new roster network');
      return r.config;
    })();
const node = await CairnNode.start({
  dataDir,
  listen: config.listen,
  bootstrap,
  mine: config.mine,
  mdns: config.mdns,
  role: config.role,
  capabilities: config.capabilities,
  network,
  iceServers: config.iceServers,
  relays: config.relays,
  relayLimits: config.relayLimits,
  announce: config.announce,
  reconcileIntervalMs: config.reconcileIntervalMs,
  p2p: config.p2p,
  peers: config.peers,
  sync: config.sync,
  gossip: config.gossip,
  logger: log,
  fl: config.fl,
});
// Written before the API listens, so a client that sees the port can always read the token.
const cookie = await createApiCookie(dataDir);
const api = await startHttpApi(
  {
    control: nodeControl(node),
    messaging: node.messaging,
    registry: node.metrics.registry,
    log: node.log.child({ part: 'api' }),
  },
  config.http.host,
  config.http.port,
  {
    token: cookie.token,
    allowHosts: config.http.allowHosts,
  },
);
if (!/^(127\.|::1$|localhost$)/.test(config.http.host))
  node.log.warn(
    { httpHost: config.http.host },
    'the node API listens beyond loopback (--http-host): anyone who can reach it can read status and metrics; POST still needs the cookie token',
  );
const { redisUrl, schedule, commandKeys, collectorKeys, allowOperatorMessages } = config.jobs;
// Loaded only with --redis: BullMQ and ioredis are ~45 MB of RSS a standalone node never uses.
const jobs = redisUrl
  ? await (await import('../jobs/node-jobs.ts')).NodeJobs.start({
      node,
      redisUrl,
      schedule,
      commandKeys,
      collectorKeys,
      allowOperatorMessages,
      log: node.log.child({ part: 'jobs' }),
    })
  : undefined;
node.log.info(
  {
    peerId: node.identity.peerId.toString(),
    addrs: node.host.getMultiaddrs().map(String),
    httpUrl: api.url,
    // The API token's file (POST needs it as a bearer token), as bitcoind prints its .cookie.
    cookieFile: cookie.file,
    height: node.chain.tip.height,
    mining: config.mine,
    redis: redisUrl ? redactUrl(redisUrl) : null,
  },
  'ready',
);
await writeNodeFile(dataDir, {
  pid: process.pid,
  peerId: node.identity.peerId.toString(),
  addrs: node.host.getMultiaddrs().map(String),
  chainIdHex: chainIdHex(network),
  httpUrl: api.url,
});

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
  await removeNodeFile(dataDir).catch(() => {});
  await removeApiCookie(cookie).catch(() => {});
  node.log.info({ exitCode }, 'stopped');
  process.exit(exitCode);
};
if (requested) void shutdown(requested);
