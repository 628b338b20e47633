/**
 * Queue names. BullMQ keys live under the namespace prefix (default `cairn`), so the node queue
 * of peer X is the Redis key space `cairn:node.X:*` and reports are `cairn:reports:*` (BullMQ
 * forbids ':' inside a queue name, hence the dot). A namespace (env CAIRN_NAMESPACE) separates
 * Cairn deployments sharing one Redis — and tests running side by side. Pub/sub topics carry it
 * too (Redis pub/sub ignores database numbers).
 */
export const DEFAULT_NAMESPACE = 'cairn';

export function namespace(value = process.env.CAIRN_NAMESPACE): string {
  const ns = value || DEFAULT_NAMESPACE;
  if (!/^[a-z0-9][a-z0-9_-]{0,62}$/i.test(ns))
    throw new Error(`CAIRN_NAMESPACE must be letters, digits, '-' or '_' (got "${ns}")`);
  return ns;
}
export const REPORTS_QUEUE = 'reports';
export const nodeQueueName = (nodeId: string) => `node.${nodeId}`;

/**
 * Entries kept (approximately: Redis trims whole stream nodes, ~100 entries each) in a node
 * queue's event stream, `<prefix>:node.<id>:events`. BullMQ writes each completed job's return
 * value there, whatever removeOnComplete says, and the gateway reads command results from it.
 * Results are signed by the node and sealed to the command's reply key (result-envelope.ts), so a
 * Redis reader learns nothing from them and cannot forge one; what stays is the stream's size.
 * The gateway deletes the entry it read (job-events.ts); this bounds the rest (a result nobody
 * read: the gateway timed out) to a few minutes of a node's scheduled jobs (~5 entries each). Every Queue
 * opened on a node queue must pass it (`streams.events.maxLen`): BullMQ keeps the last one set in
 * the queue's meta, and the node also trims to it on its watchdog.
 */
export const NODE_EVENTS_MAX_LEN = 200;
export const nodeQueueStreams = { events: { maxLen: NODE_EVENTS_MAX_LEN } } as const;

/**
 * Entries kept in the reports queue's event stream (BullMQ's own default; nothing reads it). The
 * collector writes it into the queue's meta and keeps it there (queue-watch.ts restoreMeta).
 */
export const REPORTS_EVENTS_MAX_LEN = 10_000;

/** Recurring jobs each node upserts on its own queue at start (and again after Redis comes back). */
export const SCHEDULED_JOBS = ['mempool.sync', 'chain.sync', 'stats.report', 'peers.refresh'] as const;
export type ScheduledJob = (typeof SCHEDULED_JOBS)[number];

// Their default periods are node options: JOBS_DEFAULTS in node/options.ts (queue names stay free
// of the node's imports, for the gateway).

/** Commands an operator sends to one node; the job's return value is the command's result. */
export const ADMIN_COMMANDS = [
  'admin.syncMempool',
  'admin.syncChain',
  'admin.reportStats',
  'admin.blockPeers',
  'admin.unblockPeers',
  'admin.submitEntry',
  'admin.inviteDevice',
  'admin.revokeDevice',
  'admin.members',
  'fl.startRound',
  'admin.sendMessage',
] as const;
export type AdminCommand = (typeof ADMIN_COMMANDS)[number];

/** Report kinds on the shared reports queue (the job name). */
export const REPORT_KINDS = [
  'node.stats',
  'block.accepted',
  'block.orphaned',
  'model.version',
  'fl.round',
] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];
