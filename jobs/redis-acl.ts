/**
 * The Redis ACL file of a deployment (docker-compose.yml): the default user off, one user per
 * node allowed only its own queue's keys plus what BullMQ's producer side needs on the reports
 * queue, and one user each for the collector, the gateway and the health check. A node's user
 * needs its node id (the queue is `<prefix>:node.<id>:*`), known only once the identities exist,
 * so the file is written by network-init (`--redis-acl`), not spelled out in compose.
 *
 * What ACL cannot express, a node user can still do on the shared reports queue: LPUSH any id
 * onto `wait` (the worker then finds no job or someone's signed report: nothing to forge), ZADD
 * the worker's marker, and XADD to `<prefix>:reports:events` with any id or MAXLEN (arguments are
 * not ACL-checked), which is the "exhausted stream" attack the collector's watchdog repairs
 * (queue-watch.ts). It cannot remove, move or overwrite anyone's report, pause the queue or
 * touch another node's queue: those need LREM/DEL/HSET… on keys outside its patterns.
 *
 * Nor may a node user run a Lua script of its own: one that wrote a key and then loops stops
 * Redis for every client, unkillable (SCRIPT KILL answers UNKILLABLE; only SHUTDOWN NOSAVE ends
 * it), and ACL checks each call inside a script, not how long it runs. ACL cannot pin digests,
 * but it can deny EVAL, EVAL_RO, SCRIPT (LOAD, FLUSH, KILL…), FUNCTION and FCALL and allow
 * EVALSHA: a node runs only what is in Redis's script cache, and only the collector and the
 * gateway put scripts there, BullMQ's, at start and on each reconnect (redis-scripts.ts; nodes'
 * connections send EVALSHA only and wait for that preload after a Redis restart). What that
 * leaves open: BullMQ's own scripts walk whatever a node stored in its own keys, to the end
 * (cleanJobsInSet with limit 0 over 200,000 ids: seconds of BUSY for everyone, unkillable;
 * attack/control/bullmq-script-walks-own-keys.attack.ts). Only less data per node bounds it.
 */
import { createHash } from 'node:crypto';

/** A node's Redis user: its name, the node id its queue carries, its password. */
export interface AclNode {
  readonly user: string;
  readonly nodeId: string;
  readonly password: string;
}

export interface AclOptions {
  /** BullMQ key prefix and pub/sub namespace (queues.ts namespace()). */
  readonly prefix: string;
  readonly nodes: readonly AclNode[];
  readonly collectorPassword: string;
  readonly gatewayPassword: string;
  readonly healthPassword: string;
}

/** Commands BullMQ needs besides what -@dangerous leaves (ready check, connection names). */
const BULLMQ_BASE = '+@all -@dangerous +info +client|setname';

/**
 * Every way to run or store a script of the caller's choosing (Redis 7): a node user runs scripts
 * only by EVALSHA of what a trusted user loaded. SCRIPT FLUSH would also empty the cache under
 * every other node, SCRIPT KILL end another client's script.
 */
export const NODE_DENIED_SCRIPTING = ['eval', 'eval_ro', 'script', 'function', 'fcall', 'fcall_ro'] as const;

/**
 * The collector and the gateway load scripts (SCRIPT LOAD, redis-scripts.ts) but run none they
 * wrote themselves either: what is in the cache, and so what a node can EVALSHA, is then exactly
 * what Cairn's code SCRIPT LOADs, BullMQ's scripts (an EVAL would leave its script cached too).
 */
export const TRUSTED_DENIED_SCRIPTING = ['eval', 'eval_ro', 'function', 'fcall', 'fcall_ro'] as const;
const trustedScripting = TRUSTED_DENIED_SCRIPTING.map((c) => `-${c}`);

/**
 * Writes a node user is denied although its own keys would allow them: each lets a few bytes
 * of command allocate or copy without bound (SETRANGE/SETBIT/BITFIELD at an offset near 2^32
 * allocate up to 512 MiB; APPEND grows a value without a cap; COPY, SORT … STORE, BITOP, PFMERGE
 * and the *STORE family duplicate whole keys). Neither BullMQ's scripts nor the node use any of
 * them (none appears in bullmq's commands/*.lua). Memory as a whole is bounded by compose's
 * --maxmemory (noeviction: writes then fail, nothing is deleted); this only keeps one node from
 * reaching that bound with a handful of commands.
 */
