import { loadCommandSigner } from '../jobs/command-signer.ts';
import { indexDbLocation } from '../jobs/index-db/open.ts';
import { redisUrl } from '../jobs/redis.ts';
import { toHex } from '../node/chain/bytes.ts';
import { createLogger } from '../node/log.ts';
import { gatewayEnvOptions } from './env-options.ts';
import { startGatewayServer } from './server.ts';

/**
 * `npm run gateway`. Env: PORT (4000), HOST (127.0.0.1), REDIS_URL, DATABASE_URL (SQLite file or
 * postgres URL), CAIRN_GATEWAY_CONFIG (JSON file: tokens, requireViewer, adminTimeoutMs),
 * CAIRN_TOKENS (role:sha256hex,…), CAIRN_REQUIRE_VIEWER=1, LOG_LEVEL, NODE_ENV=production, the
 * overrides of production defaults in env-options.ts (CAIRN_CORS_ORIGINS, CAIRN_ALLOWED_HOSTS,
 * CAIRN_TOKEN_RATE, CAIRN_ANON_RATE, …),
 * CAIRN_GATEWAY_KEY / CAIRN_GATEWAY_CERTIFICATE (the key admin commands are signed with and its
 * roster certificate: jobs/command-signer.ts).
 */
const log = createLogger(process.env.LOG_LEVEL ?? 'info', { component: 'gateway' });

async function main(): Promise<void> {
  const settings = gatewayEnvOptions();
  const location = indexDbLocation();
  // Created on first start; nodes run its commands once an admin admits it (a certificate, or
  // --command-keys on open networks), so its public key is logged.
  const signer = loadCommandSigner();
  // The server opens (and on close() closes) the index DB, the pub/sub bus and the admin client.
  const server = await startGatewayServer({
    port: Number(process.env.PORT ?? 4000),
    host: process.env.HOST ?? '127.0.0.1',
    redisUrl: redisUrl(),
    location,
    ...settings,
    signer,
    logger: log,
  });
  log.info(
    {
      event: 'ready',
      url: server.url,
      ws: server.wsUrl,
      db: location.provider,
      tokens: settings.tokens.length,
      commandKey: toHex(signer.key.publicKey),
      commandKeyFile: signer.keyFile,
      certificate: signer.certificateFile ?? null,
    },
    'gateway ready',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'gateway stopping');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err: unknown) => {
  log.fatal({ err }, 'gateway failed to start');
  process.exit(1);
});
