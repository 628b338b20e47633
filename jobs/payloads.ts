import { z } from 'zod';
import { HEADER_BYTES } from '../node/chain/block-codec.ts';
import { LIMITS } from '../node/chain/types.ts';
import { DP_MODES } from '../node/fl/dp-mode.ts';
import { CAPABILITIES, ROLES } from '../node/membership/view.ts';
import { LATENCY_WINDOW } from '../node/messaging/delivery-stats.ts';
import { MESSAGING_DEFAULTS } from '../node/messaging/protocols.ts';
import { MAX_WEIGHTS_BASE64 } from './model-weights.ts';
import type { AdminCommand } from './queues.ts';

/**
 * Job payloads and results, validated where they cross Redis: a worker never trusts what it
 * pops, and the gateway never sends what would not parse.
 */
/** Zod issues as one line (`path: message; …`) for error messages. */
export const formatIssues = (issues: readonly z.core.$ZodIssue[]): string =>
  issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');

const hex = (bytes?: number) =>
  z
    .string()
    .regex(bytes ? new RegExp(`^[0-9a-f]{${bytes * 2}}$`) : /^([0-9a-f]{2})*$/, 'lowercase hex expected');
const decimal = z.string().regex(/^\d+$/, 'decimal integer expected');
const peerId = z.string().min(1).max(128);
const isoDate = z.iso.datetime();
/**
 * The latest instant `isoDate` accepts (9999-12-31T23:59:59.999Z): later ones print with a
 * six-digit year (+275760-…) that ISO 8601's basic form, and so the schema, refuses.
 */
const MAX_ISO_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** A time in ms as the `isoDate` results carry it; "never expires" reads as the last instant. */
export const isoOfMs = (ms: number): string => new Date(Math.min(ms, MAX_ISO_MS)).toISOString();

// ── admin commands (node queue) ────────────────────────────────────────────────────────────
export const AdminPayload = {
  'admin.syncMempool': z.object({ peerId: peerId.optional() }).strict(),
  'admin.syncChain': z.object({}).strict(),
  'admin.reportStats': z.object({}).strict(),
  'admin.blockPeers': z.object({ peerIds: z.array(peerId).min(1).max(100) }).strict(),
  'admin.unblockPeers': z.object({ peerIds: z.array(peerId).min(1).max(100) }).strict(),
  /**
   * A direct message sent as the node (issue 14 item 5). The text crosses Redis inside the signed
   * command, so a node takes it only with --allow-operator-messages (command-verifier.ts
   * `disabledCommands`); the node's own messaging bounds it again (maxBodyBytes).
   */
  'admin.sendMessage': z
    .object({
      to: z.string().min(1).max(128),
      text: z.string().max(MESSAGING_DEFAULTS.maxBodyBytes),
    })
    .strict(),
  'admin.submitEntry': z
    .object({
      content: z.string().min(1).max(16_384),
      metadata: z.array(z.object({ key: z.string().min(1).max(64), value: z.string().max(1024) })).max(32),
    })
    .strict(),
  'admin.inviteDevice': z
    .object({
      name: z.string().min(1).max(64),
      role: z.enum(ROLES),
      capabilities: z.array(z.enum(CAPABILITIES)).max(CAPABILITIES.length),
      /** How long the membership lasts. */
      expiresInMs: z
        .number()
        .int()
        .min(60_000)
        .max(10 * 365 * 86_400_000),
      /** How long the invitation can be redeemed (default 7 days, at most the membership). */
      validForMs: z
        .number()
        .int()
        .min(10_000)
        .max(365 * 86_400_000)
        .optional(),
    })
    .strict(),
  'admin.revokeDevice': z.object({ publicKey: hex(32) }).strict(),
  'admin.members': z.object({}).strict(),
  'fl.startRound': z
    .object({
      rounds: z.number().int().min(1).max(1000),
      participants: z.array(peerId).max(100).optional(),
      clipNorm: z.number().positive().optional(),
      noiseMultiplier: z.number().min(0).optional(),
      targetQuantile: z.number().min(0).max(1).optional(),
      /** Record mode: DP-SGD steps per participant and round (node/fl/net/round-runner.ts). */
      localSteps: z.number().int().min(1).max(1000).optional(),
      /** The DP mode of the rounds; the coordinator's own (`--fl-mode`) when absent. */
      mode: z.enum(DP_MODES).optional(),
    })
    .strict(),
} satisfies Record<AdminCommand, z.ZodType>;
export type AdminPayloads = { [K in AdminCommand]: z.infer<(typeof AdminPayload)[K]> };

export const ReconcileResult = z.object({
  peerId: z.string(),
  sent: z.number().int(),
  received: z.number().int(),
  roundTrips: z.number().int(),
  bytes: z.number().int(),
});
export type ReconcileResult = z.infer<typeof ReconcileResult>;

