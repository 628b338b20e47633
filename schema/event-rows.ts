/**
 * Subscription events are hints, not data: Redis pub/sub has no author, so anything on
 * `<ns>.cairn.*` may come from a bare PUBLISH. Each event's key (jobs/events.ts EVENT_KEYS) is
 * checked for shape, the row is read from the index, which only the collector writes after
 * validating, and the subscriber gets that row; an event whose row is absent is dropped and
 * counted. One read per event and gateway instance, however many subscribers: concurrent
 * lookups of the same key share one query for a moment (SHARE_MS).
 */
import { Counter } from 'prom-client';
import { eventKey, TOPICS, type Topic } from '../jobs/events.ts';
import type { IndexDb } from '../jobs/index-db/open.ts';
import type { CairnContext } from './builder.ts';

/** How long one lookup answers every subscriber of this instance asking for the same key. */
const SHARE_MS = 1_000;
/** Lookups shared at most at once; beyond it each subscriber reads for itself (still bounded by events). */
const MAX_SHARED = 10_000;

const HASH = /^[0-9a-f]{64}$/;
const isHash = (v: unknown): v is string => typeof v === 'string' && HASH.test(v);
const isShortString = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 200;

export const droppedEvents = new Counter({
  name: 'cairn_gateway_events_dropped_total',
  help: 'Subscription events dropped: the key was malformed or the index holds no such row.',
  labelNames: ['topic', 'reason'] as const,
  // In no registry until a gateway adds it to its own (gateway.ts): several may share a process.
  registers: [],
});

/** How each topic's key is checked and its row read (null: no such row). */
const LOOKUPS: {
  readonly [T in Topic]: (db: IndexDb, key: Record<string, unknown>) => (() => Promise<unknown>) | undefined;
} = {
  [TOPICS.newBlock]: (db, { hash }) =>
    isHash(hash) ? () => db.block.findUnique({ where: { hash } }) : undefined,
  [TOPICS.orphanedBlock]: (db, { hash, reason }) =>
    isHash(hash) && isShortString(reason)
      ? () => db.orphanedBlock.findUnique({ where: { hash_reason: { hash, reason } } })
      : undefined,
  [TOPICS.networkStats]: (db, { id }) =>
    typeof id === 'number' && Number.isSafeInteger(id) && id > 0
      ? () => db.networkStats.findUnique({ where: { id } })
      : undefined,
  [TOPICS.nodeStatus]: (db, { id }) =>
    isShortString(id) ? () => db.node.findUnique({ where: { id } }) : undefined,
  [TOPICS.modelVersion]: (db, { hash }) =>
    isHash(hash) ? () => db.modelVersion.findUnique({ where: { hash } }) : undefined,
};

const shared = new WeakMap<IndexDb, Map<string, Promise<unknown>>>();

/** The indexed row an event names (read lazily: a shared lookup runs once), or undefined (malformed key, or no such row). */
export async function eventRow(db: IndexDb, topic: Topic, payload: unknown): Promise<unknown> {
  const key = eventKey(topic, payload);
  const id = key && JSON.stringify(key);
  const lookup = key && LOOKUPS[topic](db, key);
  if (!id || !lookup) {
    droppedEvents.inc({ topic, reason: 'malformed-key' });
    return undefined;
  }
  let byKey = shared.get(db);
  if (!byKey) {
    byKey = new Map();
    shared.set(db, byKey);
  }
  const slot = `${topic}\n${id}`;
  let row = byKey.get(slot);
  if (!row) {
    row = lookup();
    if (byKey.size < MAX_SHARED) {
      byKey.set(slot, row);
      const forget = () => {
        setTimeout(() => {
          if (byKey.get(slot) === row) byKey.delete(slot);
        }, SHARE_MS).unref();
      };
      row.then(forget, forget);
    }
  }
  const found = await row;
  if (found == null) {
    droppedEvents.inc({ topic, reason: 'no-such-row' });
    return undefined;
  }
  return found;
}

/**
 * A subscription's source: the topic's events, each replaced by its indexed row, events
 * without one left out. Shared by every subscription field (resolve the row as is).
 */
export function verifiedRows<R>(topic: Topic) {
  return async function* (_parent: unknown, _args: unknown, ctx: CairnContext): AsyncGenerator<R> {
    for await (const ev of ctx.pubsub.subscribe(topic as never) as AsyncIterable<unknown>) {
      const row = await eventRow(ctx.db, topic, ev);
      if (row !== undefined) yield row as R;
    }
  };
}
