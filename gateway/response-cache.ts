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
}

export class TypeTaggedResponses {
  private readonly entries = new Map<string, Entry>();
  /** Type name → keys of the results that read it (ANY: results whose types are unknown). */
  private readonly byType = new Map<string, Set<string>>();
  private readonly documentTags = new Map<string, Tags>();
  /** Tags of keys built but not stored yet (the key is built before execution). */
  private readonly pending = new Map<string, Tags>();
  private readonly max: number;

  private readonly schema: GraphQLSchema;
  constructor(schema: GraphQLSchema, opts: { readonly max?: number } = {}) {
    this.schema = schema;
    this.max = opts.max ?? RESPONSE_CACHE_DEFAULTS.max;
  }

  /** The cache key (as the plugin's default builds it), remembering the types its document reads. */
  readonly buildKey = (p: KeyParams): Promise<string> => {
    const key = [p.documentString, p.operationName ?? '', variablesJson(p.variableValues), p.sessionId ?? ''];
    return Promise.resolve(hashSHA256(key.join('|'))).then((id) => {
      if (this.pending.size >= this.max) this.pending.clear();
      this.pending.set(id, this.tagsOf(p.documentString));
      return id;
    });
  };

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
  }

  clear(): void {
    this.entries.clear();
    this.byType.clear();
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

  private tagsOf(document: string): Tags {
    if (this.documentTags.has(document)) return this.documentTags.get(document);
    let tags: Tags;
    try {
      const found = new Set<string>();
      const info = new TypeInfo(this.schema);
      visit(
        parse(document),
        visitWithTypeInfo(info, {
          Field() {
            const type = info.getType();
            const named = type && getNamedType(type);
            if (named && isCompositeType(named)) found.add(named.name);
          },
        }),
      );
      tags = found;
    } catch {
      tags = undefined;
    }
    if (this.documentTags.size >= RESPONSE_CACHE_DEFAULTS.documents) this.documentTags.clear();
    this.documentTags.set(document, tags);
    return tags;
  }
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
