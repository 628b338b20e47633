#!/usr/bin/env node
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import { toHex } from '../../node/chain/bytes.ts';
import { chainIdHex, DEFAULT_NETWORK } from '../../node/chain/network-config.ts';
import { readNetworkConfig } from '../../node/config-file.ts';
import { createLogger } from '../../node/log.ts';
import { loadOrCreateKeyFile } from '../../node/membership/gateway-member.ts';
import { indexDbLocation, openIndexDb } from '../index-db/open.ts';
import { createCairnPubSub } from '../pubsub.ts';
import { redactUrl, redisUrl } from '../redis.ts';
import { Collector } from './collector.ts';

/**
 * The collector process: reports from the nodes (Redis) → index DB → subscription events.
 * Env: REDIS_URL, DATABASE_URL (file:… or postgres://…; default .data/index.db),
 * CAIRN_NETWORK_CONFIG (the network.json the nodes run with: the collector indexes only blocks
 * of that network, checked against its rules and genesis roster; default the node's built-in
 * network), COLLECTOR_METRICS_PORT (Prometheus /metrics and /health on 127.0.0.1; default 0 =
 * any free port), COLLECTOR_STATS_RAW_MS / COLLECTOR_STATS_BUCKET_MS / COLLECTOR_REPORT_LOG_MS
 * (retention: stats kept as reported for 24 h, then one per hour; report log 7 days; see
 * retention.ts), CAIRN_COLLECTOR_KEY_FILE (an identity file, created when absent: the key that signs
 * a receipt for every report judged; nodes given its public key with --collector-keys count only
 * receipted reports delivered, see report-receipt.ts), LOG_LEVEL. SIGINT/SIGTERM close it cleanly.
 */
const log = createLogger(process.env.LOG_LEVEL ?? 'info', { part: 'collector' });
const networkFile = process.env.CAIRN_NETWORK_CONFIG;
const network = networkFile ? await readNetworkConfig(networkFile) : DEFAULT_NETWORK;
const location = indexDbLocation();
const db = await openIndexDb(location);
const url = redisUrl();
const { pubsub, close: closePubSub } = createCairnPubSub(url);
const registry = new Registry();
collectDefaultMetrics({ register: registry });
const ms = (name: string): number | undefined => {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a whole number of milliseconds`);
  return n;
};
const retention = {
  rawMs: ms('COLLECTOR_STATS_RAW_MS'),
  bucketMs: ms('COLLECTOR_STATS_BUCKET_MS'),
  reportLogMs: ms('COLLECTOR_REPORT_LOG_MS'),
};
const keyFile = process.env.CAIRN_COLLECTOR_KEY_FILE;
const receiptKey = keyFile ? loadOrCreateKeyFile(keyFile) : undefined;
const collector = new Collector({
  receiptKey,
  db,
  pubsub,
  redisUrl: url,
  log,
  registry,
  network,
  retention: Object.fromEntries(Object.entries(retention).filter(([, v]) => v !== undefined)),
});

const server = createServer(async (req, res) => {
  if (req.url === '/metrics') {
    res.setHeader('content-type', registry.contentType);
    res.end(await registry.metrics());
  } else if (req.url === '/health') {
    res.end('ok');
  } else {
    res.statusCode = 404;
    res.end();
  }
});
await new Promise<void>((resolve) =>
  server.listen(Number(process.env.COLLECTOR_METRICS_PORT ?? 0), '127.0.0.1', resolve),
);
const port = (server.address() as AddressInfo).port;
log.info(
  {
    db: location.provider,
    redis: redactUrl(url),
    network: network.name,
    chainId: chainIdHex(network),
    membership: network.membership,
    receiptKey: receiptKey ? toHex(receiptKey.publicKey) : null,
    metricsUrl: `http://127.0.0.1:${port}/metrics`,
  },
  'ready',
);

let stopping = false;
const shutdown = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  setTimeout(() => process.exit(1), 10_000).unref();
  server.close();
  await collector.close();
  await closePubSub();
  await db.$disconnect();
  log.info('stopped');
  process.exit(0);
};
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
