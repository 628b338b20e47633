import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSub } from 'graphql-yoga';
import type { Redis } from 'ioredis';
import type { CairnEvents } from './events.ts';
import { namespace } from './queues.ts';
import { createRedis, redisUrl } from './redis.ts';

type Target = ReturnType<typeof createRedisEventTarget<CustomEvent>>;

/** Channel names carry the namespace: Redis pub/sub is shared by every database of a server. */
function namespaced(inner: Target, prefix: string): Target {
  return {
    addEventListener: (type, listener, options) => inner.addEventListener(prefix + type, listener, options),
    removeEventListener: (type, listener, options) =>
      inner.removeEventListener(prefix + type, listener, options),
    dispatchEvent: (event) =>
      inner.dispatchEvent(new CustomEvent(prefix + event.type, { detail: event.detail })),
  };
}

export type CairnPubSub = PubSub<CairnEvents>;

/**
 * The event bus shared by the collector (publishes) and every gateway instance (subscribes):
 * Redis pub/sub through the yoga event target, so a subscriber on one instance receives what
 * was published through any other.
 */
export function createCairnPubSub(
  url = redisUrl(),
  ns = namespace(),
): { pubsub: CairnPubSub; close: () => Promise<void> } {
  const publishClient = createRedis(url);
  const subscribeClient = createRedis(url);
  const redisTarget = createRedisEventTarget<CustomEvent>({ publishClient, subscribeClient });
  const pubsub = createPubSub<CairnEvents>({ eventTarget: namespaced(redisTarget, `${ns}.`) });
  const quit = async (r: Redis) => {
    await r.quit().catch(() => r.disconnect());
  };
  return {
    pubsub,
    close: async () => {
      await Promise.all([quit(publishClient), quit(subscribeClient)]);
    },
  };
}