export const ChainSyncResult = z.object({
  state: z.string(),
  height: z.number().int(),
  headHash: z.string(),
  outcome: z.string().nullable(),
});
export type ChainSyncResult = z.infer<typeof ChainSyncResult>;

export const PeersResult = z.object({ peers: z.array(z.string()), blocked: z.array(z.string()) });
export const SubmitEntryResult = z.object({
  id: z.string(),
  accepted: z.boolean(),
  reason: z.string().nullable(),
});
export const StatsReportResult = z.object({ seq: z.number().int() });
export const FlStartResult = z.object({ roundIds: z.array(z.string()) });
export const InviteDeviceResult = z.object({
  invitation: z.string(),
  expiresAt: isoDate,
  memberUntil: isoDate,
});

export const RevokeDeviceResult = SubmitEntryResult;
/** A message the node queued: its ids and first outcome, never its text. */
export const SendMessageResult = z.object({
  id: z.string().max(256),
  to: hex(32),
  toName: z.string().max(64).nullable(),
  seq: z.number().int().min(1),
  status: z.enum(['delivered', 'pending']),
  contentId: hex(32).nullable(),
  error: z.string().max(1024).nullable(),
});
export const MembersResult = z.object({
  mode: z.enum(['roster', 'open']),
  members: z
    .array(
      z.object({
        publicKey: hex(32),
        name: z.string(),
        role: z.enum(ROLES),
        capabilities: z.array(z.enum(CAPABILITIES)),
        admin: z.boolean(),
        issuedAt: isoDate,
        expiresAt: isoDate,
        state: z.enum(['member', 'expired', 'revoked']),
      }),
    )
    .max(10_000),
});

/** What each admin command's job returns. */
export const AdminResult = {
  'admin.syncMempool': ReconcileResult,
  'admin.syncChain': ChainSyncResult,
  'admin.reportStats': StatsReportResult,
  'admin.blockPeers': PeersResult,
  'admin.unblockPeers': PeersResult,
  'admin.submitEntry': SubmitEntryResult,
  'admin.inviteDevice': InviteDeviceResult,
  'admin.revokeDevice': RevokeDeviceResult,
  'admin.members': MembersResult,
  'fl.startRound': FlStartResult,
  'admin.sendMessage': SendMessageResult,
} satisfies Record<AdminCommand, z.ZodType>;
export type AdminResults = { [K in AdminCommand]: z.infer<(typeof AdminResult)[K]> };

// ── reports (shared reports queue) ─────────────────────────────────────────────────────────
/** A block's encoding is at most LIMITS.blockBytes; its parts as hex at most twice that. */
const MAX_BLOCK_HEX = 2 * LIMITS.blockBytes;

/**
 * A main-chain block as one node saw it. The summary fields are for people reading the queue;
 * the collector trusts none of them: it rebuilds the block from `header`, `signature` and the
 * encoded `entries`, checks hash, work, signatures and membership, and computes the total work
 * from the parent it indexed (jobs/collector/block-check.ts).
 */
export const BlockAcceptedReport = z
  .object({
    nodeId: peerId,
    hash: hex(32),
    height: z.number().int().min(0),
    prevHash: hex(32),
    merkleRoot: hex(32),
    timestamp: z.number().int().min(0),
    target: decimal,
    nonce: decimal,
    miner: hex(32),
    signature: hex(64),
    /** The canonical header encoding: sha256 of it is the block hash. */
    header: hex().max(2 * HEADER_BYTES),
    sizeBytes: z.number().int().min(0),
    /** What the reporting node computed; the collector compares it with its own figure. */
    totalWork: decimal.max(80),
    /** Each entry's canonical encoding (signature included), in block order. */
    entries: z
      .array(hex().max(2 * LIMITS.entryBytes))
      .max(LIMITS.entriesPerBlock)
      .refine((es) => es.reduce((n, e) => n + e.length, 0) <= MAX_BLOCK_HEX, 'entries exceed a block'),
  })
  .strict();
export type BlockAcceptedReport = z.infer<typeof BlockAcceptedReport>;

export const BlockOrphanedReport = z.object({
  nodeId: peerId,
  hash: hex(32),
  height: z.number().int().min(0),
  prevHash: hex(32),
  miner: hex(32),
  reason: z.enum(['unknown-parent', 'reorged-out', 'side-chain', 'dropped']),
  /** For 'reorged-out': the depth of the reorg that took the block out of the main chain. */
  reorgDepth: z.number().int().min(1).max(0xffff_ffff).optional(),
  at: isoDate,
});
export type BlockOrphanedReport = z.infer<typeof BlockOrphanedReport>;

