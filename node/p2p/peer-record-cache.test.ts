/**
 * The peer record cache over a real datastore-fs directory: a record rewritten on every stream
 * costs one file write per flush, reads after the first come from memory, queries and a stopping
 * host see every change, other keys write through at once, and libp2p's peer store works on it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { FsDatastore } from 'datastore-fs';
import { Key } from 'interface-datastore';
import { createLibp2p } from 'libp2p';
import { PeerRecordCache } from './peer-record-cache.ts';

async function dir(t: { after(fn: () => Promise<void>): void }) {
  const d = await mkdtemp(path.join(tmpdir(), 'cairn-peer-records-'));
  t.after(() => rm(d, { recursive: true, force: true }));
  const open = async () => {
    const fs = new FsDatastore(d);
    await fs.open();
    return fs;
  };
  return { open };
}

const bytes = (n: number) => new Uint8Array([n, n, n]);
const onDisk = async (fs: FsDatastore, key: Key) =>
  fs.get(key).then(
    (b) => new Uint8Array(b),
    () => undefined,
  );

test('a record put many times is written once per flush; reads and queries see the newest', async (t) => {
  const d = await dir(t);
  const files = await d.open();
  const cache = new PeerRecordCache(files, { flushMs: 60_000 });
  const key = new Key('/peers/abc');
  for (let i = 1; i <= 100; i++) await cache.put(key, bytes(i));
  assert.deepEqual(await cache.get(key), bytes(100));
  assert.equal(await onDisk(await d.open(), key), undefined, 'not written yet');
  assert.equal(cache.writes, 0);

  // A query reads the disk: what memory holds is written first.
  const found = [];
  for await (const p of cache.query({ prefix: '/peers' })) found.push(p);
  assert.deepEqual(
    found.map((p) => [p.key.toString(), [...p.value]]),
    [['/peers/abc', [100, 100, 100]]],
  );
  assert.equal(cache.writes, 1, 'one write for a hundred puts');

  await cache.put(key, bytes(7));
  await cache.flush();
  await cache.flush();
  assert.equal(cache.writes, 2, 'a clean record is not written again');
  assert.deepEqual(await onDisk(await d.open(), key), bytes(7));
});

test('reads after the first come from memory; deletes and other keys reach the disk at once', async (t) => {
  const d = await dir(t);
  const files = await d.open();
  const peer = new Key('/peers/known');
  await files.put(peer, bytes(1));
  const cache = new PeerRecordCache(files, { flushMs: 60_000 });
  assert.deepEqual(new Uint8Array(await cache.get(peer)), bytes(1));
  // Changed on disk behind the cache's back: the cache keeps answering from memory.
  await files.put(peer, bytes(2));
  assert.deepEqual(new Uint8Array(await cache.get(peer)), bytes(1));
  await assert.rejects(cache.get(new Key('/peers/unknown')), { name: 'NotFoundError' });

  const cert = new Key('/libp2p/certificate');
  await cache.put(cert, bytes(9));
  assert.deepEqual(await onDisk(await d.open(), cert), bytes(9), 'not a peer record: written through');

  await cache.put(peer, bytes(3));
  await cache.delete(peer);
  await cache.flush();
  assert.equal(await onDisk(await d.open(), peer), undefined, 'a deleted record is not written back');
  assert.equal(await cache.has(peer), false);
});

test('past its bound the oldest record leaves memory, written first if it changed', async (t) => {
  const d = await dir(t);
  const cache = new PeerRecordCache(await d.open(), { flushMs: 60_000, maxRecords: 2 });
  for (const n of [1, 2, 3]) await cache.put(new Key(`/peers/p${n}`), bytes(n));
  await cache.flush();
  const fresh = await d.open();
  for (const n of [1, 2, 3]) assert.deepEqual(await onDisk(fresh, new Key(`/peers/p${n}`)), bytes(n));
});

test('libp2p’s peer store on the cache: a stream’s protocol merges cost one write, all kept after a stop', async (t) => {
  const d = await dir(t);
  const cache = new PeerRecordCache(await d.open(), { flushMs: 60_000 });
  const privateKey = await generateKeyPair('Ed25519');
  const host = await createLibp2p({ privateKey, datastore: cache });
  const remote = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  // What libp2p does for every stream it opens or accepts (connection.js): merge its protocol.
  for (let i = 0; i < 50; i++) await host.peerStore.merge(remote, { protocols: [`/cairn/msg/${i % 3}`] });
  assert.deepEqual((await host.peerStore.get(remote)).protocols.sort(), [
    '/cairn/msg/0',
    '/cairn/msg/1',
    '/cairn/msg/2',
  ]);
  const beforeStop = cache.writes;
  await host.stop();
  assert.ok(cache.writes - beforeStop >= 1, 'the stopping host wrote what was owed');
  assert.ok(cache.writes <= 3, `${cache.writes} record writes for 50 merges`);
  const again = await createLibp2p({ privateKey, datastore: await d.open() });
  t.after(() => again.stop());
  assert.equal((await again.peerStore.get(remote)).protocols.length, 3);
});
