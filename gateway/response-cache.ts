/**
 * Whole query results cached per role, evicted by the types an operation reads. The stock
 * in-memory cache tags a result only with entities that carry an `id`, so Block (keyed by hash),
 * NetworkStats or Meta results could not be evicted by type at all, and the gateway flushed
 * everything on every event. Here each cached result is tagged with every object type its
 * document selects (from the schema, so a `node(id)` that answered null is still a Node read),
 * and an event evicts only the results that read a type it changes.
 */
import { randomUUID } from 'node:crypto';
import { type Cache, hashSHA256 } from '@graphql-yoga/plugin-response-cache';
import {
  type ExecutionResult,
  type GraphQLSchema,
  getNamedType,
  isCompositeType,
  Kind,
  parse,
  TypeInfo,
  visit,
  visitWithTypeInfo,
} from 'graphql';
import { canonicalJson } from '../jobs/command-codec.ts';

export const RESPONSE_CACHE_DEFAULTS = Object.freeze({
  /** Results kept at most (the oldest go first). */
  max: 1000,
  /** Documents whose type sets are remembered (a dashboard sends a handful). */
  documents: 1000,
  /** Longest wait for another request's execution of the same query before running it anyway. */
  flightWaitMs: 5000,
});

/** The types a document reads; undefined: unknown (unparsable), evicted by anything. */
type Tags = ReadonlySet<string> | undefined;

interface Entry {
  readonly result: ExecutionResult;
  readonly until: number;
  readonly tags: Tags;
}

interface KeyParams {
  readonly documentString: string;
  readonly operationName?: string | null;
  readonly variableValues?: unknown;
  readonly sessionId?: string | null;
  /** The HTTP request (yoga passes it): the owner of the execution it starts. */
  readonly request?: object;
}

/** One request's execution of a query that others wait for. */
interface Flight {
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly owner: object;
}

/** What a document is, as far as caching goes: the types it reads, and whether it is a query. */
interface DocumentInfo {
  readonly tags: Tags;
  readonly query: boolean;
}

export class TypeTaggedResponses {
  private readonly entries = new Map<string, Entry>();
  /** Type name → keys of the results that read it (ANY: results whose types are unknown). */
  private readonly byType = new Map<string, Set<string>>();
  private readonly documents = new Map<string, DocumentInfo>();
  /** Tags of keys built but not stored yet (the key is built before execution). */
  private readonly pending = new Map<string, Tags>();
  /**
   * Queries being executed after a miss, by key, with the request executing each. Concurrent
   * misses of one query then run it once: when a result expired, every client polling it missed
   * at once and ran the same query side by side (the bench's search p99 was those pile-ups).
   */
  private readonly flights = new Map<string, Flight>();
  private readonly owners = new WeakMap<object, string>();
  private readonly max: number;
  private readonly flightWaitMs: number;

  private readonly schema: GraphQLSchema;
  constructor(schema: GraphQLSchema, opts: { readonly max?: number; readonly flightWaitMs?: number } = {}) {
    this.schema = schema;
    this.max = opts.max ?? RESPONSE_CACHE_DEFAULTS.max;
    this.flightWaitMs = opts.flightWaitMs ?? RESPONSE_CACHE_DEFAULTS.flightWaitMs;
  }

  /**
   * The cache key (as the plugin's default builds it), remembering the types its document reads.
   * Yoga builds it once per request, before either of its cache lookups: a query missing from the
   * cache while another request executes it waits here for that execution (bounded), and then
   * finds its result; otherwise this request executes it and later ones wait for it.
   */
  readonly buildKey = (p: KeyParams): Promise<string> => {
    const key = [p.documentString, p.operationName ?? '', variablesJson(p.variableValues), p.sessionId ?? ''];
    return Promise.resolve(hashSHA256(key.join('|'))).then(async (id) => {
      const doc = this.infoOf(p.documentString, p.operationName);
      if (this.pending.size >= this.max) this.pending.clear();
      this.pending.set(id, doc.tags);
      if (!doc.query || !p.request || this.fresh(id)) return id;
      const flight = this.flights.get(id);
      if (flight) await within(flight.done, this.flightWaitMs);
      else this.fly(id, p.request);
      return id;
    });
  };

