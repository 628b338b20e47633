import { AdminClient } from '../jobs/admin-client.ts';
import { loadCommandSigner } from '../jobs/command-signer.ts';
import { openIndexDb } from '../jobs/index-db/open.ts';
import { createCairnPubSub } from '../jobs/pubsub.ts';
import { redisUrl } from '../jobs/redis.ts';
import { gatewayEnvOptions } from './env-options.ts';
import { createGateway, type Gateway } from './gateway.ts';

let gateway: Promise<Gateway> | undefined;

/** Builds the gateway from the environment once per warm instance (same env vars as main.ts). */
function fromEnv(): Promise<Gateway> {
  gateway ??= (async () => {
    const settings = gatewayEnvOptions();
    const url = redisUrl();
    return createGateway({
      db: await openIndexDb(),
      pubsub: createCairnPubSub(url).pubsub,
      admin: new AdminClient(url, undefined, loadCommandSigner()),
      ...settings,
      graphiql: false,
    });
  })();
  return gateway;
}

/**
 * A fetch handler for serverless hosts (queries and mutations over HTTP; subscriptions need the
 * long-lived server in main.ts). `export default { fetch }` is the shape such hosts look for.
 */
export async function fetch(request: Request): Promise<Response> {
  return (await fromEnv()).fetch(request);
}

export default { fetch };
