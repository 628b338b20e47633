import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { CachedVerifier } from './signature-cache.ts';
import type { SealedBlock } from './types.ts';

interface Item {
  /** The sealed block or entry the signature belongs to. */
  readonly holder: object;
  readonly publicKey: Uint8Array;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
}

/**
 * Checks the signatures of a batch of blocks on worker threads and records the valid ones in
 * the verifier cache, so validating the batch afterwards on the main thread finds them done.
 * Invalid signatures are simply not cached: the main-thread check then reports them with the
 * proper error. Used for sync batches, where signature checks dominate the cost.
 */
export class VerifyPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<
    number,
    { resolve: (r: Uint8Array) => void; reject: (e: Error) => void }
  >();
  private nextId = 0;
  private broken: Error | undefined;

  constructor(size = Math.max(1, availableParallelism())) {
    this.workers = Array.from({ length: size }, () => {
      const w = new Worker(new URL('./verify-worker.ts', import.meta.url));
      w.on('message', (m: { id: number; results: Uint8Array }) => {
        this.pending.get(m.id)?.resolve(m.results);
        this.pending.delete(m.id);
        // Idle workers must not keep the process alive; busy ones must, or an await on them ends it.
        if (this.pending.size === 0) for (const x of this.workers) x.unref();
      });
      // A dead worker fails the batches in flight; callers fall back to checking on the main thread.
      w.on('error', (err) => this.failAll(err));
      w.on('exit', (code) => this.failAll(new Error(`signature worker exited with code ${code}`)));
      w.unref();
      return w;
    });
  }

  async verifyBlocks(blocks: readonly SealedBlock[], cache: CachedVerifier): Promise<void> {
    const items: Item[] = [];
    for (const b of blocks) {
      items.push({ holder: b, publicKey: b.header.miner, message: b.hash, signature: b.signature });
      for (const e of b.entries)
        items.push({ holder: e, publicKey: e.author, message: e.id, signature: e.signature });
    }
    const per = Math.ceil(items.length / this.workers.length);
    await Promise.all(
      this.workers.map(async (w, i) => {
        const slice = items.slice(i * per, (i + 1) * per);
        if (!slice.length) return;
        const results = await this.run(w, slice);
        slice.forEach((it, j) => {
          if (results[j]) cache.markHolderValid(it.holder);
        });
      }),
    );
  }

  private run(worker: Worker, items: readonly Item[]): Promise<Uint8Array> {
    const packed = new Uint8Array(items.length * 128);
    items.forEach((it, i) => {
      if (it.publicKey.length !== 32 || it.message.length !== 32 || it.signature.length !== 64) return;
      packed.set(it.publicKey, i * 128);
      packed.set(it.message, i * 128 + 32);
      packed.set(it.signature, i * 128 + 64);
    });
    const id = this.nextId++;
    if (this.broken) return Promise.reject(this.broken);
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
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
