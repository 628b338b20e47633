import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { testNetwork } from '../testing/forge.ts';
import { ensureIdentity } from './create-network.ts';
import { deviceKeys } from './device-record.ts';
import { readOwnOrForeign, readRegularFile, UnsafeFileError, writeFileNoFollow } from './root-files.ts';

const scratch = (t: { after(fn: () => void): void }) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-root-files-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};
const code = (c: string) => (e: unknown) => e instanceof UnsafeFileError && e.code === c;

test('a link, dangling or not, or a FIFO is never read; a regular file is', (t) => {
  const dir = scratch(t);
  writeFileSync(path.join(dir, 'secret'), 'admin key');
  symlinkSync('secret', path.join(dir, 'link'));
  symlinkSync('nowhere', path.join(dir, 'dangling'));
  execFileSync('mkfifo', [path.join(dir, 'fifo')]);
  assert.throws(() => readRegularFile(path.join(dir, 'link')), code('link'));
  assert.throws(() => readRegularFile(path.join(dir, 'dangling')), code('link'));
  assert.throws(() => readRegularFile(path.join(dir, 'fifo')), code('not-regular'));
  assert.throws(() => readRegularFile(path.join(dir, 'secret'), 3), code('too-large'));
  assert.equal(readRegularFile(path.join(dir, 'secret')), 'admin key');
  assert.equal(readRegularFile(path.join(dir, 'absent')), undefined);
});

test('a write replaces a link planted at its name and never writes through it', (t) => {
  const dir = scratch(t);
  const victim = path.join(dir, 'victim');
  writeFileSync(victim, 'admin key');
  const device = path.join(dir, 'device');
  mkdirSync(device);
  symlinkSync('../victim', path.join(device, 'identity.json'));
  writeFileNoFollow(path.join(device, 'identity.json'), 'new', { tmpDir: path.join(dir, 'tmp') });
  assert.equal(readFileSync(victim, 'utf8'), 'admin key');
  assert.ok(lstatSync(path.join(device, 'identity.json')).isFile());
  assert.equal(readFileSync(path.join(device, 'identity.json'), 'utf8'), 'new');
  // A device folder that is itself a link is refused.
  symlinkSync(dir, path.join(dir, 'linked-device'));
  assert.throws(() => writeFileNoFollow(path.join(dir, 'linked-device', 'x'), 'y'), code('link'));
});

test('ensureIdentity refuses a linked identity and creates one without following planted temp names', (t) => {
  const dir = scratch(t);
  const admin = path.join(dir, 'node-1');
  const adminKey = ensureIdentity(admin);
  const before = readFileSync(path.join(admin, 'identity.json'), 'utf8');
  const node3 = path.join(dir, 'node-3');
  mkdirSync(node3);
  symlinkSync('../node-1/identity.json', path.join(node3, 'identity.json'));
  assert.throws(() => ensureIdentity(node3), code('link'));
  rmSync(path.join(node3, 'identity.json'));
  for (let pid = 1; pid <= 50; pid++)
    symlinkSync('../node-1/identity.json', path.join(node3, `identity.json.${pid}.tmp`));
  assert.notEqual(ensureIdentity(node3), adminKey);
  assert.equal(readFileSync(path.join(admin, 'identity.json'), 'utf8'), before);
});

test("device ids come from network-init's record once taken, not from the device's folder", (t) => {
  const dir = scratch(t);
  const key1 = ensureIdentity(path.join(dir, 'node-1'));
  const config = testNetwork({
    membership: 'roster',
    admins: [key1],
    members: [{ publicKey: key1, name: 'node-1', role: 'hub', capabilities: ['mine'] }],
  });
  // node-3 is not in the genesis roster: its folder's identity is read once and recorded.
  const first = deviceKeys(dir, ['node-1', 'node-3'], config);
  const node3 = Buffer.from(first.get('node-3')!).toString('hex');
  assert.equal(Buffer.from(first.get('node-1')!).toString('hex'), key1);
  // Its container then swaps in a copy of node-1's identity: the record still says its own key.
  rmSync(path.join(dir, 'node-3', 'identity.json'));
  writeFileSync(
    path.join(dir, 'node-3', 'identity.json'),
    readFileSync(path.join(dir, 'node-1', 'identity.json')),
  );
  const again = deviceKeys(dir, ['node-1', 'node-3'], config);
  assert.equal(Buffer.from(again.get('node-3')!).toString('hex'), node3);
  // A record naming one key twice is refused (one Redis user would hold two queues).
  assert.throws(
    () =>
      deviceKeys(dir, ['node-1', 'node-1b'], {
        ...config,
        members: [...config.members, { ...config.members[0]!, name: 'node-1b' }],
      }),
    /the same key/,
  );
});

test("a service's own key file may be a link (a mounted secret); in a foreign folder it may not", (t) => {
  const dir = scratch(t);
  writeFileSync(path.join(dir, 'secret'), 'key');
  symlinkSync('secret', path.join(dir, 'identity.json'));
  assert.equal(readOwnOrForeign(path.join(dir, 'identity.json'), undefined), 'key');
  assert.throws(
    () => readOwnOrForeign(path.join(dir, 'identity.json'), { tmpDir: path.join(dir, 'tmp') }),
    code('link'),
  );
  assert.equal(readOwnOrForeign(path.join(dir, 'absent'), undefined), undefined);
});
