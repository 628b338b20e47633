/**
 * Child processes of the harness must never outlive the test process.
 *
 * Two layers: every child is started through `setpriv --pdeathsig SIGKILL` when util-linux's
 * setpriv is installed, so the kernel kills it even if the test process itself dies by SIGKILL;
 * and every live child is tracked here and killed on `exit`, SIGINT, SIGTERM and SIGHUP.
 */
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

const live = new Set<ChildProcess>();
let installed = false;

function killAllSync(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      killAllSync();
      // Re-raise with the default disposition so the process still dies of the signal.
      process.removeListener(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/** Tracks a child until it exits; it is SIGKILLed if the test process exits first. */
export function track(child: ChildProcess): void {
  install();
  live.add(child);
  child.once('exit', () => live.delete(child));
}

export function liveChildren(): number {
  return live.size;
}

/** True if `p` is a file this process may execute. */
export function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Finds an executable on PATH (no shell involved). */
export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

let setprivPath: string | null | undefined;

/**
 * Wraps a command so the kernel SIGKILLs it when its parent dies (setpriv execs the command,
 * so the pid stays the command's own). Falls back to the bare command without setpriv.
 */
export function withParentDeathSignal(cmd: string, args: readonly string[]): [string, string[]] {
  if (setprivPath === undefined) setprivPath = which('setpriv') ?? null;
  if (!setprivPath) return [cmd, [...args]];
  return [setprivPath, ['--pdeathsig', 'SIGKILL', '--', cmd, ...args]];
}
