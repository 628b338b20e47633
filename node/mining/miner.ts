import { randomInt } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { encodeHeader } from '../chain/block-codec.ts';
import type { BlockHeader } from '../chain/types.ts';
import type { MineJob, MineReply } from './mine-worker.ts';

/**
 * Proof-of-work search on a worker thread, so the node's event loop (gossip, sync, RPC) never
 * waits on hashing. One job at a time: starting a job or calling cancel() abandons the previous
 * one, whose promise resolves to null.
 */
export class Miner {
  private readonly worker: Worker;
  private readonly currentJob = new Int32Array(new SharedArrayBuffer(4));
  private nextJobId = 1;
  private active:
    | { jobId: number; header: BlockHeader; resolve: (h: BlockHeader | null) => void }
    | undefined;
  private hashCount = 0;

  constructor() {
    this.worker = new Worker(new URL('./mine-worker.ts', import.meta.url), {
      workerData: { currentJob: this.currentJob.buffer },
    });
    this.worker.on('message', (m: MineReply) => this.onReply(m));
    this.worker.on('error', (err) => {
      this.active?.resolve(null);
      this.active = undefined;
      throw err;
    });
    this.worker.unref();
  }

  /** Total hashes computed, for the hash-rate metric. */
  get hashes(): number {
    return this.hashCount;
  }

  get busy(): boolean {
    return this.active !== undefined;
  }

  /** Searches a nonce for `header`; resolves to the header with the nonce, or null if cancelled. */
  mine(header: BlockHeader): Promise<BlockHeader | null> {
    this.cancel();
    const jobId = this.nextJobId++;
    Atomics.store(this.currentJob, 0, jobId);
    const job: MineJob = {
      jobId,
      headerBytes: encodeHeader(header),
      targetHex: header.target.toString(16),
      // A random start keeps two miners with the same key and template from duplicating work.
      startNonce: randomInt(0, 2 ** 40),
    };
    this.worker.ref();
    return new Promise((resolve) => {
      this.active = { jobId, header, resolve };
      this.worker.postMessage(job);
    });
  }

  cancel(): void {
    if (!this.active) return;
    Atomics.store(this.currentJob, 0, 0);
    this.finish(null);
  }

  async close(): Promise<void> {
    this.cancel();
    await this.worker.terminate();
  }

  private onReply(m: MineReply): void {
    this.hashCount += m.hashes;
    if (!this.active || m.jobId !== this.active.jobId) return;
    if (m.type === 'found') this.finish({ ...this.active.header, nonce: m.nonce });
    else if (m.type === 'stopped') this.finish(null);
  }

  private finish(result: BlockHeader | null): void {
    const a = this.active;
    this.active = undefined;
    this.worker.unref();
    a?.resolve(result);
  }
}
