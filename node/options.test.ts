/**
 * The node's option table: parsing, validation, cross-checks, the generated `--help`, and that
 * each default is written once (help, parser and modules all read the same value).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SCHEDULED_JOBS } from '../jobs/queues.ts';
import { defaultTextOf, OptionError, renderHelp, stringOpt } from './option-spec.ts';
import {
  FL_DEFAULTS,
  GOSSIP_DEFAULTS,
  HELP,
  JOBS_DEFAULTS,
  MEMPOOL_DEFAULTS,
  NODE_OPTIONS,
  OPTION_GROUPS,
  P2P_DEFAULTS,
  PEERS_DEFAULTS,
  parseNodeArgs,
  RELAY_DEFAULTS,
} from './options.ts';
import { AddressBans } from './p2p/address-bans.ts';
import { ConnectionLimits } from './p2p/connection-limits.ts';
import { ipColocationParams } from './p2p/gossip-score.ts';
import { PeerScores } from './p2p/peer-scores.ts';

const REPO = path.resolve(import.meta.dirname, '..');

const config = (...argv: string[]) => {
  const r = parseNodeArgs(argv);
  assert.equal(r.help, false);
  return (r as Extract<typeof r, { help: false }>).config;
};
const rejects = (argv: string[], message: RegExp) =>
  assert.throws(
    () => parseNodeArgs(argv),
    (err: unknown) => err instanceof OptionError && err.code === 'bad-option' && message.test(err.message),
  );

test('no flags: every value is its module default', () => {
  const c = config();
  assert.equal(c.dataDir, path.resolve('.data/node'));
  assert.deepEqual(c.listen, P2P_DEFAULTS.listen);
  assert.deepEqual(c.bootstrap, []);
  assert.equal(c.role, 'submind');
  assert.equal(c.reconcileIntervalMs, MEMPOOL_DEFAULTS.reconcileIntervalMs);
  assert.equal(c.fl.deadlineMs, FL_DEFAULTS.deadlineMs);
  assert.equal(c.fl.everyMs, 0);
  assert.equal(c.fl.slice, undefined);
  // Record-level DP-SGD by default; no --fl-budget: the ledger keeps its own (3 when new).
  assert.equal(c.fl.mode, 'record');
  assert.equal(FL_DEFAULTS.mode, 'record');
  assert.equal('budgetEpsilon' in c.fl, false);
  assert.deepEqual(c.http, { host: '127.0.0.1', port: 0, allowHosts: [] });
  // Operators may not send messages as a node unless it says so (--allow-operator-messages).
  assert.deepEqual(c.jobs, {
    redisUrl: undefined,
    schedule: {},
    commandKeys: [],
    collectorKeys: [],
    allowOperatorMessages: false,
  });
  assert.deepEqual(c.p2p, {
    maxConnections: P2P_DEFAULTS.maxConnections,
    reservedOutbound: P2P_DEFAULTS.reservedOutbound,
    maxInboundPerIp: 8,
    ipLimitExempt: ['127.0.0.0/8', '::1/128'],
  });
  assert.equal(c.gossip.ipColocationWeight, GOSSIP_DEFAULTS.ipColocationWeight);
});

test('every existing flag keeps its meaning', () => {
  const c = config(
    '--data-dir',
    '/tmp/x',
    '--listen',
    '/ip4/127.0.0.1/tcp/0',
    '--listen',
    '/ip4/127.0.0.1/udp/0/webrtc-direct',
    '--bootstrap',
    '/ip4/127.0.0.1/tcp/1/p2p/12D3KooW',
    '--mine',
    '--mdns',
    '--role',
    'observer',
    '--capabilities',
    'train, relay',
    '--network-config',
    'net.json',
    '--ice-server',
    'stun:127.0.0.1:3478',
    '--http-host',
    '0.0.0.0',
    '--http-port',
    '8080',
    '--reconcile-ms',
    '0',
    '--log-level',
    'debug',
    '--redis',
    'redis://127.0.0.1:6379',
    '--schedule',
    'stats.report=5000,chain.sync=1000',
    '--allow-operator-messages',
    '--fl-slice',
    '1',
    '--fl-slices',
    '3',
    '--fl-split',
    'label-skew',
    '--fl-seed',
    '7',
    '--fl-decline',
    '--fl-misbehave',
    'oversized',
    '--fl-every',
    '5000',
    '--fl-deadline',
    '2000',
  );
  assert.equal(c.dataDir, '/tmp/x');
  assert.deepEqual(c.listen, ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/udp/0/webrtc-direct']);
  assert.deepEqual(c.bootstrap, ['/ip4/127.0.0.1/tcp/1/p2p/12D3KooW']);
  assert.equal(c.mine, true);
  assert.equal(c.mdns, true);
  assert.equal(c.role, 'observer');
  // --mine adds the capability, as before.
  assert.deepEqual(c.capabilities, ['train', 'relay', 'mine']);
  assert.equal(c.networkConfig, 'net.json');
  assert.deepEqual(c.iceServers, ['stun:127.0.0.1:3478']);
  assert.deepEqual(c.http, { host: '0.0.0.0', port: 8080, allowHosts: [] });
  assert.equal(c.reconcileIntervalMs, 0);
  assert.equal(c.logLevel, 'debug');
  assert.deepEqual(c.jobs, {
    redisUrl: 'redis://127.0.0.1:6379',
    schedule: { 'stats.report': 5000, 'chain.sync': 1000 },
    commandKeys: [],
    collectorKeys: [],
    allowOperatorMessages: true,
  });
  assert.deepEqual(c.fl, {
    slice: { index: 1, of: 3, mode: 'label-skew', seed: 7 },
    decline: true,
    misbehave: 'oversized',
    everyMs: 5000,
    deadlineMs: 2000,
    mode: 'record',
  });
});

test('the limits have flags too', () => {
  const c = config(
    '--max-connections',
    '20',
    '--reserved-outbound',
    '5',
    '--max-inbound-per-ip',
    '3',
    '--ip-limit-exempt',
    '',
    '--ban-ms',
    '60000',
    '--gossip-ip-whitelist',
    '10.0.0.0/8,192.0.2.7',
    '--gossip-ip-colocation-weight',
    '0',
  );
  assert.deepEqual(c.p2p, { maxConnections: 20, reservedOutbound: 5, maxInboundPerIp: 3, ipLimitExempt: [] });
  assert.equal(c.peers.banMs, 60_000);
  assert.deepEqual(c.gossip.ipColocationWhitelist, ['10.0.0.0/8', '192.0.2.7']);
  assert.equal(c.gossip.ipColocationWeight, 0);
});

test('--fl-mode picks the DP mode; --fl-budget sets the privacy budget (ε)', () => {
  assert.equal(config('--fl-mode', 'update').fl.mode, 'update');
  assert.equal(config('--fl-mode', 'record').fl.mode, 'record');
  assert.equal(config('--fl-budget', '2.5').fl.budgetEpsilon, 2.5);
  assert.equal(config('--fl-budget', '0').fl.budgetEpsilon, 0);
  assert.match(helpDefault('fl-budget') ?? '', /^3 for a new ledger/);
  assert.equal(helpDefault('fl-mode'), 'record');
});

test('--collector-key-file adds the public key a file holds to --collector-keys', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cairn-opt-'));
  try {
    const a = 'ab'.repeat(32);
    const b = 'CD'.repeat(32);
    writeFileSync(path.join(dir, 'receipt-key.hex'), `${b}\n`);
    writeFileSync(path.join(dir, 'bad.hex'), 'not a key\n');
    const file = path.join(dir, 'receipt-key.hex');
    assert.deepEqual(config('--collector-keys', a, '--collector-key-file', file).jobs.collectorKeys, [
      a,
      b.toLowerCase(),
    ]);
    assert.throws(
      () => config('--collector-key-file', path.join(dir, 'bad.hex')),
      /not a 32-byte public key/,
    );
    assert.throws(() => config('--collector-key-file', path.join(dir, 'absent.hex')), /absent\.hex/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--http-allow-host adds names to the API's Host allow-list", () => {
  const c = config('--http-host', '0.0.0.0', '--http-allow-host', 'pi.local,[fd00::7],10.0.0.5');
  assert.deepEqual(c.http, { host: '0.0.0.0', port: 0, allowHosts: ['pi.local', '[fd00::7]', '10.0.0.5'] });
});

test('bad values are refused with a message naming the flag', () => {
  rejects(['--bogus'], /Unknown option '--bogus'/);
  rejects(['--http-port'], /argument missing/);
  rejects(['--http-port', '65536'], /--http-port needs an integer from 0 to 65535/);
  rejects(['--http-port', '80x'], /--http-port needs an integer/);
  rejects(
    ['--http-allow-host', 'ok.example,evil.example:80'],
    /--http-allow-host not a host name \("evil.example:80"\)/,
  );
  rejects(['--reconcile-ms=-1'], /--reconcile-ms needs an integer from 0/);
  rejects(['--fl-deadline', '99'], /--fl-deadline needs an integer from 100/);
  rejects(['--role', 'king'], /--role is one of submind, hub, backup, observer/);
  rejects(['--capabilities', 'mine,fly'], /--capabilities unknown capability \("fly"\)/);
  rejects(['--log-level', 'loud'], /--log-level is one of/);
  rejects(['--fl-split', 'random'], /--fl-split is one of iid, label-skew/);
  rejects(['--fl-misbehave', 'lie'], /--fl-misbehave is one of oversized, malformed/);
  rejects(['--schedule', 'nap=5000'], /--schedule names one of mempool.sync/);
  rejects(['--schedule', 'stats.report=50'], /at least 100 ms/);
  rejects(['--redis', '127.0.0.1:6379'], /--redis takes a redis:\/\//);
  rejects(['--listen', 'tcp:1234'], /--listen takes multiaddrs/);
  rejects(['--ip-limit-exempt', '10.0.0.0/33'], /--ip-limit-exempt takes IP ranges/);
  rejects(['--gossip-ip-colocation-weight', '1'], /needs a number from -1000 to 0/);
  rejects(['--fl-mode', 'none'], /--fl-mode is one of record, update/);
  rejects(['--fl-budget=-1'], /--fl-budget needs a number from 0/);
  rejects(['--fl-budget', 'lots'], /--fl-budget needs a number/);
  rejects(['--fl-slice', '1'], /--fl-slice and --fl-slices go together/);
  rejects(['--fl-slice', '3', '--fl-slices', '3'], /--fl-slice must be below --fl-slices/);
  rejects(['--max-connections', '10', '--reserved-outbound', '10'], /--reserved-outbound must leave/);
});

test('--help wins over values it would refuse, but not over unknown flags', () => {
  assert.deepEqual(parseNodeArgs(['--http-port', 'x', '--help']), { help: true });
  rejects(['--nope', '--help'], /Unknown option/);
});

test('--help lists every flag once, grouped by module in table order', () => {
  const flags = Object.values(NODE_OPTIONS).map((s) => s.flag);
  assert.equal(new Set(flags).size, flags.length, 'a flag is declared twice');
  for (const f of flags) {
    const at = HELP.match(new RegExp(`^  --${f}(?= |$)`, 'gm'));
    assert.equal(at?.length, 1, `--${f} appears ${at?.length ?? 0} times in --help`);
  }
  const titles = Object.values(OPTION_GROUPS).map((t) => HELP.indexOf(`\n${t}:\n`));
  assert.ok(
    titles.every((i) => i > 0),
    'a group title is missing',
  );
  assert.deepEqual(
    [...titles].sort((a, b) => a - b),
    titles,
    'groups out of order',
  );
  for (const spec of Object.values(NODE_OPTIONS)) {
    const group = OPTION_GROUPS[spec.group];
    const at = HELP.indexOf(`  --${spec.flag}`);
    const groupAt = HELP.indexOf(`\n${group}:\n`);
    const next = Object.values(OPTION_GROUPS)
      .map((t) => HELP.indexOf(`\n${t}:\n`))
      .filter((i) => i > groupAt)
      .sort((a, b) => a - b)[0];
    assert.ok(at > groupAt && (next === undefined || at < next), `--${spec.flag} is not under "${group}"`);
  }
});

test('help generation wraps long descriptions under the description column', () => {
  const table = {
    a: stringOpt({
      flag: 'a-rather-long-flag-name',
      group: 'g',
      arg: 'V',
      description: 'x '.repeat(60),
      default: 'd',
    }),
  };
  const text = renderHelp(table, { g: 'G' }, 'intro', 'outro');
  const lines = text.split('\n');
  const at = lines.indexOf('  --a-rather-long-flag-name V');
  assert.ok(at > 0, text);
  assert.ok(lines[at + 1]!.startsWith(`${' '.repeat(26)}x x`));
  assert.ok(lines.every((l) => l.length <= 100));
  assert.match(text, /\(default d\)/);
});

/** The text --help shows as the default of `flag`. */
const helpDefault = (flag: string) => {
  const i = HELP.indexOf(`  --${flag}`);
  const block = HELP.slice(i, HELP.indexOf('\n  --', i + 1));
  return block.replace(/\s+/g, ' ').match(/\(default ([^)]*)\)/)?.[1];
};

