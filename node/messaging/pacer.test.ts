import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimiter } from '@libp2p/utils';
import { RequestPacer } from './pacer.ts';

test("a paced burst never trips the responder's limiter of the same budget; unpaced it does", async () => {
  // The responder's limiter as reqresp builds it (a fixed window), 5 points per 200 ms.
  const responder = new RateLimiter({ points: 5, duration: 0.2 });
  const pacer = new RequestPacer({ points: 5, windowMs: 220, maxInFlight: 4 });
  const t0 = performance.now();
  const starts: number[] = [];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      const release = await pacer.acquire('mailbox');
      starts.push(performance.now() - t0);
      responder.consume('sender');
      release();
    }),
  );
  // 16 starts at 5 per window: the last in the fourth window, not before ~3 windows passed.
  assert.ok(starts.at(-1)! >= 3 * 200, `paced over ${starts.at(-1)} ms`);
  for (let i = 5; i < starts.length; i++)
    assert.ok(starts[i]! - starts[i - 5]! >= 200, `6 starts within ${starts[i]! - starts[i - 5]!} ms`);
  const unpaced = new RateLimiter({ points: 5, duration: 0.2 });
  assert.throws(() => {
    for (let i = 0; i < 6; i++) unpaced.consume('sender');
  }, 'the same burst unpaced is refused');
});

test('at most maxInFlight open towards one peer; others are not held up', async () => {
  const pacer = new RequestPacer({ points: 100, windowMs: 1000, maxInFlight: 2 });
  const a1 = await pacer.acquire('a');
  const a2 = await pacer.acquire('a');
  let third = false;
  const a3 = pacer.acquire('a').then((r) => {
    third = true;
    return r;
  });
  const b1 = await pacer.acquire('b');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(third, false, 'the third waits for a slot');
  assert.equal(pacer.inFlight('a'), 2);
  a1();
  a1(); // a second release of the same slot frees nothing more
  const r3 = await a3;
  assert.equal(third, true);
  assert.equal(pacer.inFlight('a'), 2);
  a2();
  r3();
  b1();
  assert.equal(pacer.inFlight('a'), 0);
});

test('a pacer without a budget is refused', () => {
  assert.throws(() => new RequestPacer({ points: 0, windowMs: 1000, maxInFlight: 1 }), RangeError);
});
