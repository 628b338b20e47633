/**
 * Review of ATK-13's mount fix, finding (HIGH; fixed): network-init, the one service that runs as
 * root over the whole cairn-data volume and re-runs at every `docker compose up`, loaded each
 * device's identity in `<volume>/<device>/`, a folder that device's container mounts read-write,
 * and followed links there, reading and writing. Code execution in node-3 (a plain miner) could
 * then, at the next `up`, have node-1's (the only admin's) identity.json overwritten through
 * planted `identity.json.<pid>.tmp` links, and with node-3/identity.json a link to
 * `../node-1/identity.json`, get node-1's peer id written into Redis user node-3's ACL line
 * (`cairn:node.<node-1 id>:*`: the admin node's commands). Measured before the fix: node-1's key
 * overwritten (links for pids 1-200, in a pid namespace); node-3's ACL line named node-1's id
 * after the link; as node-3, `LLEN cairn:node.<node-1 id>:wait` answered 0 (allowed).
 *
 * Now network-init reads files in device folders as regular files only (O_NOFOLLOW, fstat),
 * creates new ones under random O_EXCL names in a folder no container mounts and renames them
 * into place (node/membership/root-files.ts), and takes device ids from its own record,
 * `<DIR>/devices.json` (node/membership/device-record.ts), never again from the folders.
 *
 * Rig: compose's own network-init command and environment on a temp dir, node-3's links made in
 * between runs (what its uid 1000 can do in its own folder), the write case in a pid namespace
 * (unshare --pid --fork: pids as small as a container's), then a redis-server with compose's
 * redis arguments and the ACL file on a loopback port.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { loadOrCreateIdentity } from '../node/identity/identity.ts';
import { REPO_ROOT } from './cluster/node-process.ts';
import { compose } from './compose-redis-rig.ts';

const USERS = ['node-1', 'node-2', 'node-3', 'collector', 'gateway', 'health'];
const PASSWORDS: Record<string, string> = Object.fromEntries(
  USERS.map((u) => [`CAIRN_REDIS_${u.toUpperCase().replace('-', '_')}_PASSWORD`, `${u}-pw`]),
);
const fill = (arg: string) =>
  arg.replace(/\$\{(\w+)(?::[?-][^}]*)?\}/g, (_m, v: string) => PASSWORDS[v] ?? '');

test("a node's own folder cannot make root's network-init overwrite the admin key or hand it the admin node's Redis queue", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-atk-initlink-'));
  let server: ChildProcess | undefined;
  const clients: Redis[] = [];
  t.after(async () => {
    for (const c of clients) c.disconnect();
    if (server && server.exitCode === null) {
      const exited = once(server, 'exit');
      server.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });
  const local = (arg: string) => arg.replace(/^\/(cairn|acl)(?=\/|$)/, (m) => path.join(dir, m));
  const init = compose.services['network-init']!;
  const args = init.command
    .slice(4)
    .map((a, i, all) => (all[i - 1] === '--owner' ? `${process.getuid!()}:${process.getgid!()}` : local(a)));
  const env = Object.fromEntries(Object.entries(init.environment ?? {}).map(([k, v]) => [k, fill(v)]));
  const networkInit = async (pidNamespace = false) => {
    const argv = [path.join(REPO_ROOT, 'node/network-init.ts'), ...args];
    const child = spawn(
      pidNamespace ? 'unshare' : process.execPath,
      pidNamespace ? ['--pid', '--fork', process.execPath, ...argv] : argv,
      {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, `network-init failed: ${stderr}`);
  };
  const aclFile = path.join(dir, 'acl', 'users.acl');
  const aclLine = (user: string) =>
    readFileSync(aclFile, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`user ${user} `)) ?? '';

  await networkInit();
  const node1 = (await loadOrCreateIdentity(path.join(dir, 'cairn', 'node-1'))).peerId.toString();
  const node2 = (await loadOrCreateIdentity(path.join(dir, 'cairn', 'node-2'))).peerId.toString();
  const node3 = (await loadOrCreateIdentity(path.join(dir, 'cairn', 'node-3'))).peerId.toString();
  const before = aclLine('node-3');
  assert.ok(before.includes(node3) && !before.includes(node1), 'control: node-3 holds its own queue only');

  // node-3's container (uid 1000, node-3/ mounted read-write) links its identity to node-1's.
  const own = path.join(dir, 'cairn', 'node-3', 'identity.json');
  await unlink(own);
  await symlink('../node-1/identity.json', own);
  // The next `docker compose up` runs network-init again, as root, over the whole volume.
  await networkInit();
  const after = aclLine('node-3');

  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const [, ...redisArgs] = compose.services.redis!.command.map(fill).map(local);
  server = spawn(
    'redis-server',
    [...redisArgs, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir],
    {
      stdio: 'ignore',
    },
  );
  const asUser = (user: string) => {
    const r = new Redis({
      port,
      host: '127.0.0.1',
      username: user,
      password: `${user}-pw`,
      maxRetriesPerRequest: 1,
      retryStrategy: (n) => (n > 40 ? null : 50),
    });
    r.on('error', () => {});
    clients.push(r);
    return r;
  };
  const node3Client = asUser('node-3');
  const llen = (id: string) =>
    node3Client.llen(`cairn:node.${id}:wait`).then(
      (n) => `allowed (${n})`,
      (e: Error) => e.message.split(' ')[0]!,
    );
  const answer = await llen(node1);
  const control = await llen(node2);
  t.diagnostic(
    `node-3's ACL line names node-1's id: before ${before.includes(node1)}, after ${after.includes(node1)}; ` +
      `as node-3, LLEN of node-1's wait list: ${answer}, of node-2's: ${control}`,
  );
  assert.ok(after.includes(node3) && !after.includes(node1), "node-3's ACL line still names its own id only");
  assert.equal(answer, 'NOPERM', "as node-3, node-1's queue is refused");
  assert.equal(control, 'NOPERM', "control: as node-3, node-2's queue is refused");
  // The write half: a device folder without identity.json makes root create one, through
  // `identity.json.<pid>.tmp`, a name node-3 can plant as a link (a container's pids are small).
  const adminKeyFile = path.join(dir, 'cairn', 'node-1', 'identity.json');
  const adminKey = readFileSync(adminKeyFile, 'utf8');
  await unlink(own);
  for (let pid = 1; pid <= 200; pid++)
    await symlink('../node-1/identity.json', path.join(dir, 'cairn', 'node-3', `identity.json.${pid}.tmp`));
  await networkInit(true);
  const adminKeyAfter = readFileSync(adminKeyFile, 'utf8');
  t.diagnostic(
    `network-init (root, pid namespace) with node-3's planted tmp links: node-1's identity.json ${adminKeyAfter === adminKey ? 'unchanged' : 'overwritten'}`,
  );
  assert.equal(
    adminKeyAfter,
    adminKey,
    "root's network-init overwrote the admin node's key through node-3's folder",
  );
});