test('the default --help shows is the one the node and its modules use', () => {
  assert.equal(helpDefault('reconcile-ms'), String(MEMPOOL_DEFAULTS.reconcileIntervalMs));
  assert.equal(helpDefault('fl-deadline'), String(FL_DEFAULTS.deadlineMs));
  assert.equal(helpDefault('fl-seed'), String(FL_DEFAULTS.splitSeed));
  assert.equal(helpDefault('max-connections'), String(new ConnectionLimits().maxConnections));
  assert.equal(helpDefault('reserved-outbound'), String(new ConnectionLimits().reservedOutbound));
  assert.equal(helpDefault('max-inbound-per-ip'), String(new ConnectionLimits().maxInboundPerIp));
  assert.equal(helpDefault('ban-ms'), String(new PeerScores().banMs));
  assert.equal(helpDefault('max-scored-peers'), String(new PeerScores().maxPeers));
  assert.equal(helpDefault('max-banned-peers'), String(new PeerScores().maxBans));
  assert.equal(helpDefault('address-ban-threshold'), String(new AddressBans().threshold));
  assert.equal(helpDefault('address-ban-half-life-ms'), String(new AddressBans().halfLifeMs));
  const p6 = ipColocationParams();
  assert.equal(helpDefault('gossip-ip-colocation-weight'), String(p6.IPColocationFactorWeight));
  assert.equal(helpDefault('gossip-ip-colocation-threshold'), String(p6.IPColocationFactorThreshold));
  // Every scheduled job has a default, and mempool.sync runs at the reconcile period.
  assert.deepEqual(Object.keys(JOBS_DEFAULTS.scheduleMs).sort(), [...SCHEDULED_JOBS].sort());
  assert.equal(JOBS_DEFAULTS.scheduleMs['mempool.sync'], MEMPOOL_DEFAULTS.reconcileIntervalMs);
  for (const [job, ms] of Object.entries(JOBS_DEFAULTS.scheduleMs))
    assert.match(helpDefault('schedule') ?? '', new RegExp(`${job}=${ms}\\b`));
  for (const spec of Object.values(NODE_OPTIONS)) {
    const shown = helpDefault(spec.flag);
    if (spec.defaultText === undefined && shown !== undefined)
      assert.equal(shown, defaultTextOf(spec), `--${spec.flag}: help and parser disagree`);
  }
});

