import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IceServerError, iceServerProblem, parseIceServer } from './ice-servers.ts';

test('a bare URL is one STUN/TURN server', () => {
  assert.deepEqual(parseIceServer('stun:100.64.0.2:3478'), { urls: 'stun:100.64.0.2:3478' });
  assert.deepEqual(parseIceServer(' turns:relay.example:5349 '), { urls: 'turns:relay.example:5349' });
});

test('JSON carries TURN credentials and one or more URLs', () => {
  assert.deepEqual(
    parseIceServer('{"urls":"turn:100.64.0.2:3478","username":"cairn","credential":"s3cret"}'),
    {
      urls: 'turn:100.64.0.2:3478',
      username: 'cairn',
      credential: 's3cret',
    },
  );
  assert.deepEqual(
    parseIceServer(
      '{"urls":["stun:100.64.0.2:3478","turn:100.64.0.2:3478?transport=udp"],"username":"u","credential":"p"}',
    ),
    { urls: ['stun:100.64.0.2:3478', 'turn:100.64.0.2:3478?transport=udp'], username: 'u', credential: 'p' },
  );
});

test('bad values are refused with a reason', () => {
  for (const [v, why] of [
    ['http://100.64.0.2', /starts with stun:/],
    ['{"urls":', /does not parse/],
    ['[1]', /starts with stun:/],
    ['{}', /starts with stun:/],
    ['{"urls":"turn:1.2.3.4"}', /needs username and credential/],
    ['{"urls":[]}', /at least one URL/],
    ['{"urls":"stun:1.2.3.4","password":"x"}', /unknown field\(s\) password/],
    ['{"urls":"turn:1.2.3.4","username":1,"credential":"p"}', /username is a string/],
  ] as const) {
    assert.throws(
      () => parseIceServer(v),
      (e: unknown) => e instanceof IceServerError && why.test(e.message),
      v,
    );
    assert.match(iceServerProblem(v) ?? '', why);
  }
  assert.equal(iceServerProblem('stun:1.2.3.4:3478'), undefined);
});
