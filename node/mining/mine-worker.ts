import { parentPort, workerData } from 'node:worker_threads';
import { searchNonce } from './nonce-search.ts';

export interface MineJob {
  readonly jobId: number;
  readonly headerBytes: Uint8Array;
  readonly targetHex: string;
  readonly startNonce: number;
}

export type MineReply =
  | { readonly jobId: number; readonly type: 'found'; readonly nonce: number; readonly hashes: number }
  | { readonly jobId: number; readonly type: 'progress'; readonly hashes: number }
  | { readonly jobId: number; readonly type: 'stopped'; readonly hashes: number };

/** The job the main thread wants worked on; a different value means "drop what you are doing". */
const current = new Int32Array(workerData.currentJob as SharedArrayBuffer);
const CHUNK = 1 << 16;

parentPort!.on('message', (job: MineJob) => {
  const target = BigInt(`0x${job.targetHex}`);
  const stale = () => Atomics.load(current, 0) !== job.jobId;
  let nonce = job.startNonce;
  let hashes = 0;
  // Chunks keep progress reports flowing; the stale check inside searchNonce keeps cancellation prompt.
  for (;;) {
    if (stale())
      return parentPort!.postMessage({ jobId: job.jobId, type: 'stopped', hashes } satisfies MineReply);
    const found = searchNonce(job.headerBytes, target, nonce, CHUNK, stale);
    if (found !== null) {
      hashes += found - nonce + 1;
      return parentPort!.postMessage({
        jobId: job.jobId,
        type: 'found',
        nonce: found,
        hashes,
      } satisfies MineReply);
    }
    hashes += CHUNK;
    nonce += CHUNK;
    if (nonce > Number.MAX_SAFE_INTEGER - CHUNK) nonce = 0;
    parentPort!.postMessage({ jobId: job.jobId, type: 'progress', hashes: CHUNK } satisfies MineReply);
  }
});