/** Names of the options whose default lives in options.ts, as modules spell them. */
const OPTION_KEYS = new Set(
  [P2P_DEFAULTS, PEERS_DEFAULTS, GOSSIP_DEFAULTS, MEMPOOL_DEFAULTS, FL_DEFAULTS].flatMap((d) =>
    Object.entries(d)
      .filter(([, v]) => typeof v === 'number')
      .map(([k]) => k),
  ),
);
// How modules name some of them in their own option interfaces.
for (const alias of ['maxPeers', 'halfLifeMs', 'banBelow', 'disconnectBelow']) OPTION_KEYS.add(alias);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
    .map((e) => path.join(e.parentPath, e.name))
    .filter(
      (f) => !f.includes(`${path.sep}generated${path.sep}`) && !f.includes(`${path.sep}testing${path.sep}`),
    );
}

test('no module writes its own fallback for an option whose default options.ts holds', () => {
  // `opts.deadlineMs ?? 60_000`, `heartbeatMs = 5000`: a second copy of a default that drifts.
  const fallback = /\b(\w+)\s*(?:\?\?|=)\s*-?[\d_]+(?:\s*\*\s*[\d_]+)?\b/g;
  const found: string[] = [];
  for (const file of [...sources(path.join(REPO, 'node')), ...sources(path.join(REPO, 'jobs'))]) {
    if (file.endsWith(`${path.sep}options.ts`)) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(fallback)) {
      const name = m[1]!;
      if (OPTION_KEYS.has(name)) found.push(`${path.relative(REPO, file)}: ${m[0]}`);
    }
  }
  assert.deepEqual(found, []);
});

