/**
 * A joined device keeps its inviter as a bootstrap peer across restarts (membership.json), and
 * bootstrap peer ids are read from any spelling of the address. Only bootstrap peers may serve a
 * node read-only while it is behind (node/p2p/admission-gate.ts `readOnlySource`), so a device
 * that stopped before it synced its inviter's admin would otherwise have no one to catch up from.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { bootstrapPeerId } from '../node.ts';
import { readInviterAddrs, readMembershipFile, saveMembershipFile } from './join.ts';

const ID = '12D3KooWSjyzTaqMqg1s3NRkQisyyRpMP7q4QpEmV8ysDkjb1g45';

test('the inviter’s addresses written at join are read back on every later start', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-join-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual(await readInviterAddrs(dir), [], 'a data dir that never joined has none');
  const addrs = [`/ip4/192.0.2.9/tcp/4001/p2p/${ID}`, `/ip4/192.0.2.9/udp/4002/webrtc-direct/p2p/${ID}`];
  await saveMembershipFile(dir, {
    version: 1,
    chainIdHex: 'ab',
    certificate: '0102',
    inviter: ID,
    inviterAddrs: addrs,
    joinedAtMs: 1,
  });
  assert.deepEqual(await readInviterAddrs(dir), addrs);
  assert.deepEqual(await readMembershipFile(dir), new Uint8Array([1, 2]));
  assert.equal((await stat(path.join(dir, 'membership.json'))).mode & 0o777, 0o600);
  // A file written before inviterAddrs existed still reads.
  await saveMembershipFile(dir, {
    version: 1,
    chainIdHex: 'ab',
    certificate: '01',
    inviter: ID,
    joinedAtMs: 1,
  });
  assert.deepEqual(await readInviterAddrs(dir), []);
});

test('bootstrap peer ids: every spelling multiaddr accepts; none for an address without one', () => {
  assert.equal(bootstrapPeerId(`/ip4/192.0.2.9/tcp/4001/p2p/${ID}`), ID);
  assert.equal(bootstrapPeerId(`/ip4/192.0.2.9/tcp/4001/ipfs/${ID}`), ID);
  assert.equal(
    bootstrapPeerId(
      `/ip4/192.0.2.1/tcp/1/p2p/12D3KooWNJDCz9i9NS2biohtwWJuCbhGpw793RyyV33bEyB8EhZv/p2p-circuit/p2p/${ID}`,
    ),
    ID,
    'a relayed address names the peer behind the relay',
  );
  assert.equal(bootstrapPeerId('/ip4/192.0.2.9/tcp/4001'), undefined);
  assert.equal(bootstrapPeerId('not a multiaddr'), undefined);
});