  /** The request has been answered: the execution it owned, if any, holds nobody any longer. */
  finish(request: object): void {
    const id = this.owners.get(request);
    if (id !== undefined && this.flights.get(id)?.owner === request) this.land(id);
  }

  private fresh(id: string): boolean {
    const e = this.entries.get(id);
    return e !== undefined && e.until > performance.now();
  }

  private fly(id: string, owner: object): void {
    let resolve!: () => void;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    this.flights.set(id, { done, resolve, owner });
    this.owners.set(owner, id);
  }

  private land(id: string): void {
    this.flights.get(id)?.resolve();
    this.flights.delete(id);
  }

  readonly cache: Cache = {
    get: (id) => {
      const e = this.entries.get(id);
      if (!e) return null;
      if (e.until > performance.now()) return e.result as never;
      this.delete(id);
      return null;
    },
    set: (id, result, _entities, ttl) => {
      const tags = this.pending.has(id) ? this.pending.get(id) : undefined;
      this.pending.delete(id);
      this.delete(id);
      while (this.entries.size >= this.max) this.delete(this.entries.keys().next().value!);
      this.entries.set(id, { result, until: performance.now() + ttl, tags });
      this.land(id);
      for (const t of tags ?? [ANY]) {
        const keys = this.byType.get(t) ?? new Set<string>();
        keys.add(id);
        this.byType.set(t, keys);
      }
    },
    // Mutations name what they touched: by type (ids are not tracked).
    invalidate: (entities) => this.invalidateTypes([...entities].map((e) => e.typename)),
  };

  /** Evicts every result that reads one of `types` (and those whose types are unknown). */
  invalidateTypes(types: Iterable<string>): void {
    for (const t of [...types, ANY]) for (const id of [...(this.byType.get(t) ?? [])]) this.delete(id);
    this.landAll();
  }

  clear(): void {
    this.entries.clear();
    this.byType.clear();
    this.landAll();
  }

  /**
   * After an invalidation nobody waits for an execution that started before it: the waiting
   * requests look the cache up again (and execute the query themselves on a miss).
   */
  private landAll(): void {
    for (const id of [...this.flights.keys()]) this.land(id);
  }

  get size(): number {
    return this.entries.size;
  }

  private delete(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    for (const t of e.tags ?? [ANY]) {
      const keys = this.byType.get(t);
      keys?.delete(id);
      if (keys?.size === 0) this.byType.delete(t);
    }
  }

  private infoOf(document: string, operationName?: string | null): DocumentInfo {
    const memo = `${operationName ?? ''}\u0000${document}`;
    const known = this.documents.get(memo);
    if (known) return known;
    let info: DocumentInfo;
    try {
      const found = new Set<string>();
      const typeInfo = new TypeInfo(this.schema);
      const ast = parse(document);
      visit(
        ast,
        visitWithTypeInfo(typeInfo, {
          Field() {
            const type = typeInfo.getType();
            const named = type && getNamedType(type);
            if (named && isCompositeType(named)) found.add(named.name);
          },
        }),
      );
      const ops = ast.definitions.filter((d) => d.kind === Kind.OPERATION_DEFINITION);
      const op =
        operationName == null
          ? ops.length === 1
            ? ops[0]
            : undefined
          : ops.find((o) => o.name?.value === operationName);
      info = { tags: found, query: op?.operation === 'query' };
    } catch {
      info = { tags: undefined, query: false };
    }
    if (this.documents.size >= RESPONSE_CACHE_DEFAULTS.documents) this.documents.clear();
    this.documents.set(memo, info);
    return info;
  }
}

/** `p`, or nothing after `ms` (whichever comes first). */
async function within(p: Promise<void>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** A tag no type has: results whose types are unknown, evicted by every invalidation. */
const ANY = '\u0000any';

function variablesJson(v: unknown): string {
  try {
    return canonicalJson(v ?? {});
  } catch {
    try {
      return JSON.stringify(v ?? {});
    } catch {
      // Variables no JSON walk survives (the gateway refuses them first: variables-limit.ts):
      // a key no other request has, so the answer is simply not shared.
      return `\u0000uncacheable:${randomUUID()}`;
    }
  }
}
