/**
 * The MembershipView the gater and handshake ask: chain members are admitted by key, others by
 * a presented certificate, and every refusal has its code (counted through `observe`).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry } from '../chain/authoring.ts';
import { toHex } from '../chain/bytes.ts';
import { chainIdOf } from '../chain/network-config.ts';
import type { SigningKey } from '../chain/signature.ts';
import { testKey, testNetwork } from '../testing/forge.ts';
import { signCertificate } from './certificate.ts';
import { Roster } from './roster.ts';
import { applyEntries, genesisRoster, MEMBER_ADD, MEMBER_REVOKE, type RosterState } from './roster-state.ts';
import { type AdmissionRefusal, CAPABILITIES } from './view.ts';

const admin = testKey(500);
const member = testKey(501);
const device = testKey(502);
const hex = (k: SigningKey) => toHex(k.publicKey);
const NOW = 1_750_000_000_000;
const config = testNetwork({
  membership: 'roster',
  admins: [hex(admin)],
  members: [
    {
      publicKey: hex(member),
      name: 'laptop',
      role: 'submind',
      capabilities: ['mine'],
      expiresAtMs: NOW + 1000,
    },
  ],
});
const chainId = chainIdOf(config);

const certFor = (
  k: SigningKey,
  o: { issuer?: SigningKey; chainId?: Uint8Array; from?: number; to?: number } = {},
) =>
  signCertificate(
    {
      chainId: o.chainId ?? chainId,
      subject: k.publicKey,
      name: "Kim's tablet",
      role: 'observer',
      capabilities: ['train', 'mine'],
      issuedAtMs: o.from ?? NOW - 1000,
      expiresAtMs: o.to ?? NOW + 60_000,
    },
    o.issuer ?? admin,
  ).encoded;

function rosterOf(state: { current: RosterState }, mode: 'roster' | 'open' = 'roster') {
  const refused: AdmissionRefusal[] = [];
  const r = new Roster(
    { mode, chainId, tipRoster: () => state.current },
    { observe: (c) => refused.push(c) },
  );
  return { r, refused };
}

test('members on the chain are admitted by key until they expire; admins always', () => {
  const { r } = rosterOf({ current: genesisRoster(config) });
  const m = r.admit(hex(member), undefined, NOW);
  assert.ok(m.ok && m.member.name === 'laptop' && !m.member.admin);
  const a = r.admit(hex(admin), undefined, NOW);
  assert.ok(a.ok && a.member.admin && a.member.capabilities.size === CAPABILITIES.length);
  const late = r.admit(hex(member), undefined, NOW + 1000);
  assert.deepEqual(late, { ok: false, code: 'expired' });
  assert.equal(r.memberAt(hex(member), NOW + 1000), undefined);
});

test('a presented certificate admits a device the chain does not record yet; each flaw has its code', () => {
  const state = { current: genesisRoster(config) };
  const { r, refused } = rosterOf(state);
  const ok = r.admit(hex(device), certFor(device), NOW);
  assert.ok(ok.ok);
  assert.equal(ok.member.role, 'observer');
  assert.deepEqual([...ok.member.capabilities], ['train'], 'an observer never mines');
  const cases: [Uint8Array | undefined, AdmissionRefusal, string?][] = [
    [undefined, 'no-certificate'],
    [new Uint8Array([1, 2, 3]), 'malformed-certificate'],
    [certFor(member), 'wrong-subject'],
    [certFor(device, { issuer: testKey(9) }), 'unknown-issuer'],
    [certFor(device, { chainId: new Uint8Array(32) }), 'wrong-network'],
    [certFor(device, { from: NOW + 5000, to: NOW + 9000 }), 'not-yet-valid'],
    [certFor(device, { from: NOW - 9000, to: NOW - 1 }), 'expired'],
  ];
  for (const [cert, code] of cases)
    assert.deepEqual(r.admit(hex(device), cert, NOW), { ok: false, code }, code);
  const forged = certFor(device);
  forged[forged.length - 1]! ^= 1;
  assert.deepEqual(r.admit(hex(device), forged, NOW), { ok: false, code: 'bad-signature' });
  // From an issuer we do not know, a forged signature is still 'bad-signature': 'unknown-issuer'
  // (which a node that is behind may take read-only) always means a valid signature.
  const stranger = certFor(device, { issuer: testKey(9) });
  stranger[stranger.length - 1]! ^= 1;
  assert.deepEqual(r.admit(hex(device), stranger, NOW), { ok: false, code: 'bad-signature' });
  // Revoked on the chain: its certificate (issued before) is refused, and listeners hear it.
  const lost: string[][] = [];
  r.onChange((c) => lost.push([...c.revoked]));
  state.current = applyEntries(state.current, [
    createEntry({ kind: 'config', changes: [[MEMBER_REVOKE, hex(device)]] }, admin, NOW),
  ]);
  r.refresh(NOW);
  assert.deepEqual(lost, [[hex(device)]]);
  assert.deepEqual(r.admit(hex(device), certFor(device), NOW + 1), { ok: false, code: 'revoked' });
  assert.deepEqual(r.admit(hex(device), undefined, NOW + 1), { ok: false, code: 'revoked' });
  assert.equal(refused.length, cases.length + 4, 'every refusal is counted');
  // A certificate issued after the revocation admits it again.
  assert.ok(r.admit(hex(device), certFor(device, { from: NOW + 1 }), NOW + 2).ok);
});

test('open mode admits every key with every capability but admin', () => {
  const { r } = rosterOf({ current: genesisRoster(config) }, 'open');
  const a = r.admit(hex(device), undefined, NOW);
  assert.ok(a.ok && !a.member.admin && a.member.capabilities.has('mine'));
  assert.equal(r.ownCertificate(), undefined);
});

test('a certificate the chain records before its issued-at admits its key only from then', () => {
  const addition = createEntry(
    { kind: 'config', changes: [[MEMBER_ADD, toHex(certFor(device, { from: NOW + 5000, to: NOW + 9000 }))]] },
    admin,
    NOW,
  );
  const { r } = rosterOf({ current: applyEntries(genesisRoster(config), [addition]) });
  assert.equal(r.memberAt(hex(device), NOW + 4999), undefined, 'not a member before issued-at');
  assert.deepEqual(r.admit(hex(device), undefined, NOW + 4999), { ok: false, code: 'not-yet-valid' });
  assert.equal(r.memberAt(hex(device), NOW + 5000)?.name, "Kim's tablet");
  assert.ok(r.admit(hex(device), undefined, NOW + 5000).ok);
});
