/**
 * Real service processes for cluster tests: the collector, the gateway, and a private
 * redis-server (so a test can stop and restart Redis without touching anyone else's).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { track, withParentDeathSignal } from './children.ts';
import { nodeBinary, REPO_ROOT } from './node-process.ts';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface ServiceSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
  readonly logPath: string;
  /** A stdout/stderr line containing this marks the process ready. */
  readonly readyMarker: string;
  readonly readyTimeoutMs?: number;
}

/** One child process with its output in a log file, started until its ready line. */
export class ServiceProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<number | null> | undefined;
  private readonly tail: string[] = [];
  private log: WriteStream | undefined;
  readyLine = '';

  constructor(readonly spec: ServiceSpec) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  recentLog(n = 20): string[] {
    return this.tail.slice(-n);
  }

  async start(): Promise<string> {
    if (this.running) throw new Error(`${this.spec.name} is already running`);
    this.log ??= createWriteStream(this.spec.logPath, { flags: 'a' });
    const env: Record<string, string | undefined> = { ...process.env, ...this.spec.env };
    delete env.NODE_TEST_CONTEXT;
    const [cmd, argv] = withParentDeathSignal(this.spec.command, this.spec.args);
    const child = spawn(cmd, argv, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    track(child);
    let ready: ((line: string) => void) | undefined;
    const readyP = new Promise<string>((r) => {
      ready = r;
    });
    const log = this.log;
    for (const stream of [child.stdout!, child.stderr!]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        log.write(chunk);
        buf += chunk;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.tail.push(line);
          if (this.tail.length > 200) this.tail.shift();
          if (ready && line.includes(this.spec.readyMarker)) {
            ready(line);
            ready = undefined;
          }
        }
      });
    }
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    const outcome = await Promise.race([
      readyP,
      this.exited.then(() => 'exited' as const),
      sleep(this.spec.readyTimeoutMs ?? 60_000, 'timeout' as const, { ref: false }),
    ]);
    if (outcome === 'exited' || outcome === 'timeout') {
      child.kill('SIGKILL');
      throw new Error(
        `${this.spec.name} ${outcome === 'timeout' ? 'was not ready in time' : 'exited before ready'}\n` +
          `log ${this.spec.logPath}:\n  ${this.recentLog(25).join('\n  ')}`,
      );
    }
    this.readyLine = outcome;
    return outcome;
  }

  /** SIGTERM, then SIGKILL after `timeoutMs`; returns the exit code (null if killed). */
  async stop(timeoutMs = 10_000): Promise<number | null> {
    if (!this.child || !this.running) return this.child?.exitCode ?? null;
    this.child.kill('SIGTERM');
    const code = await Promise.race([this.exited!, sleep(timeoutMs, 'timeout' as const, { ref: false })]);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      await this.exited;
      return null;
    }
    return code;
  }

  async kill(): Promise<void> {
    if (!this.child || !this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** The collector (jobs/collector/main.ts) as a process. */
export function collectorProcess(logPath: string, env: Record<string, string>): ServiceProcess {
  return new ServiceProcess({
    name: 'collector',
    command: nodeBinary(),
    args: ['--import', 'tsx', 'jobs/collector/main.ts'],
    env,
    logPath,
    readyMarker: '"msg":"ready"',
  });
}

/** The gateway (gateway/main.ts) as a process on `port`. */
export function gatewayProcess(logPath: string, port: number, env: Record<string, string>): ServiceProcess {
  return new ServiceProcess({
    name: `gateway:${port}`,
    command: nodeBinary(),
    args: ['--import', 'tsx', 'gateway/main.ts'],
    env: { ...env, PORT: String(port), HOST: '127.0.0.1' },
    logPath,
    readyMarker: '"event":"ready"',
  });
}

/** A private redis-server that keeps nothing on disk, like the machine's own. */
export function redisProcess(logPath: string, port: number): ServiceProcess {
  return new ServiceProcess({
    name: `redis:${port}`,
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    logPath,
    readyMarker: 'Ready to accept connections',
  });
}
