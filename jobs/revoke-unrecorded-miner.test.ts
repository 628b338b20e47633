/**
 * Review of ATK-13's ADMIN_ONLY_CAPABILITIES, finding (LOW; fixed): the rule "revoking a member
 * holding mine, command or coordinate needs an admin's signature" looked the target up with
 * `membership.memberAt`, which knows only members *recorded* on the chain. A device that has just
 * redeemed an invitation is a member by its certificate alone until its `member.add` is mined, so
 * the gateway's observer key (role observer, `command`) could have an admin node revoke it:
 * measured `obeyed` (the recorded miner's `not-permitted`), after which the miner's certificate
 * was refused `revoked`. Now the target is judged by the certificates the node knows too
 * (Roster.certifiedCapabilities: ones it admitted or issued), and a key it knows nothing of is
 * refused in doubt.
 *
 * Rig: the real Roster, CommandVerifier, certificate signing and roster-state rules, as in
 * jobs/command-capability.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry } from '../node/chain/authoring.ts';
import { toHex } from '../node/chain/bytes.ts';
import { chainIdOf } from '../node/chain/network-config.ts';
import { signCertificate } from '../node/membership/certificate.ts';
import { GATEWAY_MEMBER } from '../node/membership/gateway-member.ts';
import { issueMembership } from '../node/membership/issue-certificate.ts';
import { Roster } from '../node/membership/roster.ts';
import {
  applyEntries,
  certificateRefusal,
  genesisRoster,
  MEMBER_REVOKE,
  type RosterState,
} from '../node/membership/roster-state.ts';
import { testKey, testNetwork } from '../node/testing/forge.ts';
import { signCommand } from './command-codec.ts';
import { CommandRefused, CommandVerifier } from './command-verifier.ts';

const admin = testKey(910);
const gateway = testKey(911);
const recordedMiner = testKey(912);
const newMiner = testKey(913);
const NODE = '12D3KooWtheAdminNode';
const NOW = 1_750_000_000_000;
const config = testNetwork({
  membership: 'roster',
  admins: [toHex(admin.publicKey)],
  members: [
    {
      publicKey: toHex(recordedMiner.publicKey),
      name: 'miner',
      role: 'submind',
      capabilities: ['mine', 'submit'],
    },
  ],
});
const chainId = chainIdOf(config);
const gatewayCert = signCertificate(
  {
    chainId,
    subject: gateway.publicKey,
    name: 'gateway',
    role: GATEWAY_MEMBER.role,
    capabilities: GATEWAY_MEMBER.capabilities,
    issuedAtMs: NOW - 60_000,
    expiresAtMs: NOW + 86_400_000,
  },
  admin,
).encoded;

test("the gateway's key cannot revoke a miner the admin just admitted (its record not mined yet)", (t) => {
  let state: RosterState = genesisRoster(config);
  const roster = new Roster({ mode: 'roster', chainId, tipRoster: () => state });
  // The device redeems its invitation: the admin node signs its certificate and a member.add entry
  // that has yet to be mined.
  const { certificate, addition } = issueMembership(
    chainId,
    {
      name: 'new miner',
      role: 'submind',
      capabilities: ['mine', 'submit'],
      memberUntilMs: NOW + 30 * 86_400_000,
    },
    toHex(newMiner.publicKey),
    admin,
    NOW - 10_000,
  );
  const newKey = toHex(newMiner.publicKey);
  const admitted = roster.admit(newKey, certificate.encoded, NOW);
  assert.ok(admitted.ok, 'the new miner is admitted by its certificate');
  const caps = admitted.ok ? [...admitted.member.capabilities] : [];
  assert.ok(caps.includes('mine'), 'with mine');

  const verifier = new CommandVerifier({ nodeId: NODE, membership: roster, now: () => NOW });
  const verdict = (publicKey: string): string => {
    const c = signCommand(
      { command: 'admin.revokeDevice', target: NODE, args: { publicKey }, ttlMs: 30_000, nowMs: NOW },
      gateway,
    );
    try {
      verifier.verify(
        'admin.revokeDevice',
        { command: toHex(c.encoded), certificate: toHex(gatewayCert) },
        `cmd.${c.nonceHex}`,
      );
      return 'obeyed';
    } catch (err) {
      return err instanceof CommandRefused ? err.code : `error ${(err as Error).message}`;
    }
  };
  const recorded = verdict(toHex(recordedMiner.publicKey));
  const fresh = verdict(newKey);

  // What obeying does: the admin node signs the revocation itself (node.ts revokeMember).
  const revocation = createEntry({ kind: 'config', changes: [[MEMBER_REVOKE, newKey]] }, admin, NOW);
  state = applyEntries(state, [revocation, addition]);
  const refusalAfter = certificateRefusal(state, certificate, chainId, NOW + 1);
  t.diagnostic(
    `new miner admitted with ${JSON.stringify(caps)}, memberAt ${String(roster.memberAt(newKey, NOW))}; ` +
      `gateway revokes the recorded miner: ${recorded}, the new miner: ${fresh}; ` +
      `after the revocation its certificate: ${refusalAfter ?? 'accepted'}, recorded: ${state.members.has(newKey)}`,
  );
  assert.equal(recorded, 'not-permitted', 'control: a recorded miner is protected');
  assert.equal(fresh, 'not-permitted', "revoking the admin's new miner needs an admin's signature");
});

test("a key the node knows no record or certificate of is not revoked on the gateway's word", () => {
  const state = genesisRoster(config);
  const roster = new Roster({ mode: 'roster', chainId, tipRoster: () => state });
  const verifier = new CommandVerifier({ nodeId: NODE, membership: roster, now: () => NOW });
  const unknown = toHex(testKey(914).publicKey);
  const c = signCommand(
    { command: 'admin.revokeDevice', target: NODE, args: { publicKey: unknown }, ttlMs: 30_000, nowMs: NOW },
    gateway,
  );
  assert.throws(
    () =>
      verifier.verify(
        'admin.revokeDevice',
        { command: toHex(c.encoded), certificate: toHex(gatewayCert) },
        `cmd.${c.nonceHex}`,
      ),
    (e: unknown) => e instanceof CommandRefused && e.code === 'not-permitted',
  );
  // A certificate this admin node issued (the device has not connected yet) is known too.
  const { certificate } = issueMembership(
    chainId,
    { name: 'invited', role: 'submind', capabilities: ['mine'], memberUntilMs: NOW + 86_400_000 },
    unknown,
    admin,
    NOW - 1_000,
  );
  roster.noteCertificate(certificate);
  assert.ok(roster.certifiedCapabilities(unknown, NOW)?.has('mine'));
});
