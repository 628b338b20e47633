/** An issued membership is a certificate the roster admits and an addition the chain accepts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../chain/bytes.ts';
import { chainIdOf } from '../chain/network-config.ts';
import { testKey, testNetwork } from '../testing/forge.ts';
import { issueMembership } from './issue-certificate.ts';
import { applyEntries, entryProblem, genesisRoster, holds } from './roster-state.ts';

test('issueMembership: the addition is valid at the tip and grants what the terms say', () => {
  const admin = testKey(300);
  const device = testKey(301);
  const config = testNetwork({ membership: 'roster', admins: [toHex(admin.publicKey)] });
  const chainId = chainIdOf(config);
  const now = 1_750_000_000_000;
  const terms = {
    name: "Kim's tablet",
    role: 'submind' as const,
    capabilities: ['submit' as const],
    memberUntilMs: now + 86_400_000,
  };
  const { certificate, addition } = issueMembership(chainId, terms, toHex(device.publicKey), admin, now);
  assert.equal(certificate.subjectHex, toHex(device.publicKey));
  assert.equal(certificate.expiresAtMs, terms.memberUntilMs);
  const s = genesisRoster(config);
  assert.equal(entryProblem(s, addition, chainId, now), undefined);
  const after = applyEntries(s, [addition]);
  assert.equal(holds(after, toHex(device.publicKey), 'submit', now + 1), 'ok');
  assert.equal(holds(after, toHex(device.publicKey), 'mine', now + 1), 'lacks');
  // Issued by a key that is not an admin: the chain refuses the addition.
  const rogue = issueMembership(chainId, terms, toHex(device.publicKey), testKey(302), now);
  assert.equal(entryProblem(s, rogue.addition, chainId, now)?.code, 'author-not-admin');
});
