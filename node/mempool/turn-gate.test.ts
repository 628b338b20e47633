import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TurnGate } from './turn-gate.ts';

test('a burst passes the gate a slice per event-loop turn, with timers and I/O running between', async () => {
  const gate = new TurnGate(10, 1_000);
  const order: string[] = [];
  let timer: Promise<void> | undefined;
  const all = Array.from({ length: 35 }, (_, i) =>
    gate.enter().then((ok) => {
      if (!ok) return;
      order.push(`w${i}`);
      // Work the first waiter queues for the next loop turn runs before the burst is through: the
      // loop was not held. (A check-phase callback, not a 0 ms timer: on a fast machine the whole
      // burst can finish within the timer's 1 ms resolution, which made this flaky.)
      if (i === 0) timer = new Promise<void>((r) => setImmediate(() => r(void order.push('timer'))));
    }),
  );
  await Promise.all(all);
  await timer;
  assert.equal(order.filter((x) => x.startsWith('w')).length, 35);
  const at = order.indexOf('timer');
  assert.ok(at >= 10 && at < 35, order.join(' '));
});

test('past maxWaiting, enter says no at once', async () => {
  const gate = new TurnGate(1, 3);
  const r = await Promise.all(Array.from({ length: 5 }, () => gate.enter()));
  assert.deepEqual(r, [true, true, true, false, false]);
});
