import type { CairnContext } from './builder.ts';
import type { EntryShape } from './shapes.ts';

/**
 * Per-request batching: keys asked for in the same tick are loaded with one query, so a page of
 * 100 blocks with their entries is two queries, not 101.
 */
class BatchLoader<K, V> {
  private pending = new Map<K, { resolve: (v: V) => void; reject: (e: unknown) => void }[]>();

  private readonly load: (keys: K[]) => Promise<Map<K, V>>;
  private readonly empty: () => V;
  constructor(load: (keys: K[]) => Promise<Map<K, V>>, empty: () => V) {
    this.load = load;
    this.empty = empty;
  }

  get(key: K): Promise<V> {
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) queueMicrotask(() => void this.flush());
      const waiters = this.pending.get(key) ?? [];
      waiters.push({ resolve, reject });
      this.pending.set(key, waiters);
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    try {
      const values = await this.load([...batch.keys()]);
      for (const [k, ws] of batch) for (const w of ws) w.resolve(values.get(k) ?? this.empty());
    } catch (err) {
      for (const ws of batch.values()) for (const w of ws) w.reject(err);
    }
  }
}

interface Loaders {
  entriesByBlock: BatchLoader<string, EntryShape[]>;
}

const perContext = new WeakMap<CairnContext, Loaders>();

export function loaders(ctx: CairnContext): Loaders {
  let l = perContext.get(ctx);
  if (!l) {
    l = {
      entriesByBlock: new BatchLoader(
        async (hashes) => {
          const rows = await ctx.db.entry.findMany({
            where: { blockHash: { in: hashes } },
            orderBy: [{ blockHash: 'asc' }, { position: 'asc' }],
          });
          const out = new Map<string, EntryShape[]>();
          for (const r of rows) {
            const list = out.get(r.blockHash) ?? [];
            list.push(r);
            out.set(r.blockHash, list);
          }
          return out;
        },
        () => [],
      ),
    };
    perContext.set(ctx, l);
  }
  return l;
}