/** Largest count a messaging figure may carry: the index keeps them as 32-bit integers (PostgreSQL INTEGER). */
export const REPORT_COUNT_MAX = 2 ** 31 - 1;
/** Latencies above this (30 days, past any mailbox's time to live) are reported as this. */
export const REPORT_LATENCY_MAX_MS = 30 * 24 * 3600 * 1000;
const count = z.number().int().min(0).max(REPORT_COUNT_MAX);
const latencyMs = z.number().min(0).max(REPORT_LATENCY_MAX_MS);
const byteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * Messaging metadata in a stats report (node/messaging/delivery-stats.ts): counts, latency and
 * mailbox use. Strict: no other field (no text, no correspondent) may ride along.
 */
export const MessagingStatsReport = z
  .object({
    sent: count,
    delivered: count,
    pending: count,
    latency: z
      .object({ p50Ms: latencyMs, p99Ms: latencyMs, samples: z.number().int().min(1).max(LATENCY_WINDOW) })
      .strict()
      .refine((l) => l.p50Ms <= l.p99Ms, 'p50Ms must not exceed p99Ms')
      .optional(),
    mailbox: z.object({ items: count, bytes: byteCount, capacityBytes: byteCount }).strict().optional(),
  })
  .strict();

export const NodeStatsReport = z.object({
  nodeId: peerId,
  /** Start time (ms) of the node process: a restarted node counts its reports anew. */
  boot: z.number().int().min(0),
  /** Report counter within one boot, from 1; `<nodeId>:<boot>:<seq>` identifies the snapshot. */
  seq: z.number().int().min(1),
  at: isoDate,
  role: z.string().max(32),
  capabilities: z.array(z.string().max(32)).max(16),
  addrs: z.array(z.string().max(512)).max(64),
  height: z.number().int().min(0),
  headHash: hex(32),
  totalWork: decimal,
  target: decimal,
  peers: z.array(peerId).max(1000),
  /** Open connections by kind (tcp, webrtc-direct, relayed, webrtc-via-relay, other); absent in older reports. */
  connectionKinds: z.record(z.string().max(32), z.number().int().min(0)).optional(),
  mempoolSize: z.number().int().min(0),
  hashRate: z.number().min(0),
  mining: z.boolean(),
  chainId: hex(32),
  genesisHash: hex(32),
  /** The network configuration as JSON (bigints as decimal strings). */
  networkConfig: z.string().max(16 * 1024),
  /** Federated learning: DP mode and the privacy ledger (absent from older nodes, or before it loads). */
  fl: z
    .object({
      mode: z.enum(['record', 'update']),
      privacy: z
        .object({
          epsilon: z.number().min(0),
          budget: z.number().min(0),
          delta: z.number().gt(0).lt(1),
          rounds: z.number().int().min(0),
        })
        .optional(),
    })
    .optional(),
  /** Messaging figures (absent from older nodes and where messaging is not running). */
  messaging: MessagingStatsReport.optional(),
});
export type NodeStatsReport = z.infer<typeof NodeStatsReport>;

export const ModelVersionReport = z.object({
  nodeId: peerId,
  hash: hex(32),
  parentHash: hex(32).nullable(),
  round: z.number().int().min(0),
  metrics: z.record(z.string().max(64), z.number()),
  epsilon: z.number().min(0),
  participants: z.number().int().min(0),
  blockHash: hex(32).nullable(),
  at: isoDate,
  /**
   * The version's canonical encoding in base64 (jobs/model-weights.ts), when the node holds it:
   * the collector checks it against `hash` and archives it. Absent in older reports.
   */
  weights: z.base64().max(MAX_WEIGHTS_BASE64).nullable().optional(),
});
export type ModelVersionReport = z.infer<typeof ModelVersionReport>;

export const FlRoundReport = z.object({
  nodeId: peerId,
  id: z.string().min(1).max(128),
  round: z.number().int().min(0),
  status: z.enum(['running', 'completed', 'failed']),
  participants: z.array(peerId).max(1000),
  leftOut: z.array(peerId).max(1000),
  dp: z.record(z.string().max(64), z.number()),
  modelHash: hex(32).nullable(),
  error: z.string().max(2048).nullable(),
  startedAt: isoDate,
  finishedAt: isoDate.nullable(),
});
export type FlRoundReport = z.infer<typeof FlRoundReport>;

export const ReportPayload = {
  'node.stats': NodeStatsReport,
  'block.accepted': BlockAcceptedReport,
  'block.orphaned': BlockOrphanedReport,
  'model.version': ModelVersionReport,
  'fl.round': FlRoundReport,
} as const;
export type ReportPayloads = { [K in keyof typeof ReportPayload]: z.infer<(typeof ReportPayload)[K]> };
