import { Socket } from 'node:net';

/**
 * Reads each TCP connection one chunk per turn of the event loop.
 *
 * libuv reads a socket that has data up to 32 times (64 KiB each) in one visit of the poll
 * phase, and libp2p handles every chunk right there: noise decryption, yamux frames (and a
 * window update written per frame), gossipsub decoding and validation, ~0.3 ms per small gossip
 * message. A peer that keeps its socket full (20,000 entries at 2,000 a second) thus held the
 * loop for 0.4 s per visit on a quiet host and for seconds on a loaded one, and /status, pings
 * and every other peer waited behind it. Pausing the socket after each chunk and resuming it on
 * the next turn (setImmediate: after the poll phase) bounds one connection's share of a turn to
 * about two chunks; a fast honest transfer loses nothing measurable, an idle loop turns in
 * microseconds.
 *
 * `maConn` is libp2p's connection before encryption; only a TCP one (`socket` a net.Socket) is
 * paced. libp2p's own backpressure pauses the connection too (its `readStatus` says so): a
 * turn never resumes what libp2p paused.
 */
export function readFairly(maConn: unknown): void {
  const conn = maConn as { socket?: unknown; readStatus?: string };
  const socket = conn.socket;
  if (!(socket instanceof Socket)) return;
  let scheduled = false;
  const resume = () => {
    scheduled = false;
    if (socket.destroyed || conn.readStatus === 'paused') return;
    socket.resume();
  };
  socket.on('data', () => {
    if (scheduled) return;
    scheduled = true;
    socket.pause();
    setImmediate(resume);
  });
}
