/**
 * Two home LANs behind NATs, built from network namespaces this test creates (issue 15):
 *
 *   lanA 10.0.1.2 ── rtA (10.0.1.1 | 11.11.0.10, nftables NAT) ──┐
 *                                                                 ├─ inet: bridge 11.11.0.1/24 —
 *   lanB 10.0.2.2 ── rtB (10.0.2.1 | 11.11.0.20, nftables NAT) ──┘   relay member + coturn
 *
 * The "internet" is 11.11.0.0/24: libp2p's private-ip list (RFC 1918, CGNAT 100.64/10, the
 * documentation and benchmarking ranges) does not contain it, so every layer treats it as
 * public, and no packet can leave: the namespaces have no route to the machine's own network.
 * Cone: `masquerade` (Linux keeps the source port, mapping per source, conntrack filters per
 * remote endpoint: port-restricted cone). Symmetric: `masquerade fully-random` (a new port per
 * destination), where only TURN gets through.
 * Needs root, `ip netns` and nftables/coturn (installed from Debian with apt when missing);
 * skips with the reason otherwise.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { aptInstall, canAptInstall } from '../suite/apt.ts';
import { track, which, withParentDeathSignal } from './children.ts';
import { Cluster } from './harness.ts';
import { type NodeStatus, nodeArgs, nodeBinary, parseReady, REPO_ROOT } from './node-process.ts';

const TAG = `cn${process.pid % 10000}`;
const NS = {
  inet: `${TAG}-inet`,
  rtA: `${TAG}-rtA`,
  rtB: `${TAG}-rtB`,
  lanA: `${TAG}-lanA`,
  lanB: `${TAG}-lanB`,
};
const RELAY_IP = '11.11.0.1';
const TURN = { user: 'cairn', pass: 'cairn-test' };

const sh = (args: string[]) => {
  const r = spawnSync(args[0]!, args.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
};
const inNs = (ns: string, ...args: string[]) => sh(['ip', 'netns', 'exec', ns, ...args]);

function cannotRun(): string | undefined {
  if (process.platform !== 'linux' || process.getuid?.() !== 0)
    return 'needs root on Linux (ip netns, nftables)';
  if (!which('ip')) return 'needs iproute2 (ip)';
  const missing = [
    ['nft', 'nftables'],
    ['turnserver', 'coturn'],
  ].filter(([bin]) => !which(bin!));
  if (missing.length && canAptInstall()) {
    const err = aptInstall(
      missing.map(([, pkg]) => pkg!),
      path.join(REPO_ROOT, 'test-results', 'nat-apt.log'),
    );
    if (err) return `could not install ${missing.map(([, p]) => p).join(', ')}: ${err}`;
  }
  if (!which('nft') || !which('turnserver'))
    return 'needs nftables and coturn (apt-get install nftables coturn)';
  const probe = spawnSync('ip', ['netns', 'add', `${TAG}-probe`], { encoding: 'utf8' });
  if (probe.status !== 0) return `cannot create network namespaces: ${probe.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', `${TAG}-probe`]);
  return undefined;
}

function teardown(): void {
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
}

/** The namespaces, links, addresses, routes and NAT rules; `symmetricB` makes rtB symmetric. */
function build(symmetricB: boolean): void {
  teardown();
  for (const ns of Object.values(NS)) {
    sh(['ip', 'netns', 'add', ns]);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  inNs(NS.inet, 'ip', 'link', 'add', 'br0', 'type', 'bridge');
  inNs(NS.inet, 'ip', 'addr', 'add', `${RELAY_IP}/24`, 'dev', 'br0');
  inNs(NS.inet, 'ip', 'link', 'set', 'br0', 'up');
  const sides = [
    { rt: NS.rtA, lan: NS.lanA, wan: '11.11.0.10', net: '10.0.1', k: 'a' },
    { rt: NS.rtB, lan: NS.lanB, wan: '11.11.0.20', net: '10.0.2', k: 'b' },
  ];
  for (const s of sides) {
    // WAN: rt's wan0 ↔ a port of the internet bridge.
    sh([
      'ip',
      'link',
      'add',
      `${TAG}w${s.k}`,
      'netns',
      s.rt,
      'type',
      'veth',
      'peer',
      'name',
      `${TAG}p${s.k}`,
      'netns',
      NS.inet,
    ]);
    inNs(s.rt, 'ip', 'link', 'set', `${TAG}w${s.k}`, 'name', 'wan0');
    inNs(s.rt, 'ip', 'addr', 'add', `${s.wan}/24`, 'dev', 'wan0');
    inNs(s.rt, 'ip', 'link', 'set', 'wan0', 'up');
    inNs(NS.inet, 'ip', 'link', 'set', `${TAG}p${s.k}`, 'master', 'br0');
    inNs(NS.inet, 'ip', 'link', 'set', `${TAG}p${s.k}`, 'up');
    // LAN: rt's lan0 ↔ the home host's eth0.
    sh([
      'ip',
      'link',
      'add',
      `${TAG}l${s.k}`,
      'netns',
      s.rt,
      'type',
      'veth',
      'peer',
      'name',
      `${TAG}h${s.k}`,
      'netns',
      s.lan,
    ]);
    inNs(s.rt, 'ip', 'link', 'set', `${TAG}l${s.k}`, 'name', 'lan0');
    inNs(s.rt, 'ip', 'addr', 'add', `${s.net}.1/24`, 'dev', 'lan0');
    inNs(s.rt, 'ip', 'link', 'set', 'lan0', 'up');
    inNs(s.lan, 'ip', 'link', 'set', `${TAG}h${s.k}`, 'name', 'eth0');
    inNs(s.lan, 'ip', 'addr', 'add', `${s.net}.2/24`, 'dev', 'eth0');
    inNs(s.lan, 'ip', 'link', 'set', 'eth0', 'up');
    inNs(s.lan, 'ip', 'route', 'add', 'default', 'via', `${s.net}.1`);
    inNs(s.rt, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    const symmetric = symmetricB && s.k === 'b';
    const rules = [
      'table ip nat {',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    oifname "wan0" ip saddr ${s.net}.0/24 masquerade${symmetric ? ' fully-random' : ''}`,
      '  }',
      '}',
      // Nothing from the internet reaches the LAN unless conntrack knows the flow.
      'table ip filter {',
      '  chain forward {',
      '    type filter hook forward priority filter; policy drop;',
      '    ct state established,related accept',
      '    iifname "lan0" oifname "wan0" accept',
      '  }',
      '}',
    ].join('\n');
    const r = spawnSync('ip', ['netns', 'exec', s.rt, 'nft', '-f', '-'], { input: rules, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`nft in ${s.rt}: ${r.stderr}`);
  }
}

interface NsNode {
  readonly name: string;
  readonly ns: string;
  readonly child: ChildProcess;
  readonly peerId: string;
  readonly httpUrl: string;
}

const children: ChildProcess[] = [];

function startIn(
  ns: string,
  cmd: string,
  args: readonly string[],
  logFile: string,
  ready?: (line: string) => boolean,
): Promise<{ child: ChildProcess; line: string }> {
  const [c, a] = withParentDeathSignal('ip', ['netns', 'exec', ns, cmd, ...args]);
  const child = spawn(c, a, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NODE_TEST_CONTEXT: '' },
  });
  track(child);
  children.push(child);
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  return new Promise((resolve, reject) => {
    if (!ready) return resolve({ child, line: '' });
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${logFile}: not ready in 90 s`)), 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n'))
        if (ready(line)) {
          clearTimeout(timer);
          resolve({ child, line });
        }
      buf = buf.slice(buf.lastIndexOf('\n') + 1);
    });
    child.once('exit', (code) => reject(new Error(`${logFile}: exited ${code} before ready`)));
  });
}

