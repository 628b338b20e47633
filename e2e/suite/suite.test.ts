/**
 * The suite's own preflight (e2e/suite): where the browser is looked for, that a missing
 * PostgreSQL stops `npm test` at once with one message, and that a private PostgreSQL and
 * Redis really start from installed binaries and serve what the tests need.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { CHROMIUM_PATH_ENV, chromiumCandidates, findChromium } from './browser.ts';
import {
  ensureServices,
  findPostgresBin,
  HOW_TO_GET_POSTGRES,
  postgresAnswers,
  postgresBinDirs,
  redisAnswers,
} from './services.ts';

const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
/** Nothing listens on port 1 of loopback. */
const DEAD_POSTGRES = 'postgresql://postgres@127.0.0.1:1/postgres';

test('the browser: CHROMIUM_PATH first, then the platform locations in order; a bad CHROMIUM_PATH is an error', () => {
  const has =
    (...paths: string[]) =>
    (p: string) =>
      paths.includes(p);
  assert.deepEqual(
    findChromium({ [CHROMIUM_PATH_ENV]: '/x/chrome' }, 'linux', has('/x/chrome', '/usr/bin/chromium')),
    {
      found: true,
      path: '/x/chrome',
      source: 'env',
    },
  );
  const bad = findChromium({ [CHROMIUM_PATH_ENV]: '/nope' }, 'linux', has('/usr/bin/chromium'));
  assert.equal(bad.found, false);
  assert.match(!bad.found ? bad.reason : '', /CHROMIUM_PATH=\/nope is not an executable/);
  assert.deepEqual(findChromium({}, 'linux', has('/usr/bin/google-chrome', '/usr/bin/chromium')), {
    found: true,
    path: '/usr/bin/chromium',
    source: 'system',
  });
  const mac = findChromium(
    { HOME: '/Users/a' },
    'darwin',
    has('/Users/a/Applications/Chromium.app/Contents/MacOS/Chromium'),
  );
  assert.equal(mac.found && mac.path, '/Users/a/Applications/Chromium.app/Contents/MacOS/Chromium');
  assert.ok(
    chromiumCandidates('win32', { PROGRAMFILES: 'C:\\Program Files' }).includes(
      'C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe',
    ),
  );
  assert.equal(findChromium({}, 'linux', () => false).found, false);
});

test('PostgreSQL binaries are looked for on PATH, then in the newest Debian and Homebrew versions', () => {
  const dirs = postgresBinDirs({ PATH: '/a:/b' }, (d) =>
    d === '/usr/lib/postgresql'
      ? ['9', '15', '13']
      : d === '/opt/homebrew/opt'
        ? ['redis', 'postgresql@16']
        : [],
  );
  assert.deepEqual(dirs, [
    '/a',
    '/b',
    '/usr/lib/postgresql/15/bin',
    '/usr/lib/postgresql/13/bin',
    '/usr/lib/postgresql/9/bin',
    '/opt/homebrew/opt/postgresql@16/bin',
  ]);
});

test('with PostgreSQL down and no private one allowed, the check fails with the one message', async () => {
  const logDir = await mkdtemp(path.join(tmpdir(), 'cairn-suite-'));
  try {
    const r = await ensureServices({ postgresUrl: DEAD_POSTGRES, logDir, startPrivate: false });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.message.includes(`no PostgreSQL answers at ${DEAD_POSTGRES}`));
    assert.ok(!r.ok && r.message.includes(HOW_TO_GET_POSTGRES));
    const noBinaries = await ensureServices({ postgresUrl: DEAD_POSTGRES, logDir, postgresBin: undefined });
    assert.ok(!noBinaries.ok && noBinaries.message.includes(HOW_TO_GET_POSTGRES));
  } finally {
    await rm(logDir, { recursive: true, force: true });
  }
});

test('npm test stops before any test with that message when PostgreSQL does not answer', () => {
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'e2e/suite/run.ts', '--check'], {
    cwd: REPO_ROOT,
    env: { ...process.env, TEST_POSTGRES_URL: DEAD_POSTGRES, CAIRN_PRIVATE_SERVICES: '0' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /npm test cannot start: something the suite needs is missing/);
  assert.match(r.stderr, /no PostgreSQL answers at postgresql:\/\/postgres@127\.0\.0\.1:1\/postgres/);
  assert.ok(Date.now() - started < 30_000, 'fails fast');
});

test('with none answering, private PostgreSQL and Redis start, serve the tests and stop', async (t) => {
  if (!findPostgresBin()) {
    t.skip('no initdb/postgres binaries on this machine: only the message path applies');
    return;
  }
  const logDir = await mkdtemp(path.join(tmpdir(), 'cairn-suite-'));
  const r = await ensureServices({ postgresUrl: DEAD_POSTGRES, redisUrl: 'redis://127.0.0.1:1', logDir });
  try {
    assert.ok(r.ok, !r.ok ? r.message : '');
    if (!r.ok) return;
    assert.ok(r.env.TEST_POSTGRES_URL && r.env.REDIS_URL);
    assert.ok(await redisAnswers(r.env.REDIS_URL));
    // What the index-DB tests do: create and drop a database of their own.
    const client = new pg.Client({ connectionString: r.env.TEST_POSTGRES_URL });
    await client.connect();
    await client.query('CREATE DATABASE cairn_suite_probe');
    await client.query('DROP DATABASE cairn_suite_probe');
    await client.end();
  } finally {
    if (r.ok) await Promise.all(r.started.map((s) => s.stop()));
    await rm(logDir, { recursive: true, force: true });
  }
  if (r.ok) {
    assert.equal(await postgresAnswers(r.env.TEST_POSTGRES_URL!, 500), false, 'stopped with the suite');
  }
});
