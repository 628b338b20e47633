import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DecodeError } from '../chain/codec/errors.ts';
import type { SealedEntry } from '../chain/types.ts';
import { knowledgeEntry, TEST_NOW, testKey } from '../testing/forge.ts';
import { decodeReconcileFrame, encodeReconcileFrame, type ReconcileFrame } from './reconcile-codec.ts';
import { ReconcileSide } from './reconcile-session.ts';

const author = testKey(21);
const pool: SealedEntry[] = Array.from({ length: 10_000 }, (_, i) =>
  knowledgeEntry(author, TEST_NOW - i, `entry ${i} ${'·'.repeat(i % 50)}`),
);

/** Runs a whole exchange through the wire codec; returns both final sets and the traffic. */
function reconcile(a: SealedEntry[], b: SealedEntry[]) {
  const setA = new Map(a.map((e) => [e.idHex, e]));
  const setB = new Map(b.map((e) => [e.idHex, e]));
  const sideA = new ReconcileSide(a, (es) => {
    for (const e of es) setA.set(e.idHex, e);
  });
  const sideB = new ReconcileSide(b, (es) => {
    for (const e of es) setB.set(e.idHex, e);
  });
  let bytes = 0;
  let frames = 0;
  const wire = (f: ReconcileFrame): ReconcileFrame => {
    const encoded = encodeReconcileFrame(f);
    bytes += encoded.length;
    frames++;
    return decodeReconcileFrame(encoded);
  };
  let frame: ReconcileFrame | null = wire(sideA.start());
  let receiver = sideB;
  let other = sideA;
  while (frame) {
    const next = receiver.receive(frame);
    frame = next ? wire(next) : null;
    [receiver, other] = [other, receiver];
    assert.ok(frames < 20, 'the exchange terminates');
  }
  return { setA, setB, bytes, frames, roundTrips: Math.ceil(frames / 2) };
}

test('identical sets settle after one round trip', () => {
  const r = reconcile(pool.slice(0, 5000), pool.slice(0, 5000));
  assert.equal(r.frames, 2);
  assert.equal(r.setA.size, 5000);
  assert.ok(r.bytes < 4000, `${r.bytes} bytes`);
});

test('10,000 entries with 1% missing on one side: ≤ 3 round trips and bytes within 1.5 × missing + 16 KiB', () => {
  const missing = pool.slice(0, 100);
  const r = reconcile(pool, pool.slice(100));
  const missingBytes = missing.reduce((n, e) => n + e.encoded.length, 0);
  assert.equal(r.setB.size, 10_000, 'B receives every missing entry');
  assert.equal(r.setA.size, 10_000);
  assert.ok(r.roundTrips <= 3, `${r.roundTrips} round trips`);
  assert.ok(r.bytes <= 1.5 * missingBytes + 16_384, `${r.bytes} bytes for ${missingBytes} missing`);
});

test('differences on both sides flow in both directions', () => {
  const a = pool.slice(0, 3000);
  const b = pool.slice(60, 3060);
  const r = reconcile(a, b);
  assert.equal(r.setA.size, 3060);
  assert.equal(r.setB.size, 3060);
  assert.ok(r.roundTrips <= 3);
});

test('empty and tiny sets', () => {
  assert.equal(reconcile([], pool.slice(0, 30)).setA.size, 30);
  assert.equal(reconcile(pool.slice(0, 3), []).setB.size, 3);
  assert.equal(reconcile([], []).frames, 2);
});

test('property: any two subsets end as their union', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 2999 }), { maxLength: 800 }),
      fc.array(fc.integer({ min: 0, max: 2999 }), { maxLength: 800 }),
      (ia, ib) => {
        const a = [...new Set(ia)].map((i) => pool[i]!);
        const b = [...new Set(ib)].map((i) => pool[i]!);
        const union = new Set([...a, ...b].map((e) => e.idHex));
        const r = reconcile(a, b);
        assert.deepEqual(new Set(r.setA.keys()), union);
        assert.deepEqual(new Set(r.setB.keys()), union);
      },
    ),
    { numRuns: 60 },
  );
});

test('the frame codec round-trips and rejects malformed frames with typed errors', () => {
  const side = new ReconcileSide(pool.slice(0, 500), () => {});
  const frame = side.start();
  const bytes = encodeReconcileFrame({ ...frame, entries: pool.slice(0, 2) });
  const back = decodeReconcileFrame(bytes);
  assert.deepEqual(encodeReconcileFrame(back), bytes);
  assert.equal(back.entries[1]!.idHex, pool[1]!.idHex);
  const expectCode = (b: Uint8Array, code: string) =>
    assert.throws(
      () => decodeReconcileFrame(b),
      (e) => e instanceof DecodeError && e.code === code,
    );
  expectCode(bytes.subarray(0, bytes.length - 1), 'truncated');
  expectCode(new Uint8Array([...bytes, 0]), 'trailing-bytes');
  expectCode(new Uint8Array([2, ...bytes.subarray(1)]), 'unsupported-version');
  const badKind = bytes.slice();
  badKind[10] = 9; // first range's kind byte (after version, salt, range count)
  expectCode(badKind, 'unknown-tag');
});
