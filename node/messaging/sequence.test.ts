import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SequenceTracker } from './sequence.ts';

test('under arbitrary duplication and reordering, each message is delivered once and in order', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }),
      fc.integer({ min: 1, max: 3 }),
      fc.array(fc.nat(), { maxLength: 200 }),
      fc.infiniteStream(fc.nat()),
      (count, senders, extra, order) => {
        // Every (sender, seq) at least once, plus random extra copies, in a random order.
        const arrivals: [number, number][] = [];
        for (let s = 0; s < senders; s++) for (let q = 1; q <= count; q++) arrivals.push([s, q]);
        for (const e of extra) arrivals.push([e % senders, (e % count) + 1]);
        const it = order[Symbol.iterator]();
        for (let i = arrivals.length - 1; i > 0; i--) {
          const j = it.next().value % (i + 1);
          [arrivals[i], arrivals[j]] = [arrivals[j]!, arrivals[i]!];
        }
        const t = new SequenceTracker<string>();
        const seen = new Map<number, number[]>();
        for (const [s, q] of arrivals) {
          const a = t.accept(`s${s}`, q, `m${q}`);
          if (a.status === 'delivered')
            for (const d of a.deliver) {
              assert.equal(d.item, `m${d.seq}`);
              seen.set(s, [...(seen.get(s) ?? []), d.seq]);
            }
        }
        for (let s = 0; s < senders; s++)
          assert.deepEqual(
            seen.get(s),
            Array.from({ length: count }, (_, i) => i + 1),
          );
      },
    ),
    { numRuns: 300 },
  );
});

test('a replay after delivery is a duplicate, also after a restore; far-ahead copies are refused', () => {
  const t = new SequenceTracker<string>(4);
  assert.equal(t.accept('a', 1, 'x').status, 'delivered');
  assert.equal(t.accept('a', 1, 'x').status, 'duplicate');
  assert.equal(t.accept('a', 3, 'z').status, 'held');
  assert.equal(t.accept('a', 3, 'z').status, 'duplicate');
  assert.equal(t.accept('a', 7, 'q').status, 'too-far-ahead');
  const r = new SequenceTracker<string>(4);
  r.restore('a', t.next('a'), [[3, 'z']]);
  assert.equal(r.accept('a', 1, 'x').status, 'duplicate', 'the cursor outlives a restart');
  const d = r.accept('a', 2, 'y');
  assert.deepEqual(d.status === 'delivered' && d.deliver.map((x) => x.seq), [2, 3]);
});
