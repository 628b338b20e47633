/**
 * A connection is read one chunk per turn of the event loop: on a real loopback TCP pair with
 * 8 MiB already waiting, the reader sees every byte, in order, but never more than two chunks
 * in one turn (libuv reads up to 32 in one visit otherwise).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { readFairly } from './fair-read.ts';

async function chunksPerTurn(fair: boolean): Promise<{ max: number; bytes: number; inOrder: boolean }> {
  const total = 8 << 20;
  const payload = Buffer.alloc(total);
  for (let i = 0; i < total; i++) payload[i] = i & 0xff;
  const server = createServer((s) => {
    s.on('error', () => {});
    s.end(payload);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket: Socket = connect(port, '127.0.0.1');
  // Let the sender fill the socket buffers before anything is read.
  socket.pause();
  await once(socket, 'connect');
  await new Promise((r) => setTimeout(r, 200));
  let turn = 0;
  let ticking = true;
  const tick = () => {
    turn++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  const perTurn = new Map<number, number>();
  let bytes = 0;
  let inOrder = true;
  socket.on('data', (b: Buffer) => {
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
    if (b[0] !== (bytes & 0xff)) inOrder = false;
    bytes += b.length;
  });
  if (fair) readFairly({ socket, readStatus: 'readable' });
  socket.resume();
  await once(socket, 'end');
  ticking = false;
  socket.destroy();
  server.close();
  return { max: Math.max(...perTurn.values()), bytes, inOrder };
}

test('a socket full of data is read at most two chunks per turn of the event loop', async () => {
  const fair = await chunksPerTurn(true);
  assert.equal(fair.bytes, 8 << 20, 'every byte read');
  assert.ok(fair.inOrder);
  assert.ok(fair.max <= 2, `${fair.max} chunks in one turn`);
  // The same socket without it: many chunks in one turn (the reason for the module).
  const unpaced = await chunksPerTurn(false);
  assert.equal(unpaced.bytes, 8 << 20);
  assert.ok(unpaced.max > 2, `unpaced: ${unpaced.max} chunks in one turn`);
});

test('a connection libp2p paused stays paused', async () => {
  const server = createServer((s) => {
    // The reader hangs up with data unread: a reset here.
    s.on('error', () => {});
    s.end(Buffer.alloc(1 << 20));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket = connect(port, '127.0.0.1');
  const conn = { socket, readStatus: 'readable' };
  readFairly(conn);
  let chunks = 0;
  socket.on('data', () => {
    chunks++;
    // libp2p's backpressure: its read buffer is full, it pauses the connection.
    conn.readStatus = 'paused';
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(chunks >= 1 && chunks <= 2, `${chunks} chunks read while paused`);
  assert.equal(socket.isPaused(), true);
  socket.destroy();
  server.close();
});
