/**
 * Installing a missing system package the way a Debian or Ubuntu machine does, for `npm test`
 * run as root (CI, containers). Only from the distribution's own repositories: nothing here
 * downloads a browser build or a binary of its own.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { which } from '../cluster/children.ts';

/** True where `apt-get install` can run without asking: Linux, root, apt-get on PATH. */
export function canAptInstall(): boolean {
  return process.platform === 'linux' && process.getuid?.() === 0 && which('apt-get') !== undefined;
}

let updated = false;

/** Installs Debian packages non-interactively; output goes to `logFile`. Returns an error text or undefined. */
export function aptInstall(packages: readonly string[], logFile: string): string | undefined {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args: string[]) => {
    const r = spawnSync('apt-get', args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    appendFileSync(logFile, `$ apt-get ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}\n`);
    return r.status === 0
      ? undefined
      : `apt-get ${args.join(' ')} exited ${r.status}: ${(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`;
  };
  if (!updated) {
    const err = run(['update', '-qq']);
    if (err) return err;
    updated = true;
  }
  return run(['install', '-y', '-qq', ...packages]);
}
