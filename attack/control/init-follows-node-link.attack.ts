/**
 * ATK review of #13 (compose mounts: each node its own folder; non-root image), finding (HIGH):
 * network-init, the one service that runs as root over the whole cairn-data volume and re-runs at
 * every `docker compose up`, loads each device's identity (loadOrCreateIdentity) in
 * `<volume>/<device>/`, a folder that device's container mounts read-write, and follows links
 * there, reading and writing. Code execution in node-3 (a plain miner, the threat the mount fix
 * names) can then, at the next `up`:
 *
 *  - destroy the network's only admin key: with node-3/identity.json removed, root creates one
 *    through `identity.json.<pid>.tmp` (writeFile follows links, then rename), and node-3 has
 *    planted that name, for every small pid a container's process can have, as a link to
 *    `../node-1/identity.json`: node-1's key file is overwritten with a fresh seed;
 *  - take the admin node's Redis queue: with node-3/identity.json a link to
 *    `../node-1/identity.json` (dangling in node-3's container, which does not mount node-1's
 *    folder; followed by root), network-init takes node-1's peer id for node-3 and writes the
 *    ACL with it: Redis user node-3 gets `cairn:node.<node-1 id>:*` (the admin node's commands:
 *    read them, take or delete them before node-1 does).
 *
 * Rig: compose's own network-init command and environment (as attack/control/acl-rig.ts) on a
 * temp dir, node-3's links made in between runs (what its uid 1000 can do in its own folder),
 * the write case run in a pid namespace (unshare --pid --fork: pids as small as a container's),
 * then a redis-server with compose's redis arguments and the ACL file on a loopback port.
 * Measured: node-1's identity.json overwritten (links planted for pids 1-200); node-3's ACL line
 * names node-1's id after the link (not before); as node-3, `LLEN cairn:node.<node-1 id>:wait`
 * answers 0 (allowed) while node-2's queue is refused NOPERM.
 *
 * Fix that makes it pass: network-init never follows links in device folders: open identity
 * files with O_NOFOLLOW (a link or non-regular file is an error), create them with O_EXCL in a
 * directory only root writes (or as the device's uid, not root), and take the device ids from a
 * root-only record written the first time rather than re-deriving them from writable folders.
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
import { REPO_ROOT } from '../../e2e/cluster/node-process.ts';
import { loadOrCreateIdentity } from '../../node/identity/identity.ts';
import { compose } from './acl-rig.ts';

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
