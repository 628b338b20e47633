/**
 * ATK-13 finding 3 (MEDIUM, design; fixed): `command` is one capability for every admin command
 * (the certificate's u8 mask has no room for a split), so the gateway's observer key, which holds
 * it, could have an admin node invite a device with `mine` and `command` (a new miner and
 * commander minted by a non-admin) and revoke any member miner: whoever took the gateway's host
 * or key was a network admin. Now membership changes that grant or take away `mine`, `command` or
 * `coordinate` (ADMIN_ONLY_CAPABILITIES) need an admin's own signature; the gateway still
 * invites and revokes devices without them, and still runs every other command.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toHex } from '../node/chain/bytes.ts';
import { chainIdOf } from '../node/chain/network-config.ts';
import { signCertificate } from '../node/membership/certificate.ts';
import { GATEWAY_MEMBER } from '../node/membership/gateway-member.ts';
import { Roster } from '../node/membership/roster.ts';
import { genesisRoster } from '../node/membership/roster-state.ts';
import { testKey, testNetwork } from '../node/testing/forge.ts';
import { type Json, signCommand } from './command-codec.ts';
import { CommandRefused, CommandVerifier } from './command-verifier.ts';
import type { AdminCommand } from './queues.ts';

const admin = testKey(900);
const gateway = testKey(901);
const NODE = '12D3KooWtheAdminNode';
const NOW = 1_750_000_000_000;
const miner = testKey(902);
const reader = testKey(903);
const config = testNetwork({
  membership: 'roster',
  admins: [toHex(admin.publicKey)],
  members: [
    { publicKey: toHex(miner.publicKey), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] },
    { publicKey: toHex(reader.publicKey), name: 'reader', role: 'observer', capabilities: ['message'] },
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

function verdict(command: AdminCommand, args: Json, signer = gateway): string {
  const roster = new Roster({ mode: 'roster', chainId, tipRoster: () => genesisRoster(config) });
  const v = new CommandVerifier({ nodeId: NODE, membership: roster, now: () => NOW });
  const c = signCommand({ command, target: NODE, args, ttlMs: 30_000, nowMs: NOW }, signer);
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

test('the observer may still invite and revoke devices that hold none of mine, command, coordinate', () => {
  assert.equal(
    verdict('admin.inviteDevice', {
      name: "Kim's tablet",
      role: 'observer',
      capabilities: ['train', 'message'],
      expiresInMs: 30 * 86_400_000,
    }),
    'obeyed',
  );
  assert.equal(verdict('admin.revokeDevice', { publicKey: toHex(reader.publicKey) }), 'obeyed');
});

test('an admin key may invite a miner and revoke one', () => {
  const args = { name: 'new miner', role: 'submind', capabilities: ['mine'], expiresInMs: 86_400_000 };
  assert.equal(verdict('admin.inviteDevice', args, admin), 'obeyed');
  assert.equal(verdict('admin.revokeDevice', { publicKey: toHex(miner.publicKey) }, admin), 'obeyed');
});
