/**
 * Local cluster harness: N real node processes (node/main.ts) on loopback, each with its own data
 * dir and log file under one run dir, wired by bootstrap addresses, with bounded waits whose
 * timeouts say what every node last reported.
 *
 *   const cluster = new Cluster();
 *   const [a, b] = await cluster.start(2, (i) => ({ mine: i === 0 }));
 *   await cluster.waitForConverged({ minHeight: 2 });
 *   await cluster.restart(b.name);
 *   await cluster.stopAll();
 */
import { mkdirSync, readlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chainIdOf, DEFAULT_NETWORK, type NetworkConfig } from '../../node/chain/network-config.ts';
import { hasPinnedPort, pinListenAddrs } from './addrs.ts';
import { type TestNetworkConfig, writeNetworkConfig } from './network-config.ts';
import { ClusterNode, type NodeStatus, type Role, type SpawnSpec, type StopResult } from './node-process.ts';
import { ClusterRoster, type RosterSpec } from './roster.ts';

export { seedableNetwork, testNetworkConfig, writeNetworkConfig } from './network-config.ts';
export type { NodeStatus, PeerStatus, Role, StopResult } from './node-process.ts';
export { ClusterNode, parseMetric } from './node-process.ts';
export { ClusterRoster, type RosterSpec } from './roster.ts';

export const DEFAULT_LISTEN = '/ip4/127.0.0.1/tcp/0';
export const WEBRTC_LISTEN = '/ip4/127.0.0.1/udp/0/webrtc-direct';

export interface NodeOptions {
  /** Unique name (log file `<runDir>/<name>.log`); default `node<k>`. */
  name?: string;
  mine?: boolean;
  /** Listen addresses; default [`/ip4/127.0.0.1/tcp/0`]. */
  listen?: string[];
  /** Added to `listen`, e.g. [WEBRTC_LISTEN]. */
  extraListen?: string[];
  /**
   * Explicit bootstrap multiaddrs. Default: every address of every running node (none when
   * `mdns` is on); on restart the default list is recomputed from the nodes running then.
   */
  bootstrap?: string[];
  /** Bootstrap from these running nodes only (all their addresses). */
  bootstrapFrom?: string[];
  /** mDNS discovery: only inside a network namespace the test created (see netns.ts). */
  mdns?: boolean;
  role?: Role;
  /** Default `<runDir>/<name>`. */
  dataDir?: string;
  /** Default 0 (random). */
  httpPort?: number;
  /** Network config file; default the cluster's; false for the node's built-in network. */
  networkConfig?: string | false;
  logLevel?: 'info' | 'debug';
  /** Extra CLI arguments. */
  args?: string[];
  /** A subcommand for the node's first start, e.g. ['join', invitation] (then `networkConfig: false`). */
  command?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /**
   * Roster networks: which pool identity to give this node on its first start (default the next
   * unused one), or false for none (the node makes its own key: a stranger to the roster).
   */
  member?: number | false;
}

export interface ClusterOptions {
  /** Default `os.tmpdir()/cairn-cluster-<timestamp>-<rand>`. */
  runDir?: string;
  /**
   * Network config for every node: overrides of testNetworkConfig() (written to
   * `<runDir>/network.json`), a path to an existing file, or false for the node's default network.
   */
  network?: TestNetworkConfig | string | false;
  /** Applied to every node before its own options. */
  defaults?: NodeOptions;
  /** The node program to run (default node/main.ts); for testing the harness itself. */
  entry?: string;
  /** Allow `mdns: true`; the harness also checks it runs in its own network namespace. */
  allowMdns?: boolean;
  /**
   * The genesis roster of the cluster's network (roster mode, the default unless `network` says
   * `membership: 'open'`): pool size and per-member name, role and capabilities.
   */
  roster?: RosterSpec;
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  description?: string;
  /** Nodes whose status is fetched each round (default: all active nodes, see Cluster.active()). */
  nodes?: readonly string[];
  /** Throw at once if one of those nodes exits without the harness asking it to (default true). */
  failOnExit?: boolean;
}

