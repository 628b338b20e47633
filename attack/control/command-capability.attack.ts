/**
 * ATK-13 finding 3 (MEDIUM, design): `command` is one capability for every admin command, so a
 * key holding it exercises the admin node's admin powers.
 *
 * jobs/command-verifier.ts maps every command to the one `command` capability (COMMAND_CAPABILITY:
 * "One for now; the table is where a split goes"). The gateway's certificate is role `observer`
 * with `command` (node/membership/gateway-member.ts), described as taking no part in consensus.
 * But with it, the gateway key (or any member an admin gave `command`) has an admin node
 * (node-1 in the demo and compose) invite a device with `mine` and `command` (admin.inviteDevice:
 * node-1 signs the certificate: a new miner and a new commander, minted by a non-admin) and
 * revoke any member but an admin (admin.revokeDevice; the roster keeps admins), and sign any
 * knowledge entry as its own (admin.submitEntry). Issue 13 asked for a key "admitted in the roster
 * with the capabilities it may exercise" and for out-of-role commands to be refused; the roster
 * cannot say "may sync and report, may not change membership". Whoever takes the gateway's host
 * (its port 4000 is the one compose publishes) or its identity file is a network admin.
 *
 * Figures: the real CommandVerifier with the real Roster, the gateway's own certificate shape:
 * admin.inviteDevice {capabilities: [mine, command]} and admin.revokeDevice {a miner's key}, signed
 * by the gateway for an admin node, both verify (no refusal).
 *
 * Run: npm exec -- node --test attack/control/command-capability.attack.ts
 *
 * Fix that makes it pass: capabilities per command class (e.g. `command` for sync/report/FL,
 * `invite` for membership changes, none but admins for invitations carrying `mine`/`command`),
 * so COMMAND_CAPABILITY['admin.inviteDevice'|'admin.revokeDevice'] is not what the gateway's
 * observer certificate holds; the gateway asks for membership changes with an admin's own
 * signature (the console's admin signs, the gateway relays).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Json, signCommand } from '../../jobs/command-codec.ts';
import { CommandRefused, CommandVerifier } from '../../jobs/command-verifier.ts';
import type { AdminCommand } from '../../jobs/queues.ts';
import { toHex } from '../../node/chain/bytes.ts';
import { chainIdOf } from '../../node/chain/network-config.ts';
import { signCertificate } from '../../node/membership/certificate.ts';
import { GATEWAY_MEMBER } from '../../node/membership/gateway-member.ts';
import { Roster } from '../../node/membership/roster.ts';
import { genesisRoster } from '../../node/membership/roster-state.ts';
import { testKey, testNetwork } from '../../node/testing/forge.ts';

const admin = testKey(900);
const gateway = testKey(901);
const NODE = '12D3KooWtheAdminNode';
const NOW = 1_750_000_000_000;
const miner = testKey(902);
const config = testNetwork({
  membership: 'roster',
  admins: [toHex(admin.publicKey)],
  members: [
    { publicKey: toHex(miner.publicKey), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] },
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

function verdict(command: AdminCommand, args: Json): string {
  const roster = new Roster({ mode: 'roster', chainId, tipRoster: () => genesisRoster(config) });
  const v = new CommandVerifier({ nodeId: NODE, membership: roster, now: () => NOW });
  const c = signCommand({ command, target: NODE, args, ttlMs: 30_000, nowMs: NOW }, gateway);
  try {
    v.verify(command, { command: toHex(c.encoded), certificate: toHex(gatewayCert) }, `cmd.${c.nonceHex}`);
    return 'obeyed';
  } catch (err) {
    return err instanceof CommandRefused ? err.code : `error ${(err as Error).message}`;
  }
}

test('an observer with `command` cannot have an admin node mint a miner and commander', (t) => {
  const got = verdict('admin.inviteDevice', {
    name: 'sock puppet',
    role: 'submind',
    capabilities: ['mine', 'command'],
    expiresInMs: 10 * 365 * 86_400_000,
  });
  t.diagnostic(`admin.inviteDevice {mine, command} signed by the gateway: ${got}`);
  assert.equal(got, 'not-permitted');
});

test('an observer with `command` cannot have an admin node revoke a miner', (t) => {
  const got = verdict('admin.revokeDevice', { publicKey: toHex(miner.publicKey) });
  t.diagnostic(`admin.revokeDevice {a member miner's key} signed by the gateway: ${got}`);
  assert.equal(got, 'not-permitted');
});

test('control: the same observer is still obeyed for a sync (the test can pass)', () => {
  assert.equal(verdict('admin.syncChain', {}), 'obeyed');
});
