#!/usr/bin/env node
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startHttpApi } from './api/http.ts';
import { DEFAULT_NETWORK } from './chain/network-config.ts';
import { readNetworkConfig } from './config-file.ts';
import { CAPABILITIES, type Capability, ROLES, type Role } from './identity/identity.ts';
import { createLogger } from './log.ts';
import { CairnNode } from './node.ts';

const HELP = `cairn node — a headless Cairn node

usage: npm run node -- [options]

  --data-dir DIR          where identity, chain store and peer data live (default ./.data/node)
  --listen MULTIADDR      address to listen on; repeatable
                          (default /ip4/127.0.0.1/tcp/0; WebRTC: /ip4/127.0.0.1/udp/0/webrtc-direct)
  --bootstrap MULTIADDR   a peer to connect to at start (with /p2p/<id>); repeatable
  --mine                  mine blocks (adds the "mine" capability)
  --mdns                  discover peers by multicast DNS on the LAN (off by default)
  --role ROLE             ${ROLES.join(' | ')} (default submind)
  --capabilities LIST     comma-separated: ${CAPABILITIES.join(', ')}
  --network-config FILE   JSON overrides of the network config (block time, targets, …)
  --ice-server URL        a STUN/TURN server for WebRTC; repeatable (default: none)
  --http-host HOST        status/metrics endpoint host (default 127.0.0.1)
  --http-port PORT        status/metrics endpoint port (default 0 = any free port)
  --reconcile-ms MS       mempool reconciliation period (default 15000; 0 = off)
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

const log = createLogger(values['log-level']);

// Signals are handled from the first moment: one that arrives during start-up stops the node
// as soon as it is up, instead of killing it half-way through opening its store.
let requested: string | undefined;
let shutdown: (signal: string) => Promise<void> = async (signal) => {
  requested ??= signal;
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

const network = values['network-config']
  ? await readNetworkConfig(values['network-config'])
  : DEFAULT_NETWORK;
const node = await CairnNode.start({
  dataDir: path.resolve(values['data-dir']),
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
});
const api = await startHttpApi(node, values['http-host'], httpPort);
node.log.info(
  {
    peerId: node.identity.peerId.toString(),
    addrs: node.host.getMultiaddrs().map(String),
    httpUrl: api.url,
    height: node.chain.tip.height,
    mining: values.mine,
  },
  'ready',
);

let stopping = false;
shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  node.log.info({ signal }, 'shutting down');
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  api.server.close();
  api.server.closeAllConnections();
  await node.stop();
  node.log.info('stopped');
  process.exit(0);
};
if (requested) void shutdown(requested);