export const NODE_DENIED_WRITES = [
  'setrange',
  'setbit',
  'bitfield',
  'bitop',
  'append',
  'copy',
  'sort',
  'sunionstore',
  'sinterstore',
  'sdiffstore',
  'zunionstore',
  'zinterstore',
  'zdiffstore',
  'zrangestore',
  'georadius',
  'georadiusbymember',
  'geosearchstore',
  'pfmerge',
] as const;

/** A user name, node id or namespace goes into patterns: glob and ACL syntax characters refused. */
const SAFE = /^[A-Za-z0-9._-]+$/;

function safe(what: string, v: string): string {
  if (!SAFE.test(v)) throw new Error(`redis ACL: ${what} "${v}" must be letters, digits, '.', '_' or '-'`);
  return v;
}

/** Redis's `#<sha256>` form: the file holds no password. */
const hashed = (password: string) => {
  if (!password) throw new Error('redis ACL: empty password');
  return `#${createHash('sha256').update(password).digest('hex')}`;
};

/**
 * A node's rules. Its own queue: everything BullMQ's worker, schedulers and watchdog use. The
 * reports queue, by selectors (each grants commands on keys; a script's inner calls are checked
 * one by one): run BullMQ's scripts (EVALSHA only, NODE_DENIED_SCRIPTING), read anything (job state, its reports' hashes), and exactly
 * the writes of `addStandardJob`: INCR the id counter, HMSET a job hash whose id names this node
 * (node-reports.ts ids are `<kind>.<nodeId>.…`), LPUSH onto wait, ZADD the marker, XADD the
 * events. Not HSET on meta (that is Queue.pause), so the node's Queue skips its meta update and
 * the collector keeps the meta (collector.ts). No pub/sub at all.
 */
export function nodeRules(prefix: string, nodeId: string): string[] {
  const r = `${prefix}:reports`;
  return [
    `~${prefix}:node.${nodeId}:*`,
    'resetchannels',
    BULLMQ_BASE,
    ...NODE_DENIED_WRITES.map((c) => `-${c}`),
    ...NODE_DENIED_SCRIPTING.map((c) => `-${c}`),
    `(~${r}:* +evalsha +evalsha_ro)`,
    `(%R~${r}:* +@read)`,
    `(~${r}:id +incr)`,
    `(~${r}:*.${nodeId}.* +hmset)`,
    `(~${r}:wait +lpush)`,
    `(~${r}:marker +zadd)`,
    `(~${r}:events +xadd)`,
  ];
}

export function redisAclFile(o: AclOptions): string {
  const p = safe('prefix', o.prefix);
  const lines = ['user default off resetkeys resetchannels -@all'];
  const users = new Set<string>(['default']);
  const user = (name: string, password: string, rules: readonly string[]) => {
    if (users.has(safe('user', name))) throw new Error(`redis ACL: user "${name}" twice`);
    users.add(name);
    lines.push(['user', name, 'on', hashed(password), ...rules].join(' '));
  };
  for (const n of o.nodes) user(n.user, n.password, nodeRules(p, safe('node id', n.nodeId)));
  // The collector publishes the events it indexed, and owns the reports queue.
  user('collector', o.collectorPassword, [
    `~${p}:reports:*`,
    `&${p}.cairn.*`,
    BULLMQ_BASE,
    ...trustedScripting,
  ]);
  // The gateway enqueues commands on every node queue and reads their results; it only subscribes.
  // CLIENT UNBLOCK (in @dangerous) is how its one reader of every node's results takes a new
  // stream at once instead of after its 2 s block (job-events.ts); it lets the gateway also wake
  // other clients' blocking reads, a nuisance next to what it may do to node queues anyway.
  user('gateway', o.gatewayPassword, [
    `~${p}:node.*`,
    `&${p}.cairn.*`,
    BULLMQ_BASE,
    '+client|unblock',
    '-publish',
    '-spublish',
    ...trustedScripting,
  ]);
  user('health', o.healthPassword, ['+ping']);
  return `${lines.join('\n')}\n`;
}

/** `CAIRN_REDIS_<NAME>_PASSWORD` for a user name (node-1 → CAIRN_REDIS_NODE_1_PASSWORD). */
export const passwordEnv = (user: string) =>
  `CAIRN_REDIS_${user.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_PASSWORD`;
