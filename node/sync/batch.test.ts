/** The Batch state machine (after Lodestar's batch.test.ts): legal transitions, refused ones, attempts. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { SealedBlock } from '../chain/types.ts';
import { Batch, BatchError, MAX_BATCH_DOWNLOAD_ATTEMPTS } from './batch.ts';

const blocks = (n: number) => Array.from({ length: n }, (_, i) => ({ i }) as unknown as SealedBlock);
const wrongStatus = (fn: () => unknown) =>
  assert.throws(fn, (err) => err instanceof BatchError && err.code === 'WRONG_STATUS');

describe('Batch', () => {
  test('the normal path: download, process, done', () => {
    const b = new Batch<string>(3, 385, 128);
    assert.equal(b.status, 'AwaitingDownload');
    assert.equal(b.end, 512);
    b.startDownloading('peerA');
    assert.equal(b.status, 'Downloading');
    assert.equal(b.peer, 'peerA');
    const got = blocks(128);
    b.downloadSuccess(got);
    assert.equal(b.status, 'AwaitingProcessing');
    assert.equal(b.blocks, got);
    assert.equal(b.startProcessing(), got);
    assert.equal(b.status, 'Processing');
    b.processingSuccess();
    assert.equal(b.status, 'Done');
    assert.equal(b.peer, 'peerA', 'who served it is remembered');
    assert.equal(b.blocks, undefined, 'a done batch holds no blocks');
    assert.ok(b.settled);
    assert.equal(b.downloadAttempts, 0);
  });

  test('a failed download goes back to AwaitingDownload, remembering the peer and the attempt', () => {
    const b = new Batch<string>(0, 1, 10);
    b.startDownloading('peerA');
    assert.equal(b.downloadFailed('timeout'), 'AwaitingDownload');
    assert.deepEqual(b.failedPeers, ['peerA']);
    assert.equal(b.downloadAttempts, 1);
    assert.ok(b.failedBy('peerA'));
    assert.ok(!b.failedBy('peerB'));
    assert.equal(b.peer, undefined);
  });

  test(`after ${MAX_BATCH_DOWNLOAD_ATTEMPTS} failed attempts the batch is Failed, with the reason`, () => {
    const b = new Batch<string>(0, 1, 10);
    for (let i = 0; i < MAX_BATCH_DOWNLOAD_ATTEMPTS - 1; i++) {
      b.startDownloading(`p${i}`);
      assert.equal(b.downloadFailed('short'), 'AwaitingDownload');
    }
    b.startDownloading('last');
    assert.equal(b.downloadFailed('short'), 'Failed');
    assert.match(b.failure!, /^range 1\+10 failed 4 times: short$/);
    assert.deepEqual(b.failedPeers, ['p0', 'p1', 'p2', 'last']);
    assert.ok(b.settled);
    wrongStatus(() => b.startDownloading('again'));
  });

  test('a failure that is no fault of the batch (another fork) uses no attempt', () => {
    const b = new Batch<string>(0, 1, 10, 2);
    for (let i = 0; i < 5; i++) {
      b.startDownloading(`fork${i}`);
      assert.equal(b.downloadFailed('another fork', { countAttempt: false }), 'AwaitingDownload');
    }
    assert.equal(b.downloadAttempts, 0);
    assert.equal(b.failedPeers.length, 5);
  });

  test('discarding downloaded blocks downloads again, remembering the server', () => {
    const b = new Batch<string>(1, 129, 128);
    b.startDownloading('helper');
    b.downloadSuccess(blocks(128));
    b.discard();
    assert.equal(b.status, 'AwaitingDownload');
    assert.equal(b.blocks, undefined);
    assert.ok(b.failedBy('helper'));
    assert.equal(b.downloadAttempts, 0);
  });

  test('processing an invalid block fails the batch for good', () => {
    const b = new Batch<string>(0, 1, 2);
    b.startDownloading('p');
    b.downloadSuccess(blocks(2));
    b.startProcessing();
    b.processingFailed('bad signature');
    assert.equal(b.status, 'Failed');
    assert.equal(b.failure, 'bad signature');
    wrongStatus(() => b.processingSuccess());
  });

  test('fail() ends any unsettled batch and keeps the first reason; a done batch cannot fail', () => {
    const b = new Batch<string>(0, 1, 2);
    b.fail('nobody can serve it');
    b.fail('another reason');
    assert.equal(b.failure, 'nobody can serve it');
    const done = new Batch<string>(1, 3, 2);
    done.startDownloading('p');
    done.downloadSuccess(blocks(2));
    done.startProcessing();
    done.processingSuccess();
    wrongStatus(() => done.fail('late'));
  });

  const illegal: [string, (b: Batch<string>) => unknown][] = [
    ['downloadSuccess before downloading', (b) => b.downloadSuccess([])],
    ['downloadFailed before downloading', (b) => b.downloadFailed('x')],
    ['startProcessing before the download', (b) => b.startProcessing()],
    ['processingSuccess before processing', (b) => b.processingSuccess()],
    ['discard before the download', (b) => b.discard()],
    [
      'startDownloading twice',
      (b) => {
        b.startDownloading('a');
        b.startDownloading('b');
      },
    ],
    [
      'startProcessing twice',
      (b) => {
        b.startDownloading('a');
        b.downloadSuccess([]);
        b.startProcessing();
        b.startProcessing();
      },
    ],
  ];
  for (const [name, fn] of illegal) {
    test(`refused with WRONG_STATUS: ${name}`, () => wrongStatus(() => fn(new Batch<string>(0, 1, 1))));
  }

  test('a range that is empty or not a safe integer is refused at construction', () => {
    for (const [start, count] of [
      [1, 0],
      [1, -1],
      [2 ** 53, 1],
      [1, 0.5],
    ] as const)
      assert.throws(
        () => new Batch(0, start, count),
        (err) => err instanceof BatchError && err.code === 'EMPTY_RANGE',
      );
  });
});
