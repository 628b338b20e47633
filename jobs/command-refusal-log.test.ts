import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { REFUSAL_LOG_INTERVAL_MS, RefusalLog } from './command-refusal-log.ts';

const MSG = 'admin command refused';
const SCHED = 'scheduled job refused';

/** A real pino logger whose lines land in an array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { log, lines };
}

test('a flood of refusals is one line per code, then one summary per code per interval', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  const { log, lines } = capture();
  const refusals = new RefusalLog(log);
  for (let i = 0; i < 5000; i++) refusals.refused('bad-signature', MSG, { job: `j${i}` });
  for (let i = 0; i < 7; i++) refusals.refused('expired', MSG, { job: `e${i}` });
  // The first of each code in full, at once; nothing else yet.
  assert.deepEqual(
    lines.map((l) => [l.code, l.job, l.msg]),
    [
      ['bad-signature', 'j0', 'admin command refused'],
      ['expired', 'e0', 'admin command refused'],
    ],
  );
  t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS - 1);
  assert.equal(lines.length, 2, 'no summary before the interval is over');
  t.mock.timers.tick(1);
  const summaries = lines.slice(2).map((l) => [l.code, l.count, l.job]);
  assert.deepEqual(summaries, [
    ['bad-signature', 4999, 'j4999'],
    ['expired', 6, 'e6'],
  ]);
  assert.match(String(lines[2]!.msg), /admin command refused: 4999 more \(bad-signature\) in 10 s/);

  // The flood goes on: still one summary per interval, however many.
  for (let i = 0; i < 1000; i++) refusals.refused('bad-signature', MSG, { job: `k${i}` });
  t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS / 2);
  for (let i = 0; i < 1000; i++) refusals.refused('bad-signature', MSG, { job: `m${i}` });
  assert.equal(lines.length, 4);
  t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS / 2);
  assert.equal(lines.length, 5);
  assert.equal(lines[4]!.count, 2000);

  // A quiet interval, then a refusal: logged in full again, as the first of a new burst.
  t.mock.timers.tick(REFUSAL_LOG_INTERVAL_MS * 3);
  assert.equal(lines.length, 5, 'no summary for an interval without refusals');
  refusals.refused('bad-signature', MSG, { job: 'late' });
  assert.equal(lines.length, 6);
  assert.equal(lines[5]!.job, 'late');
  assert.equal(lines[5]!.count, undefined);
});

test('flush writes the pending summaries (at shutdown) and nothing more after', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  const { log, lines } = capture();
  const refusals = new RefusalLog(log, 10_000);
  for (let i = 0; i < 3; i++) refusals.refused('unscheduled', SCHED, { name: 'chain.sync' });
  refusals.flush();
  assert.deepEqual(
    lines.map((l) => l.count),
    [undefined, 2],
  );
  t.mock.timers.tick(20_000);
  assert.equal(lines.length, 2, 'the cleared timer writes no second summary');
});
