import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodeServeBudget, type NodeServeBudgetOptions } from './node-serve-budget.ts';
import { NodeBusyError } from './reqresp.ts';

const CHUNK = 10_000;

/** 1 MB/s, a burst of 5 chunks: one chunk every 10 ms once the burst is spent. */
const budget = (o: Partial<NodeServeBudgetOptions> = {}) =>
  new NodeServeBudget({
    blocks: { perSec: 1e6, burst: 1e6 },
    bytes: { perSec: 1e6, burst: 5 * CHUNK },
    maxWaitMs: 2_000,
    maxWaiting: 1_024,
    ...o,
  });

/** A reader taking chunks back to back until `until`; returns the chunks it got. */
async function reader(b: NodeServeBudget, group: string, peer: string, until: number): Promise<number> {
  let n = 0;
  while (performance.now() < until) {
    const turn = b.take(group, peer, { blocks: 1, bytes: CHUNK });
    if (turn) await turn;
    // A turn that came after the window is not counted: readers queued at its end still get theirs.
    if (performance.now() < until) n++;
  }
  return n;
}

test('a lone reader gets the whole node-wide rate, not a share of it', async () => {
  const b = budget();
  const until = performance.now() + 500;
  const got = await reader(b, 'a', 'a1', until);
  // 5 from the burst plus ~50 at 1 MB/s; a fixed split among peers seen would have given less.
  assert.ok(got >= 40 && got <= 60, `a lone reader got ${got} chunks in 500 ms`);
});

test('readers drawing at once split the rate by address group, then by peer', async () => {
  const b = budget();
  // The burst spent first (the first reader would take it whole: nobody else waits yet).
  for (let i = 0; i < 5; i++) b.take('x', 'x', { blocks: 1, bytes: CHUNK });
  const until = performance.now() + 800;
  // Eight identities of one host, each with two requests open, against one honest peer elsewhere.
  const sybils = Array.from({ length: 16 }, (_, i) => reader(b, 'host-a', `s${i % 8}`, until));
  const honest = [reader(b, 'host-b', 'h', until), reader(b, 'host-b', 'h', until)];
  const [s, h] = await Promise.all([Promise.all(sybils), Promise.all(honest)]);
  const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);
  const [sybilChunks, honestChunks] = [sum(s), sum(h)];
  // Together bounded by the node's rate (80 chunks in 800 ms).
  assert.ok(sybilChunks + honestChunks <= 85, `${sybilChunks + honestChunks} chunks in all`);
  // The honest group gets about half, not 1/9 as it would per identity.
  assert.ok(
    honestChunks >= 0.4 * (sybilChunks + honestChunks),
    `honest ${honestChunks} chunks, the eight identities ${sybilChunks}`,
  );
  // Within the sybils' group each identity gets about an equal part.
  const perId = new Map<number, number>();
  for (const [i, n] of s.entries()) perId.set(i % 8, (perId.get(i % 8) ?? 0) + n);
  const parts = [...perId.values()];
  assert.ok(Math.max(...parts) - Math.min(...parts) <= 3, `per identity ${parts.join(', ')}`);
});

test('a reader that starts after others gets its part at once, not after their backlog', async () => {
  const b = budget();
  const until = performance.now() + 600;
  // Eight groups with 16 requests open each: 128 chunks queued, 1.28 s of backlog.
  const busy = Promise.all(Array.from({ length: 128 }, (_, i) => reader(b, `g${i % 8}`, `p${i % 8}`, until)));
  await sleep(200);
  assert.ok(b.queued >= 100, `${b.queued} chunks queued`);
  const t0 = performance.now();
  const turn = b.take('late', 'l', { blocks: 1, bytes: CHUNK });
  assert.ok(turn, 'queued: the others are drawing');
  await turn;
  // Fair: behind at most one chunk of each of the 8 groups, ~90 ms; first come first served
  // would be behind all 128 (1.28 s).
  assert.ok(performance.now() - t0 < 600, `the late reader waited ${(performance.now() - t0).toFixed(0)} ms`);
  await busy;
});

test('a turn that does not come in time is refused busy; a full queue refuses at once', async () => {
  const b = budget({ maxWaitMs: 50, maxWaiting: 3 });
  // Spend the burst: the next chunks wait 10 ms each.
  for (let i = 0; i < 5; i++) assert.equal(b.take('g', 'p', { blocks: 1, bytes: CHUNK }), undefined);
  const turns = [0, 1, 2].map(() => b.take('g', 'p', { blocks: 1, bytes: CHUNK }));
  assert.equal(b.queued, 3);
  assert.throws(
    () => b.take('g', 'q', { blocks: 1, bytes: CHUNK }),
    (e: unknown) => e instanceof NodeBusyError && e.reason === 'queue-full',
  );
  await Promise.all(turns);
  // Ten chunks queued at 10 ms each: the sixth onwards waits past 50 ms.
  const results = await Promise.allSettled(
    Array.from({ length: 3 }, () => b.take('g', 'p', { blocks: 1, bytes: 8 * CHUNK })),
  );
  const refused = results.filter(
    (r) => r.status === 'rejected' && r.reason instanceof NodeBusyError && r.reason.reason === 'wait',
  );
  assert.ok(refused.length >= 1, `refused ${refused.length} of 3 chunks of 80 ms each`);
  assert.equal(b.queued, 0, 'refused waiters leave the queue');
});

test('an aborted request leaves the queue and the next one gets its turn', async () => {
  const b = budget();
  for (let i = 0; i < 5; i++) b.take('g', 'p', { blocks: 1, bytes: CHUNK });
  const ac = new AbortController();
  const gone = b.take('g', 'p', { blocks: 1, bytes: 4 * CHUNK }, ac.signal)!;
  const next = b.take('h', 'q', { blocks: 1, bytes: CHUNK })!;
  ac.abort(new Error('reset'));
  await assert.rejects(gone, /reset/);
  await next;
  assert.equal(b.queued, 0);
});