test('main.ts exits 2 with a message on a bad value, 0 on --help', () => {
  const run = (...args: string[]) =>
    // On type stripping, as the program runs: tsx transpiling every import took over 60 s in a
    // loaded clean run (the compose test parses node commands the same way).
    spawnSync(process.execPath, [path.join(REPO, 'node/main.ts'), ...args], {
      cwd: REPO,
      encoding: 'utf8',
      timeout: 120_000,
    });
  const bad = run('--fl-deadline', 'soon');
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /^cairn node: --fl-deadline needs an integer/);
  const help = run('--mine', '--help');
  assert.equal(help.status, 0, help.stderr);
  assert.equal(help.stdout, `${HELP}\n`);
});

test('relay, announce and ICE server flags (issue 15)', () => {
  const relay = '/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWRelay';
  const turn = '{"urls":"turn:100.64.0.2:3478","username":"u","credential":"p"}';
  const c = config(
    '--relay',
    relay,
    '--announce',
    '/ip4/100.64.0.10/tcp/4001',
    '--ice-server',
    'stun:100.64.0.2:3478',
    '--ice-server',
    turn,
    '--relay-max-reservations',
    '9',
    '--relay-data-limit-bytes',
    '1048576',
  );
  assert.deepEqual(c.relays, [relay]);
  assert.deepEqual(c.announce, ['/ip4/100.64.0.10/tcp/4001']);
  assert.deepEqual(c.iceServers, ['stun:100.64.0.2:3478', turn]);
  assert.deepEqual(c.relayLimits, { maxReservations: 9, durationLimitMs: 0, dataLimitBytes: 1_048_576 });
  // Defaults: no relay, nothing announced, no ICE server, the member-sized relay limits.
  const d = config();
  assert.deepEqual([d.relays, d.announce, d.iceServers], [[], [], []]);
  assert.deepEqual(d.relayLimits, {
    maxReservations: RELAY_DEFAULTS.maxReservations,
    durationLimitMs: RELAY_DEFAULTS.durationLimitMs,
    dataLimitBytes: RELAY_DEFAULTS.dataLimitBytes,
  });
  assert.throws(() => config('--relay', '/ip4/127.0.0.1/tcp/4001'), /--relay needs \/p2p\/<peer id>/);
  assert.throws(() => config('--ice-server', 'http://x'), /--ice-server an ICE server URL starts with/);
  assert.throws(() => config('--ice-server', '{"urls":"turn:1.2.3.4"}'), /TURN server needs username/);
});
