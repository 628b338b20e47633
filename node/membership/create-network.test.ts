/**
 * Networks Cairn creates are roster networks: a new data dir gets its own network with its key
 * as admin, kept across restarts; devices set up together are all in the genesis roster.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { chainIdHex } from '../chain/network-config.ts';
import { readNetworkConfig } from '../config-file.ts';
import { loadOrCreateIdentity } from '../identity/identity.ts';
import { ensureDeviceNetwork, loadOrCreateOwnNetwork } from './create-network.ts';
import { genesisRoster, holds } from './roster-state.ts';

test('a new data dir creates its own roster network with its key as admin, and keeps it', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-net-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const own = await loadOrCreateIdentity(dir);
  const first = await loadOrCreateOwnNetwork(dir, own.publicKeyHex);
  assert.equal(first.created, true);
  assert.equal(first.config.membership, 'roster');
  assert.deepEqual(first.config.admins, [own.publicKeyHex]);
  const again = await loadOrCreateOwnNetwork(dir, own.publicKeyHex);
  assert.equal(again.created, false);
  assert.equal(chainIdHex(again.config), chainIdHex(first.config), 'same chain on restart');
  // Another data dir makes another network.
  const other = await mkdtemp(path.join(tmpdir(), 'cairn-net-'));
  t.after(() => rm(other, { recursive: true, force: true }));
  const o = await loadOrCreateIdentity(other);
  assert.notEqual(
    chainIdHex((await loadOrCreateOwnNetwork(other, o.publicKeyHex)).config),
    chainIdHex(first.config),
  );
});

test('devices set up together: identities first, every one in the genesis roster, the first admin', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-net-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = ensureDeviceNetwork(dir, ['hub', 'laptop', 'tablet'], { blockTimeMs: 2000 });
  const config = await readNetworkConfig(file);
  assert.equal(config.membership, 'roster');
  assert.equal(config.blockTimeMs, 2000);
  const keys = await Promise.all(
    ['hub', 'laptop', 'tablet'].map(
      async (n) => (await loadOrCreateIdentity(path.join(dir, n))).publicKeyHex,
    ),
  );
  assert.deepEqual(config.admins, [keys[0]]);
  const roster = genesisRoster(config);
  for (const k of keys) assert.equal(holds(roster, k, 'mine', Date.now()), 'ok');
  // Run again: the network (and so the chain) is kept.
  const text = await readFile(file, 'utf8');
  ensureDeviceNetwork(dir, ['hub', 'laptop', 'tablet', 'phone']);
  assert.equal(await readFile(file, 'utf8'), text);
});