async function startNode(
  cluster: Cluster,
  name: string,
  ns: string,
  member: number,
  extra: string[],
  listen: string[],
  bootstrap: string[],
  mine = false,
): Promise<NsNode> {
  const dataDir = path.join(cluster.runDir, name);
  mkdirSync(dataDir, { recursive: true });
  cluster.roster!.assign(dataDir, member);
  const args = nodeArgs({
    dataDir,
    listen,
    bootstrap,
    mine,
    mdns: false,
    httpPort: 0,
    networkConfig: cluster.networkConfigPath,
    args: extra,
  });
  const { child, line } = await startIn(
    ns,
    nodeBinary(),
    args,
    path.join(cluster.runDir, `${name}.log`),
    (l) => parseReady(l) !== undefined,
  );
  const info = parseReady(line)!;
  return { name, ns, child, peerId: info.peerId, httpUrl: info.httpUrl };
}

function status(n: NsNode): NodeStatus {
  return JSON.parse(inNs(n.ns, 'curl', '-sf', `${n.httpUrl}/status`)) as NodeStatus;
}

async function waitFor<T>(what: string, ms: number, f: () => T | undefined | false): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = f();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`,
  );
}

const kinds = (a: NsNode, b: NsNode) => status(a).peers.find((p) => p.peerId === b.peerId)?.kinds ?? [];

async function scenario(
  t: { diagnostic: (s: string) => void },
  symmetricB: boolean,
  turn: boolean,
): Promise<void> {
  build(symmetricB);
  const cluster = new Cluster({ network: { blockTimeMs: 2_000 }, roster: { size: 4 } });
  t.diagnostic(`run dir ${cluster.runDir}`);
  try {
    await startIn(
      NS.inet,
      'turnserver',
      [
        '-n',
        '--listening-ip',
        RELAY_IP,
        '--relay-ip',
        RELAY_IP,
        '--listening-port',
        '3478',
        '--lt-cred-mech',
        '--user',
        `${TURN.user}:${TURN.pass}`,
        '--realm',
        'cairn',
        '--no-tls',
        '--no-dtls',
        '--no-cli',
        '--fingerprint',
        '--min-port',
        '49152',
        '--max-port',
        '49300',
        '--log-file',
        'stdout',
        '--simple-log',
      ],
      path.join(cluster.runDir, 'coturn.log'),
    );
    const relayListen = `/ip4/${RELAY_IP}/tcp/4001`;
    const relay = await startNode(
      cluster,
      'relay',
      NS.inet,
      0,
      ['--announce', relayListen],
      [relayListen],
      [],
      true,
    );
    const relayAddr = `${relayListen}/p2p/${relay.peerId}`;
    const ice = [
      '--ice-server',
      `stun:${RELAY_IP}:3478`,
      ...(turn
        ? [
            '--ice-server',
            JSON.stringify({ urls: `turn:${RELAY_IP}:3478`, username: TURN.user, credential: TURN.pass }),
          ]
        : []),
    ];
    const common = ['--relay', relayAddr, ...ice, '--log-level', 'debug'];
    const alice = await startNode(cluster, 'alice', NS.lanA, 1, common, ['/p2p-circuit'], [relayAddr]);
    await waitFor('alice reserved', 30_000, () => status(alice).relays[0]?.reserved);
    const t0 = Date.now();
    const bob = await startNode(
      cluster,
      'bob',
      NS.lanB,
      2,
      common,
      ['/p2p-circuit'],
      [relayAddr, `${relayAddr}/p2p-circuit/p2p/${alice.peerId}`],
    );
    const k = await waitFor('bob↔alice over WebRTC, relayed closed', 45_000, () => {
      const ks = kinds(bob, alice);
      return ks.includes('webrtc-via-relay') && !ks.includes('relayed') ? ks : undefined;
    });
    t.diagnostic(
      `${symmetricB ? 'symmetric' : 'cone'}↔cone${turn ? ' (TURN)' : ''}: bob ready → WebRTC ${Date.now() - t0} ms, kinds ${k.join(',')}`,
    );
    await waitFor('one chain', 60_000, () => {
      const [a, b, r] = [status(alice), status(bob), status(relay)];
      return a.height >= 3 && a.headHash === b.headHash && b.headHash === r.headHash;
    });
  } finally {
    for (const c of children.splice(0)) c.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    teardown();
  }
}

// Opt-in for now: the cone case passes but its WebRTC connection flaps for ~1 min before it
// holds (ICE through the NATs takes 5–10 s, close to the dial timeout), past the 90 s budget.
const why =
  process.env.CAIRN_NAT_TEST === '1'
    ? cannotRun()
    : 'opt-in while the WebRTC upgrade through NAT is unstable: set CAIRN_NAT_TEST=1 (issue 15)';

test('NAT: cone ↔ cone members meet over the relay and go direct over WebRTC', {
  skip: why,
  timeout: 120_000,
}, async (t) => {
  await scenario(t, false, false);
});

test('NAT: symmetric ↔ cone members connect through TURN', { skip: why, timeout: 120_000 }, async (t) => {
  await scenario(t, true, true);
});
