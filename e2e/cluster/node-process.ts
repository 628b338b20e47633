/**
 * One real node process of a test cluster: spawn, ready-line parsing, log capture, HTTP helpers,
 * graceful stop and kill. The Cluster (harness.ts) owns naming, bootstrap wiring and restarts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readApiCookie } from '../../node/api/cookie.ts';
import type { NodeStatus } from '../../node/control.ts';
import { assertLoopback } from './addrs.ts';
import { track, withParentDeathSignal } from './children.ts';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const NODE_MAIN = path.join(REPO_ROOT, 'node/main.ts');

/** The pinned Node 24 runtime (the test itself may run on another node). */
export function nodeBinary(): string {
  const pinned = path.join(REPO_ROOT, 'node_modules/.bin/node');
  return existsSync(pinned) ? pinned : process.execPath;
}

export type Role = 'submind' | 'hub' | 'backup' | 'observer';

/**
 * What `GET /status` returns: the node's own NodeStatus (node/control.ts, built in one place),
 * as JSON (it holds no bigints or dates, so the JSON has the same shape).
 */
export type { NodeStatus } from '../../node/control.ts';
export type PeerStatus = NodeStatus['peers'][number];

/** What a node is started with (fully resolved: no defaults left to apply). */
export interface SpawnSpec {
  /** The node program (default node/main.ts). */
  readonly entry?: string;
  readonly dataDir: string;
  readonly listen: readonly string[];
  readonly bootstrap: readonly string[];
  readonly mine: boolean;
  readonly mdns: boolean;
  readonly role?: Role;
  readonly httpPort: number;
  readonly networkConfig?: string;
  readonly logLevel?: 'info' | 'debug';
  readonly args: readonly string[];
  /** A subcommand and its arguments for the first start only, e.g. ['join', invitation]. */
  readonly command?: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly readyTimeoutMs: number;
}

export interface ReadyInfo {
  readonly peerId: string;
  readonly addrs: string[];
  readonly httpUrl: string;
  /** The node API's token file (absent for programs that have none, e.g. the stub node). */
  readonly cookieFile?: string;
}

