/**
 * bench:membership — issue 12's figures in one run.
 *
 * joinMs: a roster network whose admin node serves a seeded 2,000-block chain; `npm run node --
 * invite` on the admin's data dir, then a fresh device runs `npm run node -- join <invitation>`;
 * from starting the join command to the device's height reaching the admin's (real node
 * processes, the real roster). Then bench:admission runs in a child process (connection plus
 * admission, open and roster pairs alternately, 20 each; a stranger trying 50 times over TCP and
 * WebRTC-direct) and its figures are merged. Last line: one JSON object.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster, seedableNetwork } from '../e2e/cluster/harness.ts';
import { NODE_MAIN, NODE_V8_FLAGS, nodeBinary } from '../e2e/cluster/node-process.ts';
import { readNetworkConfig } from '../node/config-file.ts';
import { seedChain } from '../node/testing/seed-store.ts';

const run = promisify(execFile);
const SEEDED = Number(process.env.BENCH_JOIN_BLOCKS ?? 2_000);
const say = (msg: string) => process.stderr.write(`${msg}\n`);

const cluster = new Cluster({ network: seedableNetwork(), roster: { size: 2, admins: [0] } });
let joinMs = Number.NaN;
let joinedHeight = 0;
try {
  const network = await readNetworkConfig(cluster.networkConfigPath!);
  const adminDir = path.join(cluster.runDir, 'admin');
  await seedChain([adminDir], network, { blocks: SEEDED, entriesPerBlock: 1 });
  const [admin] = await cluster.start(1, { name: 'admin', dataDir: adminDir, member: 0, bootstrap: [] });
  const { stdout } = await run(
    nodeBinary(),
    [
      ...NODE_V8_FLAGS,
      '--import',
      'tsx',
      NODE_MAIN,
      'invite',
      '--data-dir',
      adminDir,
      '--name',
      'bench device',
      '--capabilities',
      'submit',
      '--no-qr',
    ],
    { timeout: 60_000 },
  );
  const invitation = stdout.split('\n')[0]!;
  const target = (await admin!.status()).height;
  const t0 = performance.now();
  await cluster.addNode({
    name: 'device',
    member: false,
    networkConfig: false,
    command: ['join', invitation],
  });
  const synced = await cluster.waitFor((s) => (s.statuses.device?.height ?? 0) >= target, {
    timeoutMs: 120_000,
    intervalMs: 50,
    description: `the device reaches height ${target}`,
  });
  joinMs = Math.round(performance.now() - t0);
  joinedHeight = synced.statuses.device!.height;
  say(`join: ${joinMs} ms from the join command to height ${joinedHeight} (${SEEDED} seeded)`);
} finally {
  await cluster.stopAll();
  await cluster.removeRunDir();
}

const admission = await run(
  nodeBinary(),
  ['--import', 'tsx', path.join(import.meta.dirname, 'admission.bench.ts')],
  {
    timeout: 300_000,
  },
);
process.stderr.write(admission.stderr);
const figures = JSON.parse(admission.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
console.log(JSON.stringify({ joinMs, joinedHeight, seededBlocks: SEEDED, ...figures }));
process.exit(0);
