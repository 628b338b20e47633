/**
 * Nodes with mDNS inside a network namespace the test creates itself.
 *
 * `@libp2p/mdns` multicasts on the default interface and cannot be bound, so mDNS may only run
 * where the only interface is a private loopback: `unshare -n` gives the driver a fresh network
 * namespace, `ip link set lo up` and `ip route add 224.0.0.0/4 dev lo` make multicast work on
 * its loopback, and netns-driver.ts starts the nodes there (no bootstrap, mDNS on), waits for
 * them to connect, prints one JSON result line and stops them. The test process stays outside
 * and only reads that line.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { track, which, withParentDeathSignal } from './children.ts';
import type { TestNetworkConfig } from './network-config.ts';
import { nodeBinary, REPO_ROOT, type StopResult } from './node-process.ts';

export const RESULT_PREFIX = 'CAIRN_NETNS_RESULT ';
const DRIVER = path.join(REPO_ROOT, 'e2e/cluster/netns-driver.ts');

export interface NetnsClusterOptions {
  /** Number of nodes (default 3). */
  nodes?: number;
  /** Indices of the nodes that mine (default none). */
  mine?: number[];
  /** Extra listen addresses for every node, e.g. a WebRTC-direct one. */
  extraListen?: string[];
  /** Also wait until all heads are equal at this height or more. */
  minHeight?: number;
  /** Bound on the wait inside the namespace (default 60 s); the driver as a whole gets 90 s more. */
  timeoutMs?: number;
  /** Run dir for data and logs (default a fresh one in the tmp dir). */
  runDir?: string;
  /** Overrides of the test network config. */
  network?: TestNetworkConfig;
  logLevel?: 'info' | 'debug';
  /** The node program (default node/main.ts); for testing the harness itself. */
  entry?: string;
}

export interface NetnsNodeResult {
  name: string;
  peerId: string;
  addrs: string[];
  /** Peer ids this node reported connected at the end. */
  peers: string[];
  /** The same, as node names where known. */
  peerNames: string[];
  height: number;
  headHash: string;
}

export interface NetnsResult {
  ok: boolean;
  error?: string;
  runDir: string;
  /** Interfaces the driver saw inside the namespace (should be just `lo`). */
  interfaces: string[];
  /** The driver's network namespace (`net:[inode]`), different from the test's. */
  netns?: string;
  /** From every node being ready to the condition holding. */
  connectMs?: number;
  /** From the driver's first spawn to every node being ready. */
  startMs?: number;
  nodes: NetnsNodeResult[];
  stop?: Record<string, StopResult>;
}

/** The config the driver receives as its one argument (JSON). */
export interface DriverConfig extends NetnsClusterOptions {
  nodes: number;
  timeoutMs: number;
}

export type NetnsSupport = { ok: true; unshareArgs: string[] } | { ok: false; reason: string };

let support: NetnsSupport | undefined;

/**
 * Whether this machine lets us create a network namespace: needs util-linux `unshare`,
 * iproute2 `ip`, and either root (CAP_SYS_ADMIN) or unprivileged user namespaces (`unshare -rn`).
 */
export function netnsSupport(): NetnsSupport {
  support ??= probeNetns();
  return support;
}

function probeNetns(): NetnsSupport {
  const unshare = which('unshare');
  if (!unshare) return { ok: false, reason: '`unshare` (util-linux) is not installed or not on PATH' };
  if (!which('ip')) return { ok: false, reason: '`ip` (iproute2) is not installed or not on PATH' };
  const errors: string[] = [];
  for (const args of [['-n'], ['-r', '-n']]) {
    const r = spawnSync(
      unshare,
      [...args, 'sh', '-c', 'ip link set lo up && ip route add 224.0.0.0/4 dev lo'],
      {
        encoding: 'utf8',
        timeout: 10_000,
      },
    );
    if (r.status === 0) return { ok: true, unshareArgs: args };
    errors.push(`unshare ${args.join(' ')}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  }
  return {
    ok: false,
    reason: `cannot create a network namespace (needs root or unprivileged user namespaces): ${errors.join('; ')}`,
  };
}

/**
 * Runs a cluster of mDNS nodes inside a fresh network namespace and returns the driver's result.
 * Throws if namespaces are unavailable or the driver printed no result; a result with `ok: false`
 * (the condition did not hold in time) is returned for the caller to assert on.
 */
export async function runMdnsClusterInNetns(opts: NetnsClusterOptions = {}): Promise<NetnsResult> {
  const sup = netnsSupport();
  if (!sup.ok) throw new Error(`network namespace test cannot run: ${sup.reason}`);
  const config: DriverConfig = { ...opts, nodes: opts.nodes ?? 3, timeoutMs: opts.timeoutMs ?? 60_000 };
  const script =
    'ip link set lo up && ip route add 224.0.0.0/4 dev lo && export CAIRN_TEST_NETNS=1 && ' +
    'exec "$0" --import tsx "$@"';
  const [cmd, args] = withParentDeathSignal(which('unshare')!, [
    ...sup.unshareArgs,
    'sh',
    '-c',
    script,
    nodeBinary(),
    DRIVER,
    JSON.stringify(config),
  ]);
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  delete env.CAIRN_TEST_NETNS;
  const child = spawn(cmd, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr = (stderr + c).slice(-20_000);
  });
  const overallMs = config.timeoutMs + 90_000;
  const exit = await new Promise<{ code: number | null; signal: string | null; timedOut: boolean }>(
    (resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve({ code: null, signal: 'SIGKILL', timedOut: true });
      }, overallMs);
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, timedOut: false });
      });
    },
  );
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(RESULT_PREFIX));
  if (!line) {
    throw new Error(
      `netns driver ${exit.timedOut ? `did not finish within ${overallMs} ms (killed)` : `exited (code ${exit.code}, signal ${exit.signal})`} without a result line` +
        `\nstdout:\n${stdout.slice(-4000)}\nstderr:\n${stderr.slice(-4000)}`,
    );
  }
  return JSON.parse(line.slice(RESULT_PREFIX.length)) as NetnsResult;
}
