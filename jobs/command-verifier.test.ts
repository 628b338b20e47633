import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEntry } from '../node/chain/authoring.ts';
import { toHex } from '../node/chain/bytes.ts';
import { chainIdOf } from '../node/chain/network-config.ts';
import type { SigningKey } from '../node/chain/signature.ts';
import { signCertificate } from '../node/membership/certificate.ts';
import { GATEWAY_MEMBER } from '../node/membership/gateway-member.ts';
import { Roster } from '../node/membership/roster.ts';
import {
  applyEntries,
  genesisRoster,
  MEMBER_REVOKE,
  type RosterState,
} from '../node/membership/roster-state.ts';
import { testKey, testNetwork } from '../node/testing/forge.ts';
import { type CommandToSign, signCommand } from './command-codec.ts';
import {
  COMMAND_START_SKEW_MS,
  type CommandRefusal,
  CommandRefused,
  CommandVerifier,
  refusalOf,
} from './command-verifier.ts';

const admin = testKey(800);
const gateway = testKey(801);
const miner = testKey(802);
const stranger = testKey(803);
const NODE = '12D3KooWthisNode';
const NOW = 1_750_000_000_000;
const hex = (k: SigningKey) => toHex(k.publicKey);
const config = testNetwork({
  membership: 'roster',
  admins: [hex(admin)],
  members: [{ publicKey: hex(miner), name: 'miner', role: 'submind', capabilities: ['mine', 'submit'] }],
});
const chainId = chainIdOf(config);

const gatewayCert = (o: { from?: number; to?: number; caps?: readonly ('command' | 'train')[] } = {}) =>
  signCertificate(
    {
      chainId,
      subject: gateway.publicKey,
      name: 'gateway',
      role: GATEWAY_MEMBER.role,
      capabilities: o.caps ?? GATEWAY_MEMBER.capabilities,
      issuedAtMs: o.from ?? NOW - 60_000,
      expiresAtMs: o.to ?? NOW + 86_400_000,
    },
    admin,
  ).encoded;

function setup(o: { mode?: 'roster' | 'open'; commandKeys?: string[]; maxNonces?: number } = {}) {
  const state: { current: RosterState; now: number } = { current: genesisRoster(config), now: NOW };
  const roster = new Roster({ mode: o.mode ?? 'roster', chainId, tipRoster: () => state.current });
  const v = new CommandVerifier({
    nodeId: NODE,
    membership: roster,
    commandKeys: o.commandKeys,
    maxNonces: o.maxNonces,
    now: () => state.now,
  });
  return { v, state };
}

const job = (k: SigningKey, o: Partial<CommandToSign> = {}, certificate?: Uint8Array) => {
  const c = signCommand(
    { command: 'admin.syncChain', target: NODE, args: {}, ttlMs: 30_000, nowMs: NOW, ...o },
    k,
  );
  return {
    name: c.command as string,
    id: `cmd.${c.nonceHex}` as string | undefined,
    data: {
      command: toHex(c.encoded),
      ...(certificate ? { certificate: toHex(certificate) } : {}),
    } as Record<string, unknown>,
  };
};

const refusal = (
  v: CommandVerifier,
  j: { name: string; data: unknown; id?: string | undefined },
): CommandRefusal | 'ran' => {
  try {
    v.verify(j.name, j.data, j.id);
    return 'ran';
  } catch (err) {
    assert.ok(err instanceof CommandRefused, `${err}`);
    assert.equal(refusalOf(err.message), err.code, 'the failed reason carries the code');
    return err.code;
  }
};

test('the gateway, admitted by its certificate with "command", is obeyed; its args are what it signed', () => {
  const { v } = setup();
  const j = job(
    gateway,
    { command: 'admin.submitEntry', args: { content: 'hi', metadata: [] } },
    gatewayCert(),
  );
  const cmd = v.verify(j.name, j.data, j.id);
  assert.deepEqual(cmd.args, { content: 'hi', metadata: [] });
  assert.equal(v.remembered, 1);
  // Admins may do anything, without a certificate.
  assert.equal(refusal(v, job(admin)), 'ran');
});