export interface Snapshot {
  /** Status per node name, for nodes that answered this round. */
  readonly statuses: Readonly<Record<string, NodeStatus>>;
  /** Error per node name for nodes that did not answer. */
  readonly errors: Readonly<Record<string, string>>;
  readonly elapsedMs: number;
}

let seq = 0;

export class Cluster {
  readonly runDir: string;
  readonly networkConfigPath: string | undefined;
  readonly network: TestNetworkConfig | undefined;
  /** The roster (admin key, pool identities) when the cluster wrote a roster network. */
  readonly roster: ClusterRoster | undefined;
  /** The full config of the network the cluster wrote (undefined for a given file or none). */
  readonly networkConfig: NetworkConfig | undefined;
  private readonly byName = new Map<string, ClusterNode>();
  /** Per node: whether its bootstrap list is derived from the running nodes (recomputed on restart). */
  private readonly autoBootstrap = new Map<string, NodeOptions>();
  private counter = 0;

  private readonly opts: ClusterOptions;
  constructor(opts: ClusterOptions = {}) {
    this.opts = opts;
    this.runDir =
      opts.runDir ??
      path.join(
        os.tmpdir(),
        `cairn-cluster-${new Date().toISOString().replace(/[-:.]/g, '')}-${process.pid}-${seq++}-${Math.random().toString(36).slice(2, 8)}`,
      );
    mkdirSync(this.runDir, { recursive: true });
    const net = opts.network ?? {};
    if (typeof net === 'string') this.networkConfigPath = net;
    else if (net !== false) {
      this.networkConfigPath = path.join(this.runDir, 'network.json');
      if (net.membership === 'open') {
        this.network = writeNetworkConfig(this.networkConfigPath, net);
      } else {
        const roster = new ClusterRoster(opts.roster);
        const { admins, members } = roster.genesis(net.admins ?? []);
        this.network = writeNetworkConfig(this.networkConfigPath, {
          ...net,
          membership: 'roster',
          admins,
          members: [...members, ...(net.members ?? [])],
        });
        this.roster = roster;
      }
      this.networkConfig = { ...DEFAULT_NETWORK, ...this.network } as NetworkConfig;
      if (this.roster) this.roster.chainId = chainIdOf(this.networkConfig);
    }
  }

  /** Every node ever added, in order. */
  get nodes(): ClusterNode[] {
    return [...this.byName.values()];
  }

  running(): ClusterNode[] {
    return this.nodes.filter((n) => n.running);
  }

  /** Nodes expected to be up: started and not stopped or killed by the harness (crashed ones included). */
  active(): ClusterNode[] {
    return this.nodes.filter((n) => n.starts > 0 && !(n.exit && n.exitRequested));
  }

  node(name: string): ClusterNode {
    const n = this.byName.get(name);
    if (!n) throw new Error(`no node named ${name} (have ${[...this.byName.keys()].join(', ') || 'none'})`);
    return n;
  }

  /** Name of the node with this peer id, or a shortened id. */
  nameOf(peerId: string): string {
    for (const n of this.byName.values()) if (n.peerId === peerId) return n.name;
    return `${peerId.slice(0, 6)}…${peerId.slice(-4)}`;
  }

  /**
   * Starts `n` nodes. Options per node: one object for all, an array, or a function of the index.
   * The first node starts alone (unless nodes are already running), the rest `concurrency` at a
   * time, each bootstrapping by default from the nodes running when it starts.
   */
  async start(
    n: number,
    opts: NodeOptions | NodeOptions[] | ((i: number) => NodeOptions) = {},
    { concurrency = 1 }: { concurrency?: number } = {},
  ): Promise<ClusterNode[]> {
    const optsAt = (i: number): NodeOptions =>
      typeof opts === 'function' ? opts(i) : Array.isArray(opts) ? (opts[i] ?? {}) : opts;
    const out: ClusterNode[] = [];
    let i = 0;
    if (n > 0 && this.running().length === 0) out.push(await this.addNode(optsAt(i++)));
    while (i < n) {
      const batch: Promise<ClusterNode>[] = [];
      for (let k = 0; k < Math.max(1, concurrency) && i < n; k++) batch.push(this.addNode(optsAt(i++)));
      out.push(...(await Promise.all(batch)));
    }
    return out;
  }

