/**
 * The libp2p datastore with peer records kept in memory and written behind.
 *
 * libp2p merges the stream's protocol into the remote's peer record for every stream it opens
 * or accepts (libp2p/src/connection.js), and @libp2p/peer-store reads, decodes and rewrites the
 * record each time: with datastore-fs that is a file read and a write-and-rename per stream on
 * both ends. One message is one stream, so under bench:messaging the peer store was about 1 s of
 * the ~9 s each node was busy (file opens, renames, mkdir, decoding). Peer records are hints
 * (addresses, protocols, tags) that libp2p refreshes as it talks to a peer, so losing the last
 * seconds of their changes in a crash costs nothing; here they are read once, served from
 * memory after, and each changed record is written at most once per flush interval (and on
 * close). Every other key (the keychain, the WebRTC certificate) writes through at once.
 */
import type { Libp2pOptions } from 'libp2p';
import { P2P_DEFAULTS } from '../options.ts';

type Datastore = NonNullable<Libp2pOptions['datastore']>;
type Key = Parameters<Datastore['get']>[0];
type Pair = { key: Key; value: Uint8Array };
type AbortOptions = Parameters<Datastore['get']>[1];

/** Where @libp2p/peer-store keeps its records (peerIdToDatastoreKey). */
const PEER_PREFIX = '/peers/';

interface Cached {
  readonly key: Key;
  value: Uint8Array;
  dirty: boolean;
}

export interface PeerRecordCacheOptions {
  /** How long a changed record may wait in memory before it is written. */
  readonly flushMs?: number;
  /** Records kept in memory at most; past it the oldest is written (if changed) and dropped. */
  readonly maxRecords?: number;
}

export class PeerRecordCache implements Datastore {
  /** Record files written (for tests and figures). */
  writes = 0;
  private readonly inner: Datastore;
  private readonly flushMs: number;
  private readonly maxRecords: number;
  /** Most recently used last. */
  private readonly records = new Map<string, Cached>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(inner: Datastore, opts: PeerRecordCacheOptions = {}) {
    this.inner = inner;
    this.flushMs = opts.flushMs ?? P2P_DEFAULTS.peerRecordFlushMs;
    this.maxRecords = opts.maxRecords ?? P2P_DEFAULTS.peerRecordsInMemory;
  }

  private static cached(key: Key): boolean {
    return key.toString().startsWith(PEER_PREFIX);
  }

  async put(key: Key, value: Uint8Array, options?: AbortOptions): Promise<Key> {
    if (!PeerRecordCache.cached(key)) return this.inner.put(key, value, options);
    this.remember({ key, value, dirty: true });
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs);
    this.timer.unref?.();
    return key;
  }

  async get(key: Key, options?: AbortOptions): Promise<Uint8Array> {
    if (!PeerRecordCache.cached(key)) return this.inner.get(key, options);
    const hit = this.records.get(key.toString());
    if (hit) {
      this.records.delete(key.toString());
      this.records.set(key.toString(), hit);
      return hit.value;
    }
    // A miss (NotFoundError included) is the disk's answer; only what exists is kept.
    const value = await this.inner.get(key, options);
    if (!this.records.has(key.toString())) this.remember({ key, value, dirty: false });
    return this.records.get(key.toString())!.value;
  }

  async has(key: Key, options?: AbortOptions): Promise<boolean> {
    if (PeerRecordCache.cached(key) && this.records.has(key.toString())) return true;
    return this.inner.has(key, options);
  }

  async delete(key: Key, options?: AbortOptions): Promise<void> {
    if (PeerRecordCache.cached(key)) {
      this.records.delete(key.toString());
      // A flush under way may be writing this record: delete after it, so nothing revives it.
      await this.flushing;
    }
    await this.inner.delete(key, options);
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncGenerator<Key> {
    for await (const { key, value } of source) yield this.put(key, value, options);
  }

  async *getMany(source: Iterable<Key> | AsyncIterable<Key>, options?: AbortOptions): AsyncGenerator<Pair> {
    for await (const key of source) yield { key, value: await this.get(key, options) };
  }

  async *deleteMany(source: Iterable<Key> | AsyncIterable<Key>, options?: AbortOptions): AsyncGenerator<Key> {
    for await (const key of source) {
      await this.delete(key, options);
      yield key;
    }
  }

  batch(): ReturnType<Datastore['batch']> {
    const ops: ({ key: Key; value: Uint8Array } | { key: Key; value?: undefined })[] = [];
    return {
      put: (key, value) => void ops.push({ key, value }),
      delete: (key) => void ops.push({ key }),
      commit: async (options) => {
        for (const op of ops)
          if (op.value === undefined) await this.delete(op.key, options);
          else await this.put(op.key, op.value, options);
      },
    };
  }

  /** Queries read the disk, so what is still in memory is written first. */
  async *query(q: Parameters<Datastore['query']>[0], options?: AbortOptions): AsyncGenerator<Pair> {
    await this.flush();
    yield* this.inner.query(q, options);
  }

  async *queryKeys(q: Parameters<Datastore['queryKeys']>[0], options?: AbortOptions): AsyncGenerator<Key> {
    await this.flush();
    yield* this.inner.queryKeys(q, options);
  }

  /** Writes every changed record now (flushes run one at a time). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(() => this.writeDirty());
    return this.flushing;
  }

  private async writeDirty(): Promise<void> {
    for (const r of [...this.records.values()]) {
      if (!r.dirty) continue;
      r.dirty = false;
      const value = r.value;
      try {
        await this.inner.put(r.key, value);
        this.writes++;
      } catch {
        // Tried again at the next flush (a full disk must not lose the record's newer state).
        if (this.records.get(r.key.toString()) === r) r.dirty = true;
      }
    }
  }

  private remember(r: Cached): void {
    const k = r.key.toString();
    this.records.delete(k);
    this.records.set(k, r);
    while (this.records.size > this.maxRecords) {
      const [oldestKey, oldest] = this.records.entries().next().value!;
      this.records.delete(oldestKey);
      // Dropped from memory, still owed to the disk.
      if (oldest.dirty) this.flushing = this.flushing.then(() => this.writeEvicted(oldest));
    }
  }

  private async writeEvicted(r: Cached): Promise<void> {
    if (this.records.has(r.key.toString())) return; // put again since: the newer copy is owed instead
    try {
      await this.inner.put(r.key, r.value);
      this.writes++;
    } catch {}
  }

  /**
   * Startable: libp2p runs these for every component, the datastore included, so a host that
   * stops writes what is owed once everything else has stopped writing to it.
   */
  start(): void {}
  stop(): void {}
  async afterStop(): Promise<void> {
    await this.flush();
  }
}
