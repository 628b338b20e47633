import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CachedVerifier } from './signature-cache.ts';
import type { SealedBlock, SealedEntry } from './types.ts';

/** One signature as the worker reads it: public key 32, message 32, signature 64 bytes. */
const ITEM_BYTES = 128;

/** A block's signatures: the miner's, then one per entry, in that order on the wire to a worker. */
const signatureCount = (b: SealedBlock) => 1 + b.entries.length;

/** Malformed lengths stay zeroed, which never verifies. */
function pack(
  out: Uint8Array,
  i: number,
  publicKey: Uint8Array,
  message: Uint8Array,
  signature: Uint8Array,
): void {
  if (publicKey.length !== 32 || message.length !== 32 || signature.length !== 64) return;
  const o = i * ITEM_BYTES;
  out.set(publicKey, o);
  out.set(message, o + 32);
  out.set(signature, o + 64);
}

/**
 * Checks the signatures of a batch of blocks on worker threads and records the valid ones in
 * the verifier cache, so validating the batch afterwards on the main thread finds them done.
 * Invalid signatures are simply not cached: the main-thread check then reports them with the
 * proper error. Used for sync batches, where signature checks dominate the cost, and for
 * batches of entries from gossip and reconciliation, so that a flood of them does not hold the
 * main thread (HTTP, pings, req/resp) for ~0.2 ms a signature.
 */
export interface VerifyPoolOptions {
  /** Worker threads (default: one per core). */
  readonly size?: number;
  /**
   * Workers are started on first use and stopped after this long without work (default 30 s):
   * each is a V8 isolate of ~22 MB RSS, and an idle node (no sync, no entry flood) needs none.
   * A start costs ~0.1-0.3 s, paid at most once per burst of work.
   */
  readonly idleMs?: number;
}

export class VerifyPool {
  private workers: Worker[] = [];
  private readonly size: number;
  private readonly idleMs: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<
    number,
    { resolve: (r: Uint8Array) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  private broken: Error | undefined;
  private closed = false;
  /** Times the workers were started (tests, metrics). */
  starts = 0;

  constructor(opts: VerifyPoolOptions | number = {}) {
    const o = typeof opts === 'number' ? { size: opts } : opts;
    this.size = o.size ?? Math.max(1, availableParallelism());
    this.idleMs = o.idleMs ?? 30_000;
  }

  /** Worker threads running now (0 while idle). */
  get running(): number {
    return this.workers.length;
  }

  /** The workers, started if they are not running. */
  private pool(): Worker[] {
    clearTimeout(this.idleTimer);
    if (this.workers.length || this.closed) return this.workers;
    this.starts++;
    this.workers = Array.from({ length: this.size }, () => {
      const w = new Worker(new URL('./verify-worker.ts', import.meta.url));
      w.on('message', (m: { id: number; results: Uint8Array }) => {
        this.pending.get(m.id)?.resolve(m.results);
        this.pending.delete(m.id);
        // Idle workers must not keep the process alive; busy ones must, or an await on them ends it.
        if (this.pending.size === 0) {
          for (const x of this.workers) x.unref();
          this.stopWhenIdle();
        }
      });
      // A dead worker fails the batches in flight; callers fall back to checking on the main thread.
      w.on('error', (err) => this.failAll(err));
      w.on('exit', (code) => {
        // Stopped on purpose (idle, close) once it is no longer in the pool.
        if (this.workers.includes(w)) this.failAll(new Error(`signature worker exited with code ${code}`));
      });
      w.unref();
      return w;
    });
    return this.workers;
  }

  private stopWhenIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.pending.size > 0) return;
      const idle = this.workers;
      this.workers = [];
      for (const w of idle) void w.terminate();
    }, this.idleMs);
    this.idleTimer.unref();
  }

  async verifyBlocks(blocks: readonly SealedBlock[], cache: CachedVerifier): Promise<void> {
    // Each worker gets a contiguous run of blocks with about its share of the signatures, packed
    // straight from the blocks: per-signature objects cost more than a third of this method.
    let total = 0;
    for (const b of blocks) total += signatureCount(b);
    if (total === 0) return;
    const workers = this.pool();
    const share = Math.ceil(total / workers.length);
    const runs: Promise<void>[] = [];
    let next = 0;
    for (const worker of workers) {
      const from = next;
      let count = 0;
      while (next < blocks.length && count < share) count += signatureCount(blocks[next++]!);
      if (count > 0) runs.push(this.verifyRun(worker, blocks.slice(from, next), count, cache));
    }
    await Promise.all(runs);
  }

  /**
   * Checks the entries' signatures on the workers (split evenly) and marks the valid ones in the
   * cache; admission then finds them checked. Invalid ones are left for the main thread to report.
   */
  async verifyEntries(entries: readonly SealedEntry[], cache: CachedVerifier): Promise<void> {
    if (entries.length === 0) return;
    const workers = this.pool();
    const share = Math.ceil(entries.length / workers.length);
    const runs: Promise<void>[] = [];
    for (let w = 0; w * share < entries.length; w++) {
      const run = entries.slice(w * share, (w + 1) * share);
      const packed = new Uint8Array(run.length * ITEM_BYTES);
      run.forEach((e, i) => {
        pack(packed, i, e.author, e.id, e.signature);
      });
      runs.push(
        this.run(workers[w]!, packed).then((results) => {
          if (results.length !== run.length)
            throw new Error(`signature worker answered ${results.length} of ${run.length}`);
          run.forEach((e, i) => {
            if (results[i] === 1) cache.markSignatureValid(e.signature, e.id, e.author, e);
          });
        }),
      );
    }
    await Promise.all(runs);
  }

  private async verifyRun(
    worker: Worker,
    blocks: readonly SealedBlock[],
    count: number,
    cache: CachedVerifier,
  ): Promise<void> {
    const packed = new Uint8Array(count * ITEM_BYTES);
    let k = 0;
    for (const b of blocks) {
      pack(packed, k++, b.header.miner, b.hash, b.signature);
      for (const e of b.entries) pack(packed, k++, e.author, e.id, e.signature);
    }
    const results = await this.run(worker, packed);
    // Fail safe: a short answer must not leave blocks past its end looking checked.
    if (results.length !== count) throw new Error(`signature worker answered ${results.length} of ${count}`);
    k = 0;
    for (const b of blocks) {
      const n = signatureCount(b);
      if (results.subarray(k, k + n).every((ok) => ok === 1)) {
        cache.markBlockValid(b);
      } else {
        // The valid ones are remembered singly; validation then reports the first bad one.
        if (results[k]) cache.markHolderValid(b);
        b.entries.forEach((e, i) => {
          if (results[k + 1 + i]) cache.markHolderValid(e);
        });
      }
      k += n;
    }
  }

  private run(worker: Worker, packed: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
    const id = this.nextId++;
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('signature pool closed'));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      for (const x of this.workers) x.ref();
      worker.postMessage({ id, items: packed.buffer }, [packed.buffer]);
    });
  }

  private failAll(err: Error): void {
    this.broken ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.idleTimer);
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