  /** Starts one node and resolves when it is ready. */
  async addNode(nodeOpts: NodeOptions = {}): Promise<ClusterNode> {
    const o: NodeOptions = { ...this.opts.defaults, ...nodeOpts };
    const name = o.name ?? this.nextName();
    if (this.byName.has(name)) throw new Error(`node name ${name} is taken`);
    if (o.mdns) this.assertMdnsAllowed();
    const listen = [...(o.listen ?? [DEFAULT_LISTEN]), ...(o.extraListen ?? [])];
    const auto = o.bootstrap === undefined;
    if (auto) this.autoBootstrap.set(name, o);
    const dataDir = o.dataDir ?? path.join(this.runDir, name);
    const usesRoster = this.roster && o.networkConfig === undefined;
    if (usesRoster && o.member !== false) this.roster!.assign(dataDir, o.member);
    const spec: SpawnSpec = {
      entry: this.opts.entry,
      dataDir,
      listen,
      bootstrap: this.bootstrapFor(name, o),
      mine: o.mine ?? false,
      mdns: o.mdns ?? false,
      role: o.role,
      httpPort: o.httpPort ?? 0,
      networkConfig: o.networkConfig === false ? undefined : (o.networkConfig ?? this.networkConfigPath),
      logLevel: o.logLevel,
      args: o.args ?? [],
      command: o.command,
      env: o.env ?? {},
      readyTimeoutMs: o.readyTimeoutMs ?? 90_000,
    };
    const node = new ClusterNode(name, spec, path.join(this.runDir, `${name}.log`));
    this.byName.set(name, node);
    await node.start();
    return node;
  }

  /** SIGTERM, wait, SIGKILL after `timeoutMs`. */
  stop(name: string, opts?: { timeoutMs?: number }): Promise<StopResult> {
    return this.node(name).stop(opts);
  }

  /** SIGKILL. */
  async kill(name: string): Promise<void> {
    await this.node(name).kill();
  }

