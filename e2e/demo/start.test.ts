/**
 * Finding 5 of attack review #13: a Redis password given to the demo (REDIS_URL with a password,
 * the way `npm start` takes it) reached every node process on its command line (`--redis
 * redis://:<password>@…`; /proc/<pid>/cmdline is world-readable) and was printed in the banner;
 * the demo's logs, gateway dir and index DB were 0755/0644. Now the password travels in the
 * node's environment (CAIRN_REDIS_PASSWORD; /proc/<pid>/environ is the owner's only), the banner
 * redacts it, and what the demo writes is the owner's only. Real demo (1 node, collector,
 * gateway) on a private password-protected redis-server; the reports it indexes show the nodes
 * still reach Redis.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { portOrFree } from '../cluster/service.ts';
import { redisAnswers } from './redis.ts';
import { bannerLines, type Demo, passwordApart, startDemo } from './start.ts';

const PASSWORD = `pw${Math.random().toString(36).slice(2, 12)}`;
let demo: Demo | undefined;
let redis: ReturnType<typeof spawn> | undefined;
const dir = mkdtempSync(path.join(os.tmpdir(), 'cairn-demo-pw-'));

before(async () => {
  const port = await portOrFree(0);
  redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', PASSWORD, '--save', ''],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://:${PASSWORD}@127.0.0.1:${port}`;
  const until = Date.now() + 10_000;
  while (!(await redisAnswers(url)) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  // A stand-in for the built console (web/dist): the console is not what this tests.
  const consoleDir = path.join(dir, 'console');
  mkdirSync(consoleDir);
  writeFileSync(path.join(consoleDir, 'index.html'), '<!doctype html><title>console</title>');
  demo = await startDemo({
    consoleDir,
    dataDir: dir,
    redisUrl: url,
    nodes: 1,
    flEveryMs: 0,
    gatewayPort: 0,
    consolePort: 0,
    log: () => {},
  });
});
after(async () => {
  await demo?.stop();
  redis?.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

test('passwordApart: the URL without its password, the password for the environment', () => {
  assert.deepEqual(passwordApart('redis://:p%40ss@127.0.0.1:6379'), {
    url: 'redis://127.0.0.1:6379',
    env: { CAIRN_REDIS_PASSWORD: 'p@ss' },
  });
  assert.deepEqual(passwordApart('redis://127.0.0.1:6379'), { url: 'redis://127.0.0.1:6379', env: {} });
});

test('no process the demo started carries the Redis password on its command line', () => {
  const leaking: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (pid !== String(process.pid) && cmd.includes(PASSWORD) && !cmd.includes('--test'))
      leaking.push(`${pid}: …${cmd.slice(cmd.indexOf(PASSWORD) - 40, cmd.indexOf(PASSWORD) + 30)}…`);
  }
  assert.deepEqual(leaking, [], 'world-readable command lines with the Redis password');
});

test('the node still reaches Redis: its stats are indexed', async () => {
  const until = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(demo!.gatewayUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${demo!.adminToken}` },
      body: JSON.stringify({
        query: 'query ($id: ID!) { node(id: $id) { id } }',
        variables: { id: demo!.nodes[0]!.peerId },
      }),
    });
    const body = (await res.json()) as { data?: { node?: { id: string } | null } };
    if (body.data?.node?.id === demo!.nodes[0]!.peerId) break;
    if (Date.now() > until) assert.fail(`node not indexed: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
});

test("the collector's receipts check out on the node: nothing is re-sent as unreceipted", async () => {
  // The outbox checks deliveries every 10 s: after one check, a receipt that did not verify
  // would have re-sent every report so far under a new id, counted by reason.
  await new Promise((r) => setTimeout(r, 12_000));
  const text = await (await fetch(`${demo!.nodes[0]!.httpUrl}/metrics`)).text();
  const unreceipted = text
    .split('\n')
    .filter((l) => l.startsWith('cairn_queue_repairs_total') && l.includes('report-'));
  assert.deepEqual(unreceipted, [], 'reports re-sent');
  assert.match(text, /cairn_node_reports_pending 0/);
});

test('the banner redacts the password', () => {
  const text = bannerLines(demo!, 0).join('\n');
  assert.ok(!text.includes(PASSWORD), 'the password in the banner');
  assert.match(text, /Redis\s+redis:\/\/:\*\*\*@127\.0\.0\.1/);
});

test("the demo's dirs are 0700 and its files 0600", () => {
  const mode = (p: string) => (statSync(path.join(dir, p)).mode & 0o777).toString(8);
  for (const d of ['', 'logs', 'gateway', 'collector']) assert.equal(mode(d), '700', `${d || 'data dir'}`);
  for (const f of ['logs/node-1.log', 'logs/collector.log', 'logs/gateway.log', 'index.db', 'tokens.json'])
    assert.equal(mode(f), '600', f);
});
