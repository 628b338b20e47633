/**
 * Redis passwords stay out of command lines and logs. An attack review read the compose nodes'
 * password with `ps` (it was in `--redis redis://node:<pw>@redis`) and in every node's "ready"
 * log line; the collector logged its URL the same way.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseNodeArgs } from '../node/options.ts';
import { redactUrl, withRedisPassword } from './redis.ts';

test('the password comes from CAIRN_REDIS_PASSWORD when the URL names only the user', () => {
  assert.equal(withRedisPassword('redis://node@redis:6379', 's3cret'), 'redis://node:s3cret@redis:6379');
  assert.equal(withRedisPassword('redis://node:given@redis:6379', 's3cret'), 'redis://node:given@redis:6379');
  assert.equal(withRedisPassword('redis://127.0.0.1:6379', undefined), 'redis://127.0.0.1:6379');
  assert.equal(
    withRedisPassword('redis://node@redis:6379', 'p@ss/w:rd'),
    'redis://node:p%40ss%2Fw%3Ard@redis:6379',
  );
});

test('the node options take it from the environment', () => {
  const before = process.env.CAIRN_REDIS_PASSWORD;
  process.env.CAIRN_REDIS_PASSWORD = 'from-env';
  try {
    const r = parseNodeArgs(['--redis', 'redis://node@127.0.0.1:6379']);
    assert.ok(!r.help);
    assert.equal(r.config.jobs.redisUrl, 'redis://node:from-env@127.0.0.1:6379');
  } finally {
    if (before === undefined) delete process.env.CAIRN_REDIS_PASSWORD;
    else process.env.CAIRN_REDIS_PASSWORD = before;
  }
});

test('logged URLs carry no password', () => {
  assert.equal(redactUrl('redis://node:s3cret@redis:6379'), 'redis://node:***@redis:6379');
  assert.equal(redactUrl('redis://127.0.0.1:6379'), 'redis://127.0.0.1:6379');
  assert.equal(redactUrl('not a url'), 'not a url');
});
