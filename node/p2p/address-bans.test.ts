import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressBans } from './address-bans.ts';

const H = 60_000;

test('an address is banned once enough peers seen at it were banned, and the ban decays', () => {
  const b = new AddressBans({ threshold: 2, halfLifeMs: H, exempt: [] });
  const t = 1_000_000;
  assert.equal(b.record('192.0.2.1', t), false, 'one ban of one peer id is not enough');
  assert.equal(b.isBanned('192.0.2.1', t), false);
  assert.equal(b.isBanned('192.0.2.1', t + 10 * H), false, 'nor will it ever be');
  // A second peer id banned from there soon after: the address is refused for about a half-life.
  assert.equal(b.record('192.0.2.1', t + 1000), true);
  assert.equal(b.isBanned('192.0.2.1', t + 1000), true);
  assert.equal(b.isBanned('192.0.2.2', t + 1000), false, 'other addresses are unaffected');
  const until = b.bannedUntil('192.0.2.1', t + 1000)!;
  assert.ok(until - t > 0.95 * H && until - t < 1.01 * H, `until ${until - t}`);
  assert.equal(b.isBanned('192.0.2.1', until - 10), true);
  assert.equal(b.isBanned('192.0.2.1', until + 10), false, 'the ban decays away');
  // A third ban right after: log2(3) ≈ 1.58 half-lives.
  const b3 = new AddressBans({ threshold: 2, halfLifeMs: H, exempt: [] });
  for (let k = 0; k < 3; k++) b3.record('192.0.2.9', t);
  assert.equal(b3.bannedUntil('192.0.2.9', t), Math.ceil(t + H * Math.log2(3)));
  assert.equal(b3.isBanned('192.0.2.9', t + 1.5 * H), true);
  assert.equal(b3.isBanned('192.0.2.9', t + 1.6 * H), false);
  assert.deepEqual(
    b3.banned(t).map((x) => x.address),
    ['192.0.2.9'],
  );
});

test('with a threshold of 1 a single ban holds the address for one half-life', () => {
  const b = new AddressBans({ threshold: 1, halfLifeMs: H, exempt: [] });
  assert.equal(b.record('192.0.2.1', 0), true);
  assert.equal(b.isBanned('192.0.2.1', H - 1), true);
  assert.equal(b.isBanned('192.0.2.1', H + 1), false);
});

test('loopback is never banned by default (every test node shares it)', () => {
  const b = new AddressBans({ threshold: 1 });
  assert.equal(b.record('127.0.0.1', 1), false);
  assert.equal(b.record('::1', 1), false);
  assert.equal(b.isBanned('127.0.0.1', 1), false);
  assert.equal(b.size, 0);
  assert.equal(b.record('198.51.100.9', 1), true);
});

test('the table stays within its bound, keeping the strongest bans', () => {
  const b = new AddressBans({ threshold: 2, halfLifeMs: H, maxEntries: 50, exempt: [] });
  const t = 1_000_000;
  for (let k = 0; k < 3; k++) b.record('203.0.113.7', t);
  for (let i = 0; i < 5000; i++) {
    b.record(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, t + i);
    assert.ok(b.size <= 50);
  }
  assert.equal(b.isBanned('203.0.113.7', t + 5000), true, 'the banned address survived 5000 one-off entries');
  // Entries decayed below a tenth of a ban are dropped at the next prune.
  b.prune(t + 10 * H);
  assert.equal(b.size, 0);
});