test('unsigned, malformed, bad signature, wrong target or command, expired, not yet valid: each has its code', () => {
  const { v, state } = setup();
  const cert = gatewayCert();
  assert.equal(refusal(v, { name: 'admin.submitEntry', data: { content: 'x', metadata: [] } }), 'unsigned');
  assert.equal(refusal(v, { name: 'admin.syncChain', data: null }), 'unsigned');
  assert.equal(refusal(v, { name: 'admin.syncChain', data: { command: 'zz' } }), 'malformed');
  assert.equal(refusal(v, { name: 'admin.syncChain', data: { command: 'abcd' } }), 'malformed');
  const good = job(gateway, {}, cert);
  const sig = String(good.data.command);
  const flipped = `${sig.slice(0, -2)}${sig.endsWith('00') ? '01' : '00'}`;
  assert.equal(refusal(v, { name: good.name, data: { ...good.data, command: flipped } }), 'bad-signature');
  assert.equal(refusal(v, { ...job(gateway, {}, cert), name: 'admin.blockPeers' }), 'wrong-command');
  assert.equal(refusal(v, job(gateway, { target: '12D3KooWother' }, cert)), 'wrong-target');
  assert.equal(refusal(v, job(gateway, { nowMs: NOW - 60_000, ttlMs: 59_999 }, cert)), 'expired');
  assert.equal(refusal(v, job(gateway, { nowMs: NOW + 31_000 }, cert)), 'not-yet-valid');
  // Queued while the node was down: by the time it runs it has expired.
  const queued = job(gateway, {}, cert);
  state.now = NOW + 30_000;
  assert.equal(refusal(v, queued), 'expired');
  assert.equal(v.remembered, 0, 'nothing refused is remembered');
});

test('a replay is refused until the command expires, and then as expired', () => {
  const { v, state } = setup();
  const j = job(gateway, {}, gatewayCert());
  assert.equal(refusal(v, j), 'ran');
  assert.equal(refusal(v, j), 'replayed');
  state.now = NOW + 30_000;
  assert.equal(refusal(v, j), 'expired');
});

test('strangers, members without "command", expired or revoked gateways are refused', () => {
  const { v, state } = setup();
  assert.equal(refusal(v, job(stranger)), 'not-admitted');
  assert.equal(refusal(v, job(miner)), 'not-permitted', 'a member, but it may not command');
  assert.equal(refusal(v, job(gateway)), 'not-admitted', 'no certificate, not on the chain');
  assert.equal(refusal(v, job(gateway, {}, gatewayCert({ caps: ['train'] }))), 'not-permitted');
  assert.equal(
    refusal(v, job(gateway, {}, gatewayCert({ to: NOW - 1, from: NOW - 10_000 }))),
    'not-admitted',
  );
  // A stranger presenting a certificate made for the gateway: wrong subject.
  assert.equal(refusal(v, job(stranger, {}, gatewayCert())), 'not-admitted');
  const revoke = createEntry({ kind: 'config', changes: [[MEMBER_REVOKE, hex(gateway)]] }, admin, NOW);
  state.current = applyEntries(state.current, [revoke]);
  state.now = NOW + 1;
  assert.equal(refusal(v, job(gateway, { nowMs: NOW + 1 }, gatewayCert())), 'not-admitted');
});

test('open networks obey only --command-keys; with none, no command at all', () => {
  const none = setup({ mode: 'open' }).v;
  assert.equal(refusal(none, job(gateway)), 'not-admitted');
  assert.equal(refusal(none, job(admin)), 'not-admitted');
  const keyed = setup({ mode: 'open', commandKeys: [hex(gateway).toUpperCase()] }).v;
  assert.equal(refusal(keyed, job(gateway)), 'ran');
  assert.equal(refusal(keyed, job(stranger)), 'not-admitted');
});

