import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { prepareDataDir } from './data-dir.ts';

test('the data dir is 0700, an existing one is tightened, and files made after it are 0600', async (t) => {
  const root = await mkdtemp(path.join(tmpdir(), 'cairn-datadir-'));
  const umask = process.umask();
  t.after(async () => {
    process.umask(umask);
    await rm(root, { recursive: true, force: true });
  });
  const fresh = path.join(root, 'fresh');
  await prepareDataDir(fresh);
  assert.equal((await stat(fresh)).mode & 0o777, 0o700);
  await writeFile(path.join(fresh, 'key.data'), 'secret');
  assert.equal((await stat(path.join(fresh, 'key.data'))).mode & 0o777, 0o600, 'umask 077 for later files');

  process.umask(0o022);
  const old = path.join(root, 'old');
  await mkdir(old, { mode: 0o755 });
  assert.equal((await stat(old)).mode & 0o777, 0o755);
  await prepareDataDir(old);
  assert.equal((await stat(old)).mode & 0o777, 0o700);
});