/** Headers for a POST to a node's API: JSON, and its cookie token when it has one. */
export async function nodeApiHeaders(cookieFile: string | undefined): Promise<Record<string, string>> {
  const token = cookieFile ? await readApiCookie(cookieFile) : undefined;
  return {
    'content-type': 'application/json',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface StopResult extends ExitInfo {
  /** True if SIGTERM did not end the process in time and it was SIGKILLed. */
  readonly forced: boolean;
  readonly ms: number;
}

type LineListener = (line: string) => void;

const TAIL_LINES = 60;
const HTTP_TIMEOUT_MS = 5000;

/**
 * V8 flags of a node process, as `npm run node` passes them: a young generation of up to 32 MB
 * semi-spaces (16 by default) lets the blocks of a sync batch die young instead of being copied
 * and promoted, about a fifth less main-thread CPU in block import (Lodestar's #2115 found the same).
 */
export const NODE_V8_FLAGS = ['--max-semi-space-size=32'];
/**
 * Extra node flags for every harness node, for looking inside a bench or a test, e.g.
 * CAIRN_HARNESS_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" (NODE_OPTIONS refuses --cpu-prof).
 */
const extraNodeArgs = () => (process.env.CAIRN_HARNESS_NODE_ARGS ?? '').split(' ').filter(Boolean);

export function nodeArgs(spec: Omit<SpawnSpec, 'env' | 'readyTimeoutMs'>, firstStart = true): string[] {
  const command = firstStart ? (spec.command ?? []) : [];
  const args = [
    ...NODE_V8_FLAGS,
    ...extraNodeArgs(),
    spec.entry ?? NODE_MAIN,
    ...command,
    '--data-dir',
    spec.dataDir,
  ];
  for (const a of spec.listen) args.push('--listen', a);
  for (const a of spec.bootstrap) args.push('--bootstrap', a);
  if (spec.mine) args.push('--mine');
  if (spec.mdns) args.push('--mdns');
  if (spec.role) args.push('--role', spec.role);
  args.push('--http-port', String(spec.httpPort));
  if (spec.networkConfig) args.push('--network-config', spec.networkConfig);
  if (spec.logLevel) args.push('--log-level', spec.logLevel);
  args.push(...spec.args);
  return args;
}

export class ClusterNode {
  peerId = '';
  addrs: string[] = [];
  httpUrl = '';
  /** From the ready line; read at each POST (a new token per start). */
  cookieFile: string | undefined;
  pid: number | undefined;
  /** Set while the process has not exited since its last start. */
  exit: ExitInfo | undefined;
  /** The latest successful status() answer and when it came. */
  lastStatus: NodeStatus | undefined;
  lastStatusAt = 0;
  lastStatusError: string | undefined;
  /** How the last stop() ended (exit code 0 and not forced is a graceful shutdown). */
  lastStop: StopResult | undefined;
  /** True if the last exit was asked for by the harness (stop or kill). */
  exitRequested = false;
  /** Number of times this node has been started. */
  starts = 0;

  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> | undefined;
  private readonly tail: string[] = [];
  private readonly listeners = new Set<LineListener>();
  private log: WriteStream | undefined;

  readonly name: string;
  public spec: SpawnSpec;
  readonly logPath: string;
  constructor(name: string, spec: SpawnSpec, logPath: string) {
    this.name = name;
    this.spec = spec;
    this.logPath = logPath;
  }

  get dataDir(): string {
    return this.spec.dataDir;
  }

  /** True while the process is alive and has reported ready. */
  get running(): boolean {
    return this.child !== undefined && this.exit === undefined && this.peerId !== '';
  }

  /** The last lines the process wrote (stdout and stderr), newest last. */
  recentLog(lines = 20): string[] {
    return this.tail.slice(-lines);
  }

  /** Announced addresses of one transport ('tcp', 'webrtc-direct', …). */
  addrsOf(transport: string): string[] {
    return this.addrs.filter((a) => a.split('/').includes(transport));
  }

  /** Spawns the process and resolves once it logs its ready line. */
  async start(): Promise<ReadyInfo> {
    if (this.child && !this.exit) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    assertLoopback(this.spec.listen, `${this.name} listen`);
    assertLoopback(this.spec.bootstrap, `${this.name} bootstrap`);
    mkdirSync(this.spec.dataDir, { recursive: true });
    this.starts++;
    this.peerId = '';
    this.exit = undefined;
    this.exitRequested = false;
    this.lastStatus = undefined;
    this.lastStatusError = undefined;
    this.log ??= createWriteStream(this.logPath, { flags: 'a' });
    const args = nodeArgs(this.spec, this.starts === 1);
    const env: Record<string, string | undefined> = { ...process.env, ...this.spec.env };
    // A node:test parent marks its children; the node program is not a test file.
    delete env.NODE_TEST_CONTEXT;
    const [cmd, argv] = withParentDeathSignal(nodeBinary(), args);
    this.log.write(
      `${JSON.stringify({ harness: 'spawn', node: this.name, start: this.starts, time: new Date().toISOString(), argv: [nodeBinary(), ...args] })}\n`,
    );
    const child = spawn(cmd, argv, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.pid = child.pid;
    track(child);

    let ready: ((r: ReadyInfo) => void) | undefined;
    const readyP = new Promise<ReadyInfo>((resolve) => {
      ready = resolve;
    });
    const onLine = (line: string) => {
      this.tail.push(line);
      if (this.tail.length > TAIL_LINES) this.tail.shift();
      if (ready && line.includes('"msg":"ready"')) {
        const info = parseReady(line);
        if (info) {
          ready(info);
          ready = undefined;
        }
      }
      for (const l of this.listeners) l(line);
    };
    const log = this.log;
    const pipeLines = (stream: NodeJS.ReadableStream) => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        log.write(chunk);
        buf += chunk;
        let i = buf.indexOf('\n');
        while (i >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
          i = buf.indexOf('\n');
        }
      });
      stream.on('end', () => {
        if (buf) onLine(buf);
        buf = '';
      });
    };
    pipeLines(child.stdout!);
    pipeLines(child.stderr!);

    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('error', (err) => {
        log.write(`${JSON.stringify({ harness: 'spawn-error', node: this.name, error: String(err) })}\n`);
        this.exit ??= { code: null, signal: null };
        resolve(this.exit);
      });
      // 'close' waits for stdout/stderr to drain, so the log holds every last line; should some
      // descendant keep the pipes open, 'exit' plus a grace period settles it anyway.
      let settled = false;
      const settle = (code: number | null, signal: NodeJS.Signals | null) => {
        if (settled) return;
        settled = true;
        this.exit = { code, signal };
        const requested = this.exitRequested;
        log.write(
          `${JSON.stringify({ harness: 'exit', node: this.name, pid: child.pid, code, signal, requested, time: new Date().toISOString() })}\n`,
        );
        resolve(this.exit);
      };
      child.once('close', settle);
      child.once('exit', (code, signal) => {
        setTimeout(() => settle(code, signal), 2000).unref();
      });
    });

    const timeout = sleep(this.spec.readyTimeoutMs, 'timeout' as const, { ref: false });
    const outcome = await Promise.race([readyP, this.exited.then(() => 'exited' as const), timeout]);
    if (outcome === 'exited' || outcome === 'timeout') {
      if (outcome === 'timeout') await this.kill();
      const exit = this.exit as ExitInfo | undefined;
      const how =
        outcome === 'timeout'
          ? `did not log "ready" within ${this.spec.readyTimeoutMs} ms (killed)`
          : `exited before ready (code ${exit?.code}, signal ${exit?.signal})`;
      throw new Error(
        `${this.name} ${how}\ncommand: ${nodeBinary()} ${args.join(' ')}\nlog: ${this.logPath}\n` +
          `last log lines:\n  ${this.recentLog(25).join('\n  ')}`,
      );
    }
    assertLoopback(outcome.addrs, `${this.name} announced addrs`);
    if (!/^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]|localhost):\d+/.test(outcome.httpUrl))
      throw new Error(`${this.name}: httpUrl ${outcome.httpUrl} is not a loopback URL`);
    this.peerId = outcome.peerId;
    this.addrs = outcome.addrs;
    this.httpUrl = outcome.httpUrl.replace(/\/$/, '');
    this.cookieFile = outcome.cookieFile;
    return outcome;
  }

  /** Resolves when the process has exited (immediately if it is not running). */
  async waitExit(timeoutMs?: number): Promise<ExitInfo | undefined> {
    if (!this.exited) return this.exit;
    if (timeoutMs === undefined) return this.exited;
    return Promise.race([this.exited, sleep(timeoutMs, undefined, { ref: false })]);
  }

  /** SIGTERM, wait up to `timeoutMs`, then SIGKILL. */
  async stop({ timeoutMs = 15_000 }: { timeoutMs?: number } = {}): Promise<StopResult> {
    const t0 = performance.now();
    if (!this.child || this.exit)
      return { ...(this.exit ?? { code: null, signal: null }), forced: false, ms: 0 };
    this.child.kill('SIGTERM');
    let info = await this.waitExit(timeoutMs);
    let forced = false;
    if (!info) {
      forced = true;
      this.log?.write(
        `${JSON.stringify({ harness: 'sigkill', node: this.name, reason: `no exit ${timeoutMs} ms after SIGTERM` })}\n`,
      );
      this.child.kill('SIGKILL');
      info = await this.waitExit(10_000);
    }
    this.lastStop = {
      ...(info ?? { code: null, signal: null }),
      forced,
      ms: Math.round(performance.now() - t0),
    };
    return this.lastStop;
  }

  /** SIGKILL (a crash, as far as the node can tell). */
  async kill(): Promise<ExitInfo | undefined> {
    if (!this.child || this.exit) return this.exit;
    this.exitRequested = true;
    this.child.kill('SIGKILL');
    return this.waitExit(10_000);
  }

  /** Closes the log file (after the process has exited). */
  async closeLog(): Promise<void> {
    const log = this.log;
    this.log = undefined;
    if (log) await new Promise<void>((resolve) => log.end(resolve));
  }

  /** Calls `listener` on every line the process writes from now on; returns an unsubscribe function. */
  onLine(listener: LineListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Waits for a log line (from now on, plus the recent tail if `includeRecent`) matching a regex
   * or a predicate on the parsed JSON line.
   */
  waitForLog(
    match: RegExp | ((entry: Record<string, unknown>) => boolean),
    { timeoutMs = 30_000, includeRecent = false }: { timeoutMs?: number; includeRecent?: boolean } = {},
  ): Promise<string> {
    const test = (line: string) => {
      if (match instanceof RegExp) return match.test(line);
      try {
        return match(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return false;
      }
    };
    if (includeRecent) {
      const hit = this.tail.find(test);
      if (hit !== undefined) return Promise.resolve(hit);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${this.name}: no log line matching ${String(match)} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onLine((line) => {
        if (!test(line)) return;
        clearTimeout(timer);
        off();
        resolve(line);
      });
    });
  }

  // ---- HTTP ----

  async request(
    method: 'GET' | 'POST',
    p: string,
    body?: unknown,
    timeoutMs = HTTP_TIMEOUT_MS,
  ): Promise<Response> {
    if (!this.httpUrl) throw new Error(`${this.name} has no HTTP endpoint (not started)`);
    const init: RequestInit = { method, signal: AbortSignal.timeout(timeoutMs) };
    if (body !== undefined) init.body = JSON.stringify(body);
    if (method === 'POST') init.headers = await nodeApiHeaders(this.cookieFile);
    let res: Response;
    try {
      res = await fetch(`${this.httpUrl}${p}`, init);
    } catch (err) {
      throw new Error(`${this.name} ${method} ${p}: ${(err as Error).message}`, { cause: err });
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      throw new Error(`${this.name} ${method} ${p}: HTTP ${res.status} ${text.slice(0, 500)}`);
    }
    return res;
  }

  async getJson<T>(p: string): Promise<T> {
    return (await this.request('GET', p)).json() as Promise<T>;
  }

  async postJson<T>(p: string, body: unknown): Promise<T> {
    const res = await this.request('POST', p, body);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async status(): Promise<NodeStatus> {
    try {
      const s = await this.getJson<NodeStatus>('/status');
      this.lastStatus = s;
      this.lastStatusAt = Date.now();
      this.lastStatusError = undefined;
      return s;
    } catch (err) {
      this.lastStatusError = (err as Error).message;
      throw err;
    }
  }

  async metrics(): Promise<string> {
    return (await this.request('GET', '/metrics')).text();
  }

  /** Value of one Prometheus sample (first series whose labels contain `labels`), or undefined. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    return parseMetric(await this.metrics(), name, labels);
  }

  postEntry(content: string, metadata?: readonly (readonly [string, string])[]): Promise<{ id: string }> {
    return this.postJson('/entries', metadata ? { content, metadata } : { content });
  }

  chain(from: number, to: number): Promise<{ blocks: { height: number; hash: string }[] }> {
    return this.getJson(`/chain?from=${from}&to=${to}`);
  }

  mempool(): Promise<{ ids: string[] }> {
    return this.getJson('/mempool');
  }

  blockPeers(peers: readonly string[]): Promise<unknown> {
    return this.postJson('/admin/block-peers', { peers });
  }

  unblockPeers(peers: readonly string[]): Promise<unknown> {
    return this.postJson('/admin/unblock-peers', { peers });
  }
}

export function parseReady(line: string): ReadyInfo | undefined {
  try {
    const o = JSON.parse(line) as Record<string, unknown>;
    if (o.msg !== 'ready' || typeof o.peerId !== 'string' || typeof o.httpUrl !== 'string') return undefined;
    const addrs = Array.isArray(o.addrs) ? o.addrs.filter((a): a is string => typeof a === 'string') : [];
    return {
      peerId: o.peerId,
      addrs,
      httpUrl: o.httpUrl,
      ...(typeof o.cookieFile === 'string' ? { cookieFile: o.cookieFile } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Finds `name{labels…} value` in Prometheus text; labels given must all match. */
export function parseMetric(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const m = /^([A-Za-z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const lm of (m[3] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) got[lm[1]!] = lm[2]!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}
