/**
 * The downloader's refetch path in isolation (the attacker review's reproduction, finding F):
 * a batch that did not link is fetched again from the target under the same progress floor as
 * every other batch download.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import pino from 'pino';
import type { SealedBlock } from '../chain/types.ts';
import type { Status } from '../p2p/messages.ts';
import { Batch } from './batch.ts';
import { type DownloaderDeps, RangeDownloader } from './range-downloader.ts';

const hash = (h: number) => new Uint8Array(32).fill(h % 256);
/** Only what the downloader reads of a block: height, link, hash, size. */
const block = (h: number) =>
  ({
    header: { height: h, prevHash: hash(h - 1) },
    hash: hash(h),
    encoded: new Uint8Array(10),
  }) as unknown as SealedBlock;

test('a target trickling a refetch one block per answer is cut off at the floor and penalised', async () => {
  let clock = 0;
  const target: PeerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  let requests = 0;
  const penalties: string[] = [];
  const deps: DownloaderDeps = {
    // One block per answer, each just inside a 10 s request deadline.
    requestRange: async (_p, start) => {
      requests++;
      clock += 9_900;
      return [block(start)];
    },
    requestHashesAt: async () => [],
    penalise: (_p, action, reason) => penalties.push(`${action} ${reason}`),
    log: pino({ level: 'silent' }),
  };
  const dl = new RangeDownloader({ peer: target, status: { headHeight: 1000 } as Status }, () => [], deps, {
    first: 1,
    last: 64,
    batchSize: 64,
    bufferBatches: 1,
    maxBufferedBytes: 1e9,
    parallelPeers: 1,
    requestsPerPeer: 1,
    progress: { graceMs: 10_000, minBytesPerSec: 128 * 1024 },
    clock: () => clock,
  });
  const b = new Batch<PeerId>(0, 1, 64);
  // As if a helper had served it and it did not link.
  b.startDownloading(target);
  b.downloadSuccess([block(1)]);
  const result = await dl.refetchFromTarget(b, hash(0));
  assert.equal(result.kind, 'slow');
  assert.ok(requests <= 3, `${requests} requests, ${clock / 1000} s`);
  assert.equal(penalties.length, 1);
  assert.match(penalties[0]!, /^high-tolerance range 1\+64: too slow/);
  assert.match(dl.stalled?.reason ?? '', /too slow/, 'the target is asked for nothing more');
  await dl.stop();
});
