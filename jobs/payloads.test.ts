import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NEVER_EXPIRES } from '../node/chain/network-config.ts';
import { isoOfMs, MembersResult } from './payloads.ts';

test('a member that never expires (an admin, a genesis member) passes the members result schema', () => {
  const row = (expiresAtMs: number) => ({
    mode: 'roster',
    members: [
      {
        publicKey: 'a'.repeat(64),
        name: 'admin',
        role: 'hub',
        capabilities: ['mine'],
        admin: true,
        issuedAt: isoOfMs(0),
        expiresAt: isoOfMs(expiresAtMs),
        state: 'member',
      },
    ],
  });
  assert.equal(MembersResult.safeParse(row(NEVER_EXPIRES)).success, true);
  assert.equal(isoOfMs(NEVER_EXPIRES), '9999-12-31T23:59:59.999Z');
  assert.equal(isoOfMs(Date.UTC(2030, 0, 1)), '2030-01-01T00:00:00.000Z');
});
