import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSub } from 'graphql-yoga';
import { type CairnEvents, eventKey } from './events.ts';
import { namespace } from './queues.ts';
import { RedisConnections, redisUrl } from './redis.ts';

type Target = ReturnType<typeof createRedisEventTarget<CustomEvent>>;

/**
 * Channel names carry the namespace: Redis pub/sub is shared by every database of a server.
 * Published payloads are cut to their topic's key (events.ts): a publisher handing over a whole
 * row sends only what subscribers look the row up by.
 */
function namespaced(inner: Target, prefix: string): Target {
  return {
    addEventListener: (type, listener, options) => inner.addEventListener(prefix + type, listener, options),
    removeEventListener: (type, listener, options) =>
      inner.removeEventListener(prefix + type, listener, options),
    dispatchEvent: (event) =>
      inner.dispatchEvent(
        new CustomEvent(prefix + event.type, { detail: eventKey(event.type, event.detail) ?? event.detail }),
      ),
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
  const connections = new RedisConnections(url);
  const publishClient = connections.create();
  const subscribeClient = connections.create();
  const redisTarget = createRedisEventTarget<CustomEvent>({ publishClient, subscribeClient });
  const pubsub = createPubSub<CairnEvents>({ eventTarget: namespaced(redisTarget, `${ns}.`) });
  return { pubsub, close: () => connections.closeAll() };
}
