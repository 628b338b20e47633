/**
 * No Docker engine runs here, so docker-compose.yml is checked statically: every service's
 * command is a real npm script or file of this project, every Dockerfile and bind-mounted or
 * referenced file exists, dependencies name real services, and the nodes discover each other by
 * mDNS on a bridge network.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { NODE_MAIN, nodeBinary, REPO_ROOT } from './cluster/node-process.ts';

const compose = parse(readFileSync(path.join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  networks?: Record<string, { driver?: string; ipam?: { config?: { subnet?: string }[] } }>;
  volumes?: Record<string, unknown>;
};
const scripts = (
  JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts;

interface LongVolume {
  type: string;
  source: string;
  target: string;
  read_only?: boolean;
  volume?: { subpath?: string };
}

interface Service {
  image?: string;
  user?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string[] | string;
  environment?: Record<string, string> | string[];
  /** Short syntax (`source:target[:mode]`) or long syntax. */
  volumes?: (string | LongVolume)[];
  depends_on?: string[] | Record<string, unknown>;
  networks?: string[] | Record<string, unknown>;
  env_file?: string | string[];
}

const services = Object.entries(compose.services);

/** A service's mounts of the cairn-data volume; a whole-volume mount has subpath ''. */
function dataMounts(s: Service): { subpath: string; target: string; readOnly: boolean }[] {
  return (s.volumes ?? []).flatMap((v) => {
    if (typeof v === 'string') {
      const [source, target, mode] = v.split(':');
      return source === 'cairn-data' ? [{ subpath: '', target: target!, readOnly: mode === 'ro' }] : [];
    }
    return v.source === 'cairn-data'
      ? [{ subpath: v.volume?.subpath ?? '', target: v.target, readOnly: v.read_only === true }]
      : [];
  });
}
const built = services.filter(([, s]) => s.build);

test('the compose file has the architecture’s services', () => {
  for (const name of ['redis', 'postgres', 'node-1', 'node-2', 'node-3', 'collector', 'gateway', 'console'])
    assert.ok(compose.services[name], `service ${name} is missing`);
});

test('every build context and Dockerfile exists', () => {
  assert.ok(built.length >= 6);
  for (const [name, s] of built) {
    const b = typeof s.build === 'string' ? { context: s.build } : s.build!;
    const context = path.resolve(REPO_ROOT, b.context ?? '.');
    assert.ok(existsSync(context), `${name}: build context ${context}`);
    const dockerfile = path.resolve(context, b.dockerfile ?? 'Dockerfile');
    assert.ok(existsSync(dockerfile), `${name}: ${dockerfile} does not exist`);
  }
});

test("every project service's command is a real npm script or file of the project", () => {
  for (const [name, s] of built) {
    const cmd = typeof s.command === 'string' ? s.command.split(/\s+/) : s.command;
    assert.ok(cmd?.length, `${name} has no command`);
    if (cmd[0] === 'npm') {
      assert.equal(cmd[1], 'run', `${name}: npm ${cmd[1]}`);
      assert.ok(scripts[cmd[2]!], `${name}: npm script "${cmd[2]}" is not in package.json`);
      // The script's own entry file exists too (e.g. node --import tsx jobs/collector/main.ts).
      for (const f of scripts[cmd[2]!]!.split(/\s+/).filter((w) => /\.(ts|js)$/.test(w)))
        assert.ok(
          existsSync(path.join(REPO_ROOT, f)),
          `${name}: ${f} (from script ${cmd[2]}) does not exist`,
        );
    } else {
      const file = cmd.find((w) => /\.(ts|js|mjs)$/.test(w));
      assert.ok(
        file && existsSync(path.join(REPO_ROOT, file)),
        `${name}: command ${cmd.join(' ')} names no project file`,
      );
    }
  }
});