  /**
   * Stops (gracefully) and starts a node again with the same data dir, options and, if they are
   * still free, the same listen ports and HTTP port. Overrides apply to this and later starts.
   * Use `{ kill: true }` to SIGKILL instead of SIGTERM.
   */
  async restart(
    name: string,
    overrides: Partial<Pick<SpawnSpec, 'mine' | 'bootstrap' | 'args' | 'logLevel' | 'env'>> & {
      kill?: boolean;
    } = {},
  ): Promise<ClusterNode> {
    const node = this.node(name);
    if (overrides.kill) await node.kill();
    else await node.stop();
    const prev = node.spec;
    const { kill: _kill, ...specOverrides } = overrides;
    const pinnedListen = node.addrs.length ? pinListenAddrs(prev.listen, node.addrs) : [...prev.listen];
    const port = /:(\d+)/.exec(node.httpUrl.replace(/^http:\/\//, ''))?.[1];
    const autoOpts = this.autoBootstrap.get(name);
    const bootstrap = overrides.bootstrap ?? (autoOpts ? this.bootstrapFor(name, autoOpts) : prev.bootstrap);
    const base: SpawnSpec = { ...prev, ...specOverrides, bootstrap };
    node.spec = { ...base, listen: pinnedListen, httpPort: port ? Number(port) : prev.httpPort };
    try {
      await node.start();
    } catch (err) {
      if (!hasPinnedPort(pinnedListen) && !port) throw err;
      // The old ports may have been taken meanwhile: fall back to fresh ones.
      node.spec = base;
      await node.start();
    }
    return node;
  }

  /** Stops every running node (in parallel) and closes the logs. */
  async stopAll({ timeoutMs = 15_000 }: { timeoutMs?: number } = {}): Promise<Record<string, StopResult>> {
    const nodes = this.nodes;
    const results = await Promise.all(nodes.map((n) => n.stop({ timeoutMs })));
    await Promise.all(nodes.map((n) => n.closeLog()));
    return Object.fromEntries(nodes.map((n, i) => [n.name, results[i]!]));
  }

  /**
   * Stops everything and deletes the run dir (data and logs) unless CAIRN_KEEP_RUN_DIR is set;
   * returns whether it was deleted. Tests call it once they passed, so failures keep their logs.
   */
  async removeRunDir(): Promise<boolean> {
    await this.stopAll();
    if (process.env.CAIRN_KEEP_RUN_DIR) return false;
    await rm(this.runDir, { recursive: true, force: true });
    return true;
  }

  /** Fetches the status of the given (default: all active) nodes in parallel. */
  async snapshot(names?: readonly string[], t0 = Date.now()): Promise<Snapshot> {
    const nodes = names ? names.map((n) => this.node(n)) : this.active();
    const statuses: Record<string, NodeStatus> = {};
    const errors: Record<string, string> = {};
    await Promise.all(
      nodes.map(async (n) => {
        if (!n.running) {
          errors[n.name] = n.exit
            ? `exited (code ${n.exit.code}, signal ${n.exit.signal}${n.exitRequested ? '' : ', unexpectedly'})`
            : 'not running';
          return;
        }
        try {
          statuses[n.name] = await n.status();
        } catch (err) {
          errors[n.name] = (err as Error).message;
        }
      }),
    );
    return { statuses, errors, elapsedMs: Date.now() - t0 };
  }

  /**
   * Polls: each round fetches the statuses of the nodes (`opts.nodes`, default all running) and
   * calls `predicate` with them. A predicate that throws counts as "not yet". On timeout throws an
   * Error naming the description, the last predicate error, every node's last status and the log dir.
   */
  async waitFor(
    predicate: (snap: Snapshot) => boolean | Promise<boolean>,
    {
      timeoutMs = 30_000,
      intervalMs = 250,
      description = 'condition',
      nodes,
      failOnExit = true,
    }: WaitOptions = {},
  ): Promise<Snapshot> {
    const t0 = Date.now();
    const deadline = t0 + timeoutMs;
    let lastError: string | undefined;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const crashed = (nodes ? nodes.map((n) => this.node(n)) : this.active()).filter(
        (n) => n.exit && !n.exitRequested,
      );
      if (failOnExit && crashed.length)
        throw new Error(
          `while waiting for: ${description}: ${crashed.map((n) => n.name).join(', ')} exited unexpectedly` +
            `\nnodes (last observed):\n${this.describe()}\nlogs: ${this.runDir}`,
        );
      const round = (async () => {
        const snap = await this.snapshot(nodes, t0);
        return (await predicate(snap)) ? snap : undefined;
      })();
      round.catch(() => {});
      try {
        const result = await Promise.race([round, sleep(remaining, 'timeout' as const, { ref: false })]);
        if (result === 'timeout') break;
        if (result) return result;
        lastError = undefined;
      } catch (err) {
        lastError = (err as Error).message;
      }
      await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
    }
    throw new Error(
      `timed out after ${timeoutMs} ms waiting for: ${description}` +
        (lastError ? `\nlast predicate error: ${lastError}` : '') +
        `\nnodes (last observed):\n${this.describe()}\nlogs: ${this.runDir}`,
    );
  }

  /** Waits until every listed node (default: all active) reports every other one as a peer. */
  waitForConnected(opts: WaitOptions = {}): Promise<Snapshot> {
    return this.waitFor(
      (s) => {
        const names = opts.nodes ?? this.active().map((n) => n.name);
        return names.every((a) => {
          const st = s.statuses[a];
          if (!st) return false;
          const peers = new Set(st.peers.map((p) => p.peerId));
          return names.every((b) => a === b || peers.has(this.node(b).peerId));
        });
      },
      {
        description: `all of [${(opts.nodes ?? this.active().map((n) => n.name)).join(', ')}] connected to each other`,
        ...opts,
      },
    );
  }

  /** Waits until the listed nodes (default: all active) report the same head at height ≥ minHeight. */
  waitForConverged({ minHeight = 0, ...opts }: WaitOptions & { minHeight?: number } = {}): Promise<Snapshot> {
    return this.waitFor(
      (s) => {
        const names = opts.nodes ?? this.active().map((n) => n.name);
        const heads = names.map((n) => s.statuses[n]);
        if (heads.some((h) => !h || h.height < minHeight)) return false;
        return new Set(heads.map((h) => h!.headHash)).size === 1;
      },
      {
        description: `same head at height ≥ ${minHeight} on [${(opts.nodes ?? this.active().map((n) => n.name)).join(', ')}]`,
        ...opts,
      },
    );
  }

  /** One line per node: process state and its last observed status, peers by name. */
  describe(): string {
    const lines: string[] = [];
    for (const n of this.byName.values()) {
      const state = n.running
        ? `running pid ${n.pid}`
        : n.exit
          ? `exited (code ${n.exit.code}, signal ${n.exit.signal})${n.exitRequested ? '' : ' UNEXPECTEDLY: not stopped by the harness'}`
          : 'not started';
      let line = `  ${n.name} [${state}] ${n.peerId}`;
      const s = n.lastStatus;
      if (s) {
        const peers = s.peers
          .map(
            (p) =>
              `${this.nameOf(p.peerId)}(score ${p.score}${p.rttMs !== undefined ? `, rtt ${p.rttMs}ms` : ''})`,
          )
          .join(' ');
        line +=
          `\n      status ${((Date.now() - n.lastStatusAt) / 1000).toFixed(1)} s ago: height ${s.height} head ${String(s.headHash).slice(0, 16)} ` +
          `work ${s.totalWork} sync ${s.syncState} mempool ${s.mempoolSize} orphans ${s.orphanCount} role ${s.role}` +
          `\n      peers [${peers}]` +
          (s.banned.length
            ? `\n      banned [${s.banned.map((b) => `${this.nameOf(b.peer)} until ${b.until}: ${b.reason}`).join('; ')}]`
            : '');
      } else line += '\n      no status observed';
      if (n.lastStatusError) line += `\n      last status error: ${n.lastStatusError}`;
      if (!n.running && n.starts > 0)
        line += `\n      log tail:\n        ${n.recentLog(8).join('\n        ')}`;
      line += `\n      log ${n.logPath}`;
      lines.push(line);
    }
    return lines.join('\n');
  }

  private nextName(): string {
    for (;;) {
      const name = `node${this.counter++}`;
      if (!this.byName.has(name)) return name;
    }
  }

  private bootstrapFor(self: string, o: NodeOptions): string[] {
    if (o.bootstrap) return [...o.bootstrap];
    if (o.bootstrapFrom) return o.bootstrapFrom.flatMap((n) => this.node(n).addrs);
    if (o.mdns) return [];
    return this.running()
      .filter((n) => n.name !== self)
      .flatMap((n) => n.addrs);
  }

  private assertMdnsAllowed(): void {
    if (!this.opts.allowMdns)
      throw new Error(
        'mDNS is only allowed inside a network namespace the test created (see e2e/cluster/netns.ts)',
      );
    assertOwnNetworkNamespace();
  }
}

/**
 * mDNS multicasts on the default interface, so it may only run inside a namespace the test made:
 * netns.ts sets CAIRN_TEST_NETNS=1 in the namespace, and where /proc allows it we also check
 * that this process's network namespace differs from init's.
 */
export function assertOwnNetworkNamespace(): void {
  if (process.env.CAIRN_TEST_NETNS !== '1')
    throw new Error('refusing mDNS: not inside a test network namespace (CAIRN_TEST_NETNS is not set)');
  let mine: string | undefined;
  let init: string | undefined;
  try {
    mine = readlinkSync('/proc/self/ns/net');
    init = readlinkSync('/proc/1/ns/net');
  } catch {
    return; // not readable here; the marker has to do
  }
  if (mine === init) throw new Error('refusing mDNS: this process shares the network namespace of pid 1');
}
