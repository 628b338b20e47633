import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerScores } from './peer-scores.ts';

test('misbehaviour lowers the score: disconnect first, then a timed ban', () => {
  const s = new PeerScores();
  const t = 1_000_000;
  assert.equal(s.apply('p', 'low-tolerance', 'bad pow', t), 'ok');
  assert.equal(s.apply('p', 'low-tolerance', 'bad pow', t), 'disconnect');
  assert.equal(s.apply('p', 'low-tolerance', 'bad sig', t), 'disconnect');
  assert.equal(s.apply('p', 'low-tolerance', 'bad sig', t), 'disconnect');
  assert.equal(s.apply('p', 'low-tolerance', 'bad sig', t), 'ban');
  assert.ok(s.isBanned('p', t + 1));
  assert.ok(s.isBanned('p', t + s.banMs - 1));
  assert.ok(!s.isBanned('p', t + s.banMs + 1), 'the ban expires');
  assert.match(s.lastReason('p') ?? '', /bad sig/);
  assert.equal(s.banned(t + 5)[0]?.peer, 'p');
});

test('a fatal action bans at once; other peers are unaffected', () => {
  const s = new PeerScores();
  assert.equal(s.apply('evil', 'fatal', 'wrong chain', 0), 'ban');
  assert.equal(s.verdict('honest', 0), 'ok');
  assert.equal(s.score('honest', 0), 0);
});

test('scores decay toward zero with the half-life, but not while banned', () => {
  const s = new PeerScores({ halfLifeMs: 1000 });
  s.apply('p', 'mid-tolerance', 'x', 0);
  assert.equal(s.score('p', 0), -5);
  assert.ok(Math.abs(s.score('p', 1000) - -2.5) < 1e-9);
  assert.ok(Math.abs(s.score('p', 2000) - -1.25) < 1e-9);
  s.apply('q', 'fatal', 'x', 0);
  assert.equal(s.score('q', 1000), -100, 'no recovery during the ban');
});

test('rewards are capped and offset small faults', () => {
  const s = new PeerScores();
  for (let i = 0; i < 500; i++) s.reward('p', 0);
  assert.equal(s.score('p', 0), 100);
  s.apply('p', 'high-tolerance', 'timeout', 0);
  assert.equal(s.score('p', 0), 99);
});
