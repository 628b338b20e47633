import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ownTree, parseOwner } from './own-tree.ts';

test('parseOwner takes numeric UID:GID only', () => {
  assert.deepEqual(parseOwner('1000:1000'), { uid: 1000, gid: 1000 });
  for (const bad of ['node:node', '1000', '1000:', '-1:5', '1:2:3'])
    assert.throws(() => parseOwner(bad), /UID:GID/, bad);
});

test('ownTree gives a volume written by root to the containers’ user, once', {
  skip: process.getuid?.() !== 0 && 'needs root to chown',
}, async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-own-'));
  const elsewhere = await mkdtemp(path.join(tmpdir(), 'cairn-own-target-'));
  try {
    mkdirSync(path.join(dir, 'node-1'));
    writeFileSync(path.join(dir, 'node-1', 'identity.json'), '{}', { mode: 0o600 });
    writeFileSync(path.join(dir, 'network.json'), '{}');
    // A link out of the volume: the link is the volume's, its target is not.
    writeFileSync(path.join(elsewhere, 'target'), 'x');
    symlinkSync(path.join(elsewhere, 'target'), path.join(dir, 'node-1', 'link'));
    const owner = { uid: 1000, gid: 1000 };
    // dir, node-1, identity.json, link, network.json
    assert.equal(ownTree(path.join(dir), owner), 5);
    for (const f of ['node-1', 'node-1/identity.json', 'node-1/link', 'network.json']) {
      const st = lstatSync(path.join(dir, f));
      assert.deepEqual([st.uid, st.gid], [1000, 1000], f);
    }
    // Settled: nothing to change on the next run.
    assert.equal(ownTree(dir, owner), 0);
    assert.equal(lstatSync(path.join(elsewhere, 'target')).uid, process.getuid!());
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(elsewhere, { recursive: true, force: true });
  }
});
