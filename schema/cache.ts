/**
 * A shared cache of hot reads (the dashboard's head, latest stats, newest blocks). The gateway
 * implements it with a short TTL and clears it on every block / stats / orphan event, so a hit
 * is never older than the TTL nor older than the last event this instance received.
 */
export interface ReadCache {
  get<T>(key: string, load: () => Promise<T>): Promise<T>;
}

export function cached<T>(cache: ReadCache | undefined, key: string, load: () => Promise<T>): Promise<T> {
  return cache ? cache.get(key, load) : load();
}
