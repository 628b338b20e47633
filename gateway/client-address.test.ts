import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientAddresses, type ForwardedProblem, MAX_FORWARDED_HOPS } from './client-address.ts';

const req = (peer: string, xff?: string | string[]) => ({
  socket: { remoteAddress: peer },
  headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
});

test('without trusted proxies X-Forwarded-For is ignored', () => {
  const a = clientAddresses([]);
  assert.equal(a.of(req('10.0.0.9', '1.2.3.4')), '10.0.0.9');
  assert.equal(a.of(undefined), undefined);
});

test('from an untrusted peer the header is ignored: clients can write any', () => {
  const a = clientAddresses(['172.29.213.10']);
  assert.equal(a.of(req('10.99.0.2', '10.99.0.3')), '10.99.0.2');
});

test('a trusted proxy names the client: the rightmost hop it does not claim', () => {
  const a = clientAddresses(['172.29.213.10', '192.168.7.0/24']);
  assert.equal(a.of(req('172.29.213.10', '10.99.0.3')), '10.99.0.3');
  // A client's own forged hops sit left of what the proxy appended: never believed.
  assert.equal(a.of(req('172.29.213.10', '6.6.6.6, 10.99.0.3')), '10.99.0.3');
  // A chain of trusted proxies: skipped from the right.
  assert.equal(a.of(req('::ffff:172.29.213.10', '10.99.0.3, 192.168.7.4')), '10.99.0.3');
  // Repeated headers are one list.
  assert.equal(a.of(req('172.29.213.10', ['6.6.6.6', '10.99.0.4'])), '10.99.0.4');
  // No header: the proxy itself.
  assert.equal(a.of(req('172.29.213.10')), '172.29.213.10');
});

test('an unreadable header from a trusted proxy counts as the proxy, and is reported', () => {
  const problems: ForwardedProblem[] = [];
  const a = clientAddresses(['172.29.213.10'], (p) => problems.push(p));
  assert.equal(a.of(req('172.29.213.10', '10.99.0.3, not-an-ip')), '172.29.213.10');
  const long = Array.from({ length: MAX_FORWARDED_HOPS + 1 }, (_, i) => `10.0.0.${i}`).join(',');
  assert.equal(a.of(req('172.29.213.10', long)), '172.29.213.10');
  assert.deepEqual(problems, ['malformed', 'too-long']);
});

test('bad ranges are refused when configured', () => {
  assert.throws(() => clientAddresses(['console']), /bad IP range/);
});