test('the nonce cache is bounded: full of unexpired commands it refuses as busy, then frees expired ones', () => {
  const { v, state } = setup({ maxNonces: 3 });
  const cert = gatewayCert();
  for (let i = 0; i < 3; i++) assert.equal(refusal(v, job(gateway, { ttlMs: 10_000 + i }, cert)), 'ran');
  assert.equal(refusal(v, job(gateway, {}, cert)), 'busy');
  state.now = NOW + 10_001;
  assert.equal(refusal(v, job(gateway, { nowMs: NOW + 10_001 }, cert)), 'ran');
  assert.equal(v.remembered, 2, 'two expired nonces went, one is left, one came');
});

test('a restarted node refuses commands issued before it started: a replay captured earlier cannot run', () => {
  // The first process runs the command; the restarted one has no memory of its nonce.
  const first = setup();
  const j = job(gateway, { ttlMs: 30_000 }, gatewayCert());
  assert.equal(refusal(first.v, j), 'ran');
  const restarted = setup();
  restarted.state.now = NOW + 5_000;
  const afterRestart = new CommandVerifier({
    nodeId: NODE,
    membership: new Roster({ mode: 'roster', chainId, tipRoster: () => restarted.state.current }),
    now: () => restarted.state.now,
  });
  assert.equal(
    refusal(afterRestart, j),
    'issued-before-start',
    'still unexpired, but issued before the restart',
  );
  // Within the skew of the start (clocks differ a little) it is taken; anything later too.
  assert.equal(
    refusal(afterRestart, job(gateway, { nowMs: NOW + 5_000 - COMMAND_START_SKEW_MS }, gatewayCert())),
    'ran',
  );
  assert.equal(refusal(afterRestart, job(gateway, { nowMs: NOW + 5_000 }, gatewayCert())), 'ran');
});

test('a signed command moved to another job id is refused (wrong-job-id) and its nonce stays unused', () => {
  const { v } = setup();
  const genuine = job(gateway, {}, gatewayCert());
  // Attack 07 c): the signed bytes re-queued under an id the gateway does not wait on.
  assert.equal(refusal(v, { ...genuine, id: 'attacker.1750000000000' }), 'wrong-job-id');
  assert.equal(refusal(v, { ...genuine, id: undefined }), 'wrong-job-id');
  assert.equal(refusal(v, { ...genuine, id: `${genuine.id}x` }), 'wrong-job-id');
  assert.equal(v.remembered, 0, 'a refused copy does not burn the nonce');
  // The genuine job, under the id its caller watches, still runs once.
  assert.equal(refusal(v, genuine), 'ran');
  assert.equal(refusal(v, genuine), 'replayed');
});

test('a command the node disabled is refused as disabled, signed, only once the signer may command it', () => {
  const key = hex(gateway);
  const v = new CommandVerifier({
    nodeId: NODE,
    membership: new Roster({ mode: 'open', chainId, tipRoster: () => genesisRoster(config) }),
    commandKeys: [key],
    disabledCommands: new Map([['admin.sendMessage', 'start it with --allow-operator-messages']]),
    now: () => NOW,
  });
  const job = (signer: SigningKey, command: 'admin.sendMessage' | 'admin.syncChain', args: object) => {
    const c = signCommand({ command, target: NODE, args: args as never, ttlMs: 30_000, nowMs: NOW }, signer);
    return () => v.verify(command, { command: toHex(c.encoded) }, `cmd.${c.nonceHex}`);
  };
  const refusal = (run: () => unknown) => {
    try {
      run();
      return 'ran';
    } catch (err) {
      assert.ok(err instanceof CommandRefused);
      return `${err.code}${err.command ? ' signed' : ''}`;
    }
  };
  const send = { to: 'bob', text: 'hi' };
  assert.equal(refusal(job(gateway, 'admin.sendMessage', send)), 'disabled signed');
  // A stranger learns nothing of the node's config: not admitted, unsigned.
  assert.equal(refusal(job(stranger, 'admin.sendMessage', send)), 'not-admitted');
  // Other commands are untouched, and a disabled one does not use up its nonce.
  assert.equal(refusal(job(gateway, 'admin.syncChain', {})), 'ran');
  assert.equal(v.remembered, 1);
  assert.equal(refusalOf('command refused (disabled): start it with --allow-operator-messages'), 'disabled');
});
