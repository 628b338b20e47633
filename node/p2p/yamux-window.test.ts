/**
 * Receive window is granted once half of it is used, as Go's and Rust's yamux do, not after
 * every frame: on a real YamuxStream fed data frames, one window update per 128 KiB received
 * instead of one per frame; an opening stream still acknowledges at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultLogger } from '@libp2p/logger';
import { StreamState, YamuxStream } from '@libp2p/yamux/stream';
import { Uint8ArrayList } from 'uint8arraylist';
import { grantYamuxWindowAtHalf } from './yamux-window.ts';

const WINDOW_UPDATE = 1;

function feed(state: StreamState, frames: number, bytes: number) {
  const sent: { type: number; flag: number; length: number }[] = [];
  const stream = new YamuxStream({
    id: '1',
    streamId: 1,
    state,
    direction: 'inbound',
    log: defaultLogger().forComponent('test:yamux'),
    getRTT: () => -1,
    sendFrame: (header: { type: number; flag: number; length: number }) => {
      sent.push(header);
      return true;
    },
  } as never);
  stream.addEventListener('message', () => {});
  for (let i = 0; i < frames; i++)
    stream.handleData({
      header: { type: 0, flag: 0, streamID: 1, length: bytes },
      data: new Uint8ArrayList(new Uint8Array(bytes)),
    } as never);
  return sent.filter((h) => h.type === WINDOW_UPDATE);
}

test('window updates once half the window is received, not per frame', () => {
  // 2,000 frames of 300 bytes: 600 KB through a 256 KiB window.
  const before = feed(StreamState.Established, 2_000, 300);
  assert.equal(before.length, 2_000, 'the library alone: one update per frame');
  grantYamuxWindowAtHalf();
  grantYamuxWindowAtHalf();
  const after = feed(StreamState.Established, 2_000, 300);
  // 128 KiB / 300 B = 437 frames per update.
  assert.ok(after.length >= 4 && after.length <= 5, `${after.length} updates`);
  assert.ok(
    after.every((h) => h.length > 128 * 1024),
    'each grants at least half a window',
  );
  // The remote is never left without credit: the window never falls under half.
  const opening = feed(StreamState.SYNReceived, 1, 300);
  assert.equal(opening.length, 1, 'an inbound stream acknowledges its opening at once');
  assert.equal(opening[0]!.flag & 2, 2, 'with the ACK flag');
});
