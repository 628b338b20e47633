/**
 * One long-running child process (redis-server, a node, the collector, a gateway) for the demo
 * and the cluster tests: output to a log file appended across starts, a ready line or probe,
 * stop by SIGTERM then SIGKILL, restartable. The kernel SIGKILLs it if its parent dies (setpriv
 * --pdeathsig). The demo spawns it `detached`, in its own process group, so a terminal's Ctrl-C
 * reaches only the demo, which then stops its children in order; tests `track` it instead, so it
 * dies with the test process however that ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { track, withParentDeathSignal } from './children.ts';
import { REPO_ROOT } from './node-process.ts';

export interface ServiceSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Default: the repository root. */
  readonly cwd?: string;
  readonly logFile: string;
  /** Own process group (the demo, which forwards Ctrl-C itself). */
  readonly detached?: boolean;
  /** Killed with the test process (children.ts), for tests. */
  readonly track?: boolean;
  /** Resolves the start when a line matches (or `ready()` resolves); default: spawned is enough. */
  readonly readyLine?: (line: string) => boolean;
  readonly ready?: () => Promise<boolean>;
  readonly readyTimeoutMs?: number;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

const live = new Set<Service>();

/** Every service still running (for a last-resort kill on an unexpected exit path). */
export function liveServices(): Service[] {
  return [...live];
}

export class Service {
  pid: number | undefined;
  exit: Exit | undefined;
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> | undefined;
  private log: WriteStream | undefined;
  private readonly tail: string[] = [];
  private readonly listeners = new Set<(line: string) => void>();
  stopping = false;

  readonly spec: ServiceSpec;
  constructor(spec: ServiceSpec) {
    this.spec = spec;
  }

  get running(): boolean {
    return this.child !== undefined && this.exit === undefined;
  }

  recentLog(n = 20): string[] {
    return this.tail.slice(-n);
  }

  onLine(fn: (line: string) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Spawns the process and waits until it is ready; throws (with its last log lines) if it exits or times out. */
  async start(): Promise<void> {
    const { spec } = this;
    // Owner only: logs carry peer ids, addresses and whatever a process logs about its callers.
    mkdirSync(path.dirname(spec.logFile), { recursive: true, mode: 0o700 });
    this.log ??= createWriteStream(spec.logFile, { flags: 'a', mode: 0o600 });
    this.log.write(
      `${JSON.stringify({ harness: 'spawn', service: spec.name, at: new Date().toISOString() })}\n`,
    );
    const [cmd, args] = withParentDeathSignal(spec.command, spec.args);
    const env: Record<string, string | undefined> = { ...process.env, ...spec.env };
    // A node --test child would otherwise report to the test runner instead of running.
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(cmd, args, {
      cwd: spec.cwd ?? REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: spec.detached ?? false,
    });
    if (spec.track) track(child);
    this.child = child;
    // A restart waits for this run's ready line, not the previous run's.
    this.tail.length = 0;
    this.exit = undefined;
    this.stopping = false;
    this.pid = child.pid;
    live.add(this);
    this.exited = new Promise<Exit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        live.delete(this);
        this.log?.write(`${JSON.stringify({ harness: 'exit', service: spec.name, code, signal })}\n`);
        resolve(this.exit);
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.log?.write(`${line}\n`);
        this.tail.push(line);
        if (this.tail.length > 80) this.tail.shift();
        for (const fn of this.listeners) fn(line);
      });
    }
    await new Promise<void>((resolve, reject) => child.once('spawn', resolve).once('error', reject));
    await this.waitReady();
  }

  private async waitReady(): Promise<void> {
    const { spec } = this;
    if (!spec.readyLine && !spec.ready) return;
    const timeoutMs = spec.readyTimeoutMs ?? 90_000;
    let off = () => {};
    const byLine = spec.readyLine
      ? new Promise<void>((resolve) => {
          if (this.tail.some((l) => spec.readyLine!(l))) resolve();
          off = this.onLine((l) => {
            if (spec.readyLine!(l)) resolve();
          });
        })
      : undefined;
    const byProbe = spec.ready
      ? (async () => {
          while (this.running) {
            if (await spec.ready!().catch(() => false)) return;
            await sleep(200);
          }
        })()
      : undefined;
    const outcome = await Promise.race([
      Promise.all([byLine, byProbe]).then(() => 'ready' as const),
      this.exited!.then(() => 'exited' as const),
      // Unref'd: a timer lost in the race must not keep a finished test process alive.
      sleep(timeoutMs, 'timeout' as const, { ref: false }),
    ]);
    off();
    if (outcome === 'ready') return;
    if (outcome === 'timeout') await this.stop({ timeoutMs: 2000 });
    throw new Error(
      `${spec.name} ${outcome === 'timeout' ? `not ready within ${timeoutMs} ms` : `exited before ready (${JSON.stringify(this.exit)})`}\n` +
        `command: ${spec.command} ${spec.args.join(' ')}\nlog: ${spec.logFile}\n  ${this.recentLog(20).join('\n  ')}`,
    );
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`. */
  async stop({ timeoutMs = 15_000 }: { timeoutMs?: number } = {}): Promise<Exit | undefined> {
    if (!this.child || this.exit) return this.exit;
    this.stopping = true;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited!, sleep(timeoutMs, undefined, { ref: false })]);
    if (done) return done;
    this.log?.write(`${JSON.stringify({ harness: 'sigkill', service: this.spec.name, after: timeoutMs })}\n`);
    this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGKILL: what a crash looks like to everyone else. */
  async kill(): Promise<Exit | undefined> {
    if (!this.child || this.exit) return this.exit;
    this.stopping = true;
    this.child.kill('SIGKILL');
    return this.exited;
  }

  async closeLog(): Promise<void> {
    const log = this.log;
    this.log = undefined;
    if (log) await new Promise<void>((resolve) => log.end(resolve));
  }
}

/** `preferred` if it can be bound on 127.0.0.1 now, otherwise (or for 0) a free port. */
export async function portOrFree(preferred = 0): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(undefined));
      srv.listen(port, '127.0.0.1', () => {
        const got = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(got));
      });
    });
  if (preferred > 0) {
    const p = await tryListen(preferred);
    if (p !== undefined) return p;
  }
  const free = await tryListen(0);
  if (free === undefined) throw new Error('no free TCP port on 127.0.0.1');
  return free;
}
