/**
 * `npm test`: makes sure what the suite needs is there before any test starts — a Chromium for
 * Playwright, Redis, PostgreSQL — then runs type check, lint, the browser tests and every
 * node:test test, in that order, stopping at the first step that fails. What is missing is
 * provided where that needs no download of our own (Debian's packages as root, private
 * redis-server / PostgreSQL processes from installed binaries), or reported in one message.
 *
 * `--check` runs only the preflight (and leaves nothing running), for the suite's own test.
 * CAIRN_PRIVATE_SERVICES=0 forbids starting private servers.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { which } from '../cluster/children.ts';
import type { Service } from '../cluster/service.ts';
import { aptInstall, canAptInstall } from './apt.ts';
import { CHROMIUM_PATH_ENV, findChromium, HOW_TO_GET_CHROMIUM } from './browser.ts';
import { ensureServices } from './services.ts';

const STEPS = ['typecheck', 'lint', 'test:browser', 'test:all'] as const;
const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
const LOG_DIR = path.join(REPO_ROOT, 'test-results', 'suite');

const say = (line: string) => process.stdout.write(`[npm test] ${line}\n`);

interface Prepared {
  readonly env: Record<string, string>;
  readonly started: Service[];
}

async function preflight(): Promise<Prepared | { error: string }> {
  mkdirSync(LOG_DIR, { recursive: true });
  const aptLog = path.join(LOG_DIR, 'apt.log');
  const problems: string[] = [];

  let browser = findChromium();
  if (!browser.found && !process.env[CHROMIUM_PATH_ENV] && canAptInstall()) {
    say("no Chromium found: installing Debian's chromium package (log: test-results/suite/apt.log)");
    const err = aptInstall(['chromium'], aptLog);
    if (err) say(`could not install chromium: ${err}`);
    browser = findChromium();
  }
  if (!browser.found) problems.push(`${browser.reason}.\n${HOW_TO_GET_CHROMIUM}`);

  if (!which('redis-server') && canAptInstall()) {
    say("no redis-server found: installing Debian's redis-server package");
    const err = aptInstall(['redis-server'], aptLog);
    if (err) say(`could not install redis-server: ${err}`);
  }
  const services = await ensureServices({
    logDir: LOG_DIR,
    startPrivate: process.env.CAIRN_PRIVATE_SERVICES !== '0',
  });
  if (!services.ok) problems.push(services.message);

  if (problems.length) {
    if (services.ok) await Promise.allSettled(services.started.map((s) => s.stop()));
    return { error: problems.join('\n\n') };
  }
  if (!browser.found || !services.ok) throw new Error('unreachable');
  say(`browser: ${browser.path} (${browser.source === 'env' ? CHROMIUM_PATH_ENV : 'installed'})`);
  for (const n of services.notes) say(n);
  return { env: { ...services.env, [CHROMIUM_PATH_ENV]: browser.path }, started: services.started };
}

function runStep(step: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('npm', ['run', step], { cwd: REPO_ROOT, env, stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGTERM', forward);
    child.once('error', () => resolve(127));
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

async function main(): Promise<number> {
  const prepared = await preflight();
  if ('error' in prepared) {
    process.stderr.write(
      `\nnpm test cannot start: something the suite needs is missing.\n\n${prepared.error}\n`,
    );
    return 1;
  }
  const stopAll = () => Promise.allSettled(prepared.started.map((s) => s.stop()));
  if (process.argv.includes('--check')) {
    say('preflight passed');
    await stopAll();
    return 0;
  }
  const env = { ...process.env, ...prepared.env };
  let code = 0;
  for (const step of STEPS) {
    code = await runStep(step, env);
    // Nothing is printed after a step: the test runner's summary stays the last output.
    if (code !== 0) break;
  }
  await stopAll();
  return code;
}

process.exitCode = await main();