test('every file the Dockerfile runs is a real script', () => {
  const text = readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  for (const m of text.matchAll(/npm run ([\w:-]+)/g))
    assert.ok(scripts[m[1]!], `Dockerfile: npm run ${m[1]}`);
  for (const m of text.matchAll(/^COPY\s+(?!--)(\S+)\s/gm))
    if (m[1] !== '.') assert.ok(existsSync(path.join(REPO_ROOT, m[1]!)), `Dockerfile: COPY ${m[1]}`);
});

test('bind mounts, env files and named volumes resolve', () => {
  for (const [name, s] of services) {
    for (const v of s.volumes ?? []) {
      const src = typeof v === 'string' ? v.split(':')[0]! : v.source;
      if (src.startsWith('.') || src.startsWith('/'))
        assert.ok(existsSync(path.resolve(REPO_ROOT, src)), `${name}: bind mount ${src}`);
      else
        assert.ok(compose.volumes && src in compose.volumes, `${name}: named volume ${src} is not declared`);
    }
    for (const f of [s.env_file ?? []].flat())
      assert.ok(existsSync(path.resolve(REPO_ROOT, f)), `${name}: env_file ${f}`);
  }
});

test('dependencies name real services', () => {
  for (const [name, s] of services) {
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
    for (const d of deps) assert.ok(compose.services[d], `${name} depends on unknown service ${d}`);
  }
});

