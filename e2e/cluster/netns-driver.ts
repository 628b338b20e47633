/**
 * Runs inside the network namespace netns.ts creates (never start it by hand outside one: it
 * enables mDNS). Argument: a DriverConfig as JSON. Starts the nodes with mDNS on and no bootstrap
 * list, waits until every node is connected to every other one (and optionally for equal heads),
 * prints one `CAIRN_NETNS_RESULT {…}` line on stdout, stops the nodes and exits (0 if the
 * condition held). Node logs go to `<runDir>/<name>.log`; diagnostics to stderr.
 */
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { assertOwnNetworkNamespace, Cluster, type Snapshot } from './harness.ts';
import type { DriverConfig, NetnsResult } from './netns.ts';

const RESULT_PREFIX = 'CAIRN_NETNS_RESULT ';

async function main(): Promise<number> {
  const config = JSON.parse(process.argv[2] ?? '{}') as DriverConfig;
  assertOwnNetworkNamespace();
  const interfaces = Object.keys(os.networkInterfaces());
  let netns: string | undefined;
  try {
    netns = readlinkSync('/proc/self/ns/net');
  } catch {
    // not readable
  }
  const cluster = new Cluster({
    runDir: config.runDir,
    network: config.network ?? {},
    allowMdns: true,
    entry: config.entry,
  });
  const result: NetnsResult = { ok: false, runDir: cluster.runDir, interfaces, netns, nodes: [] };
  let snap: Snapshot | undefined;
  try {
    if (interfaces.some((i) => i !== 'lo'))
      throw new Error(
        `expected only the loopback interface in the namespace, found ${interfaces.join(', ')}`,
      );
    const t0 = Date.now();
    const mine = new Set(config.mine ?? []);
    await cluster.start(
      config.nodes,
      (i) => ({
        mdns: true,
        bootstrap: [],
        mine: mine.has(i),
        extraListen: config.extraListen,
        logLevel: config.logLevel,
      }),
      { concurrency: config.nodes },
    );
    const t1 = Date.now();
    result.startMs = t1 - t0;
    snap = await cluster.waitForConnected({
      timeoutMs: config.timeoutMs,
      description: `${config.nodes} mDNS nodes each connected to all the others`,
    });
    if (config.minHeight !== undefined)
      snap = await cluster.waitForConverged({
        minHeight: config.minHeight,
        timeoutMs: Math.max(1000, config.timeoutMs - (Date.now() - t1)),
      });
    result.connectMs = Date.now() - t1;
    result.ok = true;
  } catch (err) {
    result.error = (err as Error).message;
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
  }
  for (const n of cluster.nodes) {
    const s = snap?.statuses[n.name] ?? n.lastStatus;
    const peers = s?.peers.map((p) => p.peerId) ?? [];
    result.nodes.push({
      name: n.name,
      peerId: n.peerId,
      addrs: n.addrs,
      peers,
      peerNames: peers.map((p) => cluster.nameOf(p)),
      height: s?.height ?? -1,
      headHash: s?.headHash ?? '',
    });
  }
  result.stop = await cluster.stopAll();
  process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
  return result.ok ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    process.stdout.write(
      `${RESULT_PREFIX}${JSON.stringify({ ok: false, error: String((err as Error).message ?? err), runDir: '', interfaces: [], nodes: [] })}\n`,
    );
    process.exitCode = 2;
  },
);
