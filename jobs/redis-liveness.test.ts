/**
 * RedisLiveness's account of the last outage (the collector's watchdog logs it): none before
 * Redis ever went away (it used to log `now - 0`, an outage since 1970), then the real length of
 * the drop. Real Redis; the drop is a CLIENT KILL of the watched connection.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closeRedis, createRedis, RedisLiveness } from './redis.ts';

const until = async (what: string, fn: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test('lastOutageMs: undefined while Redis never went down, the outage length after a drop', async (t) => {
  const watched = createRedis();
  const admin = createRedis();
  t.after(async () => {
    await closeRedis(watched);
    await closeRedis(admin);
  });
  let ups = 0;
  const live = new RedisLiveness(watched, { up: () => ups++ });
  await until('first ready', () => live.up);
  assert.equal(live.lastOutageMs, undefined, 'never down: no outage to report');
  const id = await watched.client('ID');
  const before = Date.now();
  await admin.client('KILL', 'ID', String(id));
  await until('reconnect', () => ups >= 2 && live.up);
  const outage = live.lastOutageMs;
  assert.ok(outage !== undefined && outage >= 0, `outage ${outage}`);
  assert.ok(outage <= Date.now() - before, `outage ${outage} ms is no longer than the test`);
});