test('the three nodes mine, use Redis and find each other by mDNS on a bridge network', () => {
  for (const name of ['node-1', 'node-2', 'node-3']) {
    const cmd = compose.services[name]!.command as string[];
    for (const flag of ['--mdns', '--mine', '--redis', '--data-dir'])
      assert.ok(cmd.includes(flag), `${name}: ${flag}`);
    const nets = compose.services[name]!.networks;
    const list = Array.isArray(nets) ? nets : Object.keys(nets ?? {});
    for (const n of list) assert.equal(compose.networks?.[n]?.driver, 'bridge', `${name}: network ${n}`);
    assert.ok(list.length > 0, `${name} is on no network`);
  }
  // They train together: each on its own slice of the corpus, node-1 coordinating rounds.
  const flag = (name: string, f: string) => {
    const cmd = compose.services[name]!.command as string[];
    return cmd.includes(f) ? cmd[cmd.indexOf(f) + 1] : undefined;
  };
  assert.deepEqual(
    ['node-1', 'node-2', 'node-3'].map((n) => [
      flag(n, '--capabilities'),
      flag(n, '--fl-slice'),
      flag(n, '--fl-slices'),
      // Record-level DP-SGD, each node within its privacy budget (issue 16).
      flag(n, '--fl-mode'),
    ]),
    [
      ['train', '0', '3', 'record'],
      ['train', '1', '3', 'record'],
      ['train', '2', '3', 'record'],
    ],
  );
  assert.ok(Number(flag('node-1', '--fl-every')) > 0);
  // The collector and the gateway share the PostgreSQL index DB.
  const env = (s: string) => compose.services[s]!.environment as Record<string, string>;
  assert.match(env('collector').DATABASE_URL!, /^postgres(ql)?:\/\/.*@postgres:5432\//);
  assert.equal(env('collector').DATABASE_URL, env('gateway').DATABASE_URL);
});

test("every node command's flags are accepted by the node's own argument parser", () => {
  for (const name of ['node-1', 'node-2', 'node-3']) {
    const cmd = compose.services[name]!.command as string[];
    const args = cmd.slice(cmd.indexOf('--') + 1);
    // --help exits 0 after a strict parse; an unknown flag or a missing value exits 2.
    // On type stripping, as the program runs (tsx transpiling every import took over 30 s in a
    // loaded clean run); the parse is strict either way.
    const r = spawnSync(nodeBinary(), [NODE_MAIN, ...args, '--help'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `${name}: ${r.stderr.split('\n')[0]}`);
  }
});

test('the nodes share one roster network that network-init creates before they start', async () => {
  const init = compose.services['network-init'];
  assert.ok(init, 'a network-init service');
  const initCmd = init.command as string[];
  const arg = (cmd: string[], f: string) => (cmd.includes(f) ? cmd[cmd.indexOf(f) + 1] : undefined);
  const devices = arg(initCmd, '--devices')!.split(',');
  const dir = arg(initCmd, '--dir')!;
  assert.deepEqual(devices, ['node-1', 'node-2', 'node-3']);
  for (const name of devices) {
    const s = compose.services[name]!;
    const cmd = s.command as string[];
    assert.equal(
      arg(cmd, '--data-dir'),
      `${dir}/${name}`,
      `${name}: its data dir holds the identity network-init made`,
    );
    assert.equal(
      arg(cmd, '--network-config'),
      `${dir}/public/network.json`,
      `${name}: the shared roster network`,
    );
    assert.deepEqual((s.depends_on as Record<string, { condition: string }>)['network-init'], {
      condition: 'service_completed_successfully',
    });
    // Its own folder read-write and the public one read-only: never the whole volume, which
    // holds every node's identity (node-1's is the admin key).
    assert.deepEqual(
      dataMounts(s),
      [
        { subpath: name, target: `${dir}/${name}`, readOnly: false },
        { subpath: 'public', target: `${dir}/public`, readOnly: true },
      ],
      `${name}: its mounts of cairn-data`,
    );
  }
  // What the init command writes: a roster network listing every device, the first its admin.
  const { mkdtemp, rm } = await import('node:fs/promises');
  const os = await import('node:os');
  const { ensureDeviceNetwork } = await import('../node/membership/create-network.ts');
  const { readNetworkConfig } = await import('../node/config-file.ts');
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'cairn-compose-'));
  try {
    const config = await readNetworkConfig(ensureDeviceNetwork(tmp, devices));
    assert.equal(config.membership, 'roster');
    assert.equal(config.admins.length, 1);
    // The gateway gets its key and certificate, and nothing else of the volume (no node's key).
    const { ensureGatewayCertificate, keyOfDataDir } = await import('../node/membership/gateway-member.ts');
    const admission = await ensureGatewayCertificate({
      keyFile: path.join(tmp, 'gateway', 'identity.json'),
      certificateFile: path.join(tmp, 'gateway', 'certificate.hex'),
      networkFile: path.join(tmp, 'network.json'),
      admin: keyOfDataDir(path.join(tmp, devices[0]!)),
    });
    assert.equal(admission.issued, true);
    const gw = compose.services.gateway!;
    const gwMount = gw.volumes?.find(
      (v): v is LongVolume => typeof v !== 'string' && v.source === 'cairn-data',
    );
    assert.deepEqual(
      { subpath: gwMount?.volume?.subpath, readOnly: gwMount?.read_only },
      { subpath: 'gateway', readOnly: true },
    );
    const gwEnv = gw.environment as Record<string, string>;
    assert.equal(gwEnv.CAIRN_GATEWAY_KEY, `${gwMount!.target}/identity.json`);
    assert.equal(gwEnv.CAIRN_GATEWAY_CERTIFICATE, `${gwMount!.target}/certificate.hex`);
    assert.deepEqual((gw.depends_on as Record<string, { condition: string }>)['network-init'], {
      condition: 'service_completed_successfully',
    });
    assert.deepEqual(
      config.members.map((m) => m.name),
      devices,
    );
    // Receipts: the collector signs with the key network-init made, and every node holds its
    // public half, so a report counts delivered only on the collector's signed receipt.
    const init = spawnSync(
      nodeBinary(),
      [
        'node/network-init.ts',
        '--dir',
        tmp,
        '--devices',
        devices.join(','),
        '--owner',
        `${process.getuid!()}:${process.getgid!()}`,
      ],
      {
        cwd: REPO_ROOT,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    assert.equal(init.status, 0, init.stderr);
    const printed = JSON.parse(init.stdout.trim().split('\n').at(-1)!) as {
      collector: { receiptKey: string };
    };
    const collector = compose.services.collector!;
    const collectorEnv = collector.environment as Record<string, string>;
    const keyFile = collectorEnv.CAIRN_COLLECTOR_KEY_FILE!;
    assert.equal(keyFile, `${dir}/collector/identity.json`);
    // The collector sees its own folder and the public one, read-only, and no node's folder.
    assert.deepEqual(dataMounts(collector), [
      { subpath: 'collector', target: `${dir}/collector`, readOnly: true },
      { subpath: 'public', target: `${dir}/public`, readOnly: true },
    ]);
    const { loadOrCreateKeyFile } = await import('../node/membership/gateway-member.ts');
    const { toHex } = await import('../node/chain/bytes.ts');
    // Each path a service is given, followed through that service's own mounts to the file
    // network-init wrote: a path outside them would not exist in the container.
    const onDisk = (s: Service, f: string) => {
      const m = dataMounts(s).find((v) => f.startsWith(`${v.target}/`));
      assert.ok(m, `${f} is in none of the service's mounts`);
      return path.join(tmp, m.subpath, path.relative(m.target, f));
    };
    assert.equal(
      toHex(loadOrCreateKeyFile(onDisk(collector, keyFile)).publicKey),
      printed.collector.receiptKey,
    );
    assert.equal(
      readFileSync(onDisk(collector, collectorEnv.CAIRN_NETWORK_CONFIG!), 'utf8'),
      readFileSync(path.join(tmp, 'network.json'), 'utf8'),
      'the collector checks reports against the network the nodes run',
    );
    for (const name of devices) {
      const s = compose.services[name]!;
      const cmd = s.command as string[];
      const pub = arg(cmd, '--collector-key-file');
      assert.ok(pub, `${name}: --collector-key-file`);
      assert.equal(
        readFileSync(onDisk(s, pub), 'utf8').trim(),
        printed.collector.receiptKey,
        `${name}: the collector's key`,
      );
      assert.deepEqual(
        await readNetworkConfig(onDisk(s, arg(cmd, '--network-config')!)),
        config,
        `${name}: the network network-init made`,
      );
      assert.ok(existsSync(onDisk(s, `${dir}/${name}/identity.json`)), `${name}: its identity`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});

test('only network-init sees the whole data volume, and only it runs as root', () => {
  const whole = services.filter(([, s]) => dataMounts(s).some((m) => m.subpath === '')).map(([n]) => n);
  assert.deepEqual(whole, ['network-init']);
  // The image's last USER is an unprivileged one, and no other built service overrides it.
  const users = [...readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8').matchAll(/^USER\s+(\S+)/gm)];
  assert.equal(users.at(-1)?.[1], 'node');
  assert.deepEqual(
    built.filter(([, s]) => s.user !== undefined).map(([n, s]) => [n, s.user]),
    [['network-init', 'root']],
  );
  // network-init hands the volume to that user (the node image's uid 1000).
  const cmd = compose.services['network-init']!.command as string[];
  assert.equal(cmd[cmd.indexOf('--owner') + 1], '1000:1000');
});

test('the gateway trusts X-Forwarded-For from the console’s fixed address only', async () => {
  const { cidrProblem, ipRanges } = await import('../node/p2p/ip-ranges.ts');
  const consoleService = compose.services.console!;
  const nets = consoleService.networks as Record<string, { ipv4_address?: string }>;
  const address = nets.cairn?.ipv4_address;
  assert.ok(address, 'the console has a fixed address on the compose network');
  const subnet = compose.networks?.cairn?.ipam?.config?.[0]?.subnet;
  assert.ok(subnet && !cidrProblem(subnet) && ipRanges([subnet])(address), `${address} in ${subnet}`);
  const env = compose.services.gateway!.environment as Record<string, string>;
  assert.equal(env.CAIRN_TRUSTED_PROXIES, address);
  assert.equal((consoleService.environment as Record<string, string>).GATEWAY_PROXY, 'http://gateway:4000');
});
