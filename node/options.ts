/**
 * Every node option in one place, grouped by module (after Lodestar's `node/options.ts`): each
 * default is written once here, modules import theirs from here, and the CLI's parser and
 * `--help` are generated from the table below (node/option-spec.ts). `toNodeOptions` turns the
 * parsed command line into the typed options of `CairnNode.start`.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ScheduledJob } from '../jobs/queues.ts';
import { withRedisPassword } from '../jobs/redis-url.ts';
import { DP_MODES, type DpMode } from './fl/dp-mode.ts';
import type { MaskedCorruption as Misbehaviour } from './fl/local-round.ts';
import type { SliceOptions } from './fl/net/data.ts';
import { CAPABILITIES, type Capability, ROLES, type Role } from './identity/identity.ts';
import {
  choiceOpt,
  intOpt,
  listOpt,
  numberOpt,
  OptionError,
  parseOptions,
  renderHelp,
  repeatOpt,
  stringOpt,
  switchOpt,
  type ValuesOf,
} from './option-spec.ts';
import { iceServerProblem } from './p2p/ice-servers.ts';
import { cidrProblem } from './p2p/ip-ranges.ts';

/**
 * Loopback: where the tests and the demo run every node (127.0.0.1). It is exempt from the per-IP
 * connection cap, address bans and gossipsub's IP-colocation penalty: otherwise a cluster of more
 * than eight nodes on one machine could not connect, one banned test node would ban them all, and
 * past ten nodes gossipsub would prune every peer from the mesh. A process on the same machine
 * needs no Sybil trick to hurt the node anyway. The inbound slot limit still applies to it.
 */
export const LOOPBACK_RANGES: readonly string[] = Object.freeze(['127.0.0.0/8', '::1/128']);

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const NODE_DEFAULTS = Object.freeze({
  dataDir: '.data/node',
  role: 'submind' as Role,
  logLevel: 'info' as LogLevel,
});

/** libp2p host and connection limits (node/p2p/host.ts, node/p2p/connection-limits.ts). */
export const P2P_DEFAULTS = Object.freeze({
  listen: Object.freeze(['/ip4/127.0.0.1/tcp/0']) as readonly string[],
  /** Connections in both directions; libp2p prunes above it. */
  maxConnections: 64,
  /** Slots inbound connections can never take, so strangers cannot eclipse the node's own dials. */
  reservedOutbound: 16,
  /** go-libp2p's resource manager allows 8 connections per IPv4 address by default. */
  maxInboundPerIp: 8,
  /** Addresses exempt from the per-IP cap and from address bans (CIDR). */
  ipLimitExempt: LOOPBACK_RANGES,
  /**
   * Inbound connections still in their upgrade (noise, yamux) at once, node-wide, counted by
   * ConnectionLimits, which evicts the oldest past pendingEvictableAfterMs from the budget holding
   * most when it is full. libp2p's default of 10 was held by idle sockets from two LAN addresses
   * (an attack review's slowloris); 32 with at most 4 per address takes eight addresses.
   */
  maxPendingTotal: 32,
  /**
   * libp2p's own cap on upgrades in flight, checked before any gater hook: it refuses everyone
   * past it, with no eviction (8 hosts x 4 silent sockets held all 32, attack review of #13). Set
   * at twice maxPendingTotal so that ours is always reached first; libp2p's count trails ours
   * only by connections our gater refused or evicted whose upgrade has not yet unwound.
   */
  maxIncomingPendingConnections: 64,
  /** Upgrades in flight from one IP address (its /64 for IPv6; loopback is one host). */
  maxPendingPerIp: 4,
  /**
   * Upgrades in flight from exempt ranges (loopback by default) together: half of
   * maxPendingTotal. A local stranger binding many 127.x addresses held all 32
   * (attack review #13); exempt peers still need more than 4, since a loopback cluster's nodes
   * all dial each other at once.
   */
  maxPendingExempt: 16,
  /** How long an inbound connection may take to finish noise and yamux (libp2p's default: 10 s). */
  inboundUpgradeTimeoutMs: 3_000,
  /**
   * A pending upgrade older than this gives its place up to a new connection when its budget is
   * full: silent sockets held all 16 loopback places against every honest dial (ATK-13), while an
   * honest upgrade finishes in tens of ms, well before anyone may take its place.
   */
  pendingEvictableAfterMs: 500,
  /**
   * The same for a pending upgrade that has sent no byte: a dialer sends its multistream-select
   * header with its first packet, so a socket silent this long is no handshake in progress. A
   * stranger replacing silent sockets just past 500 ms kept all 16 loopback places young.
   */
  silentEvictableAfterMs: 200,
  /** New inbound connections per second from one host before libp2p refuses more (libp2p's default). */
  inboundConnectionThreshold: 5,
  /** Addresses of one peer tried per dial (libp2p's default); a peer record can list many. */
  maxPeerAddrsToDial: 25,
  dialTimeoutMs: 5_000,
  reconnectRetries: 10,
  reconnectRetryIntervalMs: 1_000,
  reconnectBackoffFactor: 2,
});

/**
 * Member relays and reach beyond the LAN (node/p2p/relay.ts, node/p2p/ice-servers.ts). A relay
 * serves roster members only, so its limits are sized for them, not for strangers: libp2p's
 * own defaults (15 reservations; 2 min and 128 KiB per relayed connection) suit public relays
 * and would cut gossip and sync off after a few blocks. With no per-connection limit a relayed
 * connection is not "limited" in libp2p's sense, so every Cairn protocol runs over it; a
 * duration or data limit makes it limited, and then only WebRTC signalling runs over it.
 */
export interface RelayLimits {
  readonly maxReservations: number;
  readonly reservationTtlMs: number;
  readonly durationLimitMs: number;
  readonly dataLimitBytes: number;
  readonly maxHopStreams: number;
  readonly watchdogMs: number;
  readonly reserveGraceMs: number;
}

export const RELAY_DEFAULTS: RelayLimits = Object.freeze({
  /** Members holding a reservation at once (each is one slot and one keep-alive connection). */
  maxReservations: 128,
  /** Reservation lifetime; clients refresh 5 min before it ends (libp2p's default, 2 h). */
  reservationTtlMs: 2 * 60 * 60_000,
  /** Per relayed connection: 0 = no limit (members only). */
  durationLimitMs: 0,
  /** Per relayed connection, bytes both ways: 0 = no limit (members only). */
  dataLimitBytes: 0,
  /** Simultaneous hop streams (reserve and connect requests) per relay (libp2p: 300 stop streams). */
  maxHopStreams: 64,
  /** How often a client checks its configured relays' reservations (the watchdog, js-libp2p #3601). */
  watchdogMs: 5_000,
  /** A relay connected this long without a reservation is dropped and dialled again. */
  reserveGraceMs: 15_000,
});

/** Peer reputation, heartbeat and bans (node/p2p/peer-scores.ts, address-bans.ts, peer-manager.ts). */
export const PEERS_DEFAULTS = Object.freeze({
  heartbeatMs: 5_000,
  statusRefreshMs: 10_000,
  scoreHalfLifeMs: 10 * 60_000,
  disconnectBelow: -20,
  banBelow: -50,
  banMs: 30 * 60_000,
  /** Peers whose score is remembered; a stranger can mint peer ids without end. */
  maxScoredPeers: 4_096,
  /**
   * Peers whose ban is remembered, apart from the scores; none is forgotten before its end. Sized
   * for banMs at the fastest one host can earn bans: libp2p takes 5 inbound connections a second
   * from one host (inboundConnectionThreshold), 9,000 in 30 min, and a second ban at a
   * non-exempt address bans the address (~200 B a ban: ~3 MB when full).
   */
  maxBannedPeers: 16_384,
  /** Bans of peers seen at one address in quick succession (decaying) that get the address refused. */
  addressBanThreshold: 2,
  addressBanHalfLifeMs: 30 * 60_000,
  maxBannedAddresses: 1_024,
  /** Admission refusals from one address (decaying) at which strangers from it are refused (address-refusals.ts). */
  admissionRefusalsBanAt: 20,
  admissionRefusalsHalfLifeMs: 60_000,
  admissionRefusalsBanMs: 5 * 60_000,
  admissionRefusalsMaxAddresses: 4_096,
  /** Keys remembered as having passed the handshake, which no address ban refuses. */
  admissionRefusalsMaxAdmittedKeys: 4_096,
});

/** Gossipsub (node/p2p/host.ts, node/p2p/gossip-score.ts). */
export const GOSSIP_DEFAULTS = Object.freeze({
  heartbeatMs: 700,
  /** Gossipsub's P6: weight of the squared surplus of peers sharing one IP (gossipsub's default). */
  ipColocationWeight: -5,
  /** Peers sharing one IP before P6 applies (gossipsub's default). */
  ipColocationThreshold: 10,
  /** IP ranges P6 never applies to (CIDR); relays' addresses are added while relayed peers use them. */
  ipColocationWhitelist: LOOPBACK_RANGES,
  maxEntryBytes: 64 * 1024,
});

/** Range sync and header pre-sync (node/sync/range-downloader.ts, header-presync.ts). */
export const SYNC_DEFAULTS = Object.freeze({
  /**
   * The progress floor (node/sync/progress-floor.ts) of one batch download and of one pre-sync:
   * 10 s of grace, then at least 128 KiB/s (1 Mbit/s, a poor Wi-Fi link). A batch of 128
   * blocks of a few KB is then allowed ~13 s, of 8 MiB ~74 s; 512 headers (93 KB) ~0.7 s each.
   * A peer that falls below it is penalised (high tolerance: slow is not malicious) and given
   * nothing more in that sync; a slow target ends the sync so another peer can be followed.
   */
  progress: Object.freeze({ graceMs: 10_000, minBytesPerSec: 128 * 1024 }),
  /**
   * Headers one pre-sync of a deep fork reads at most (attack review #11: 200,000 took ~54 s and
   * ~8 CPU s on a loaded machine). A claim it cannot prove within them is disproved (a doubling
   * back-off); lower it on small devices, or to test that.
   */
  maxPresyncHeaders: 200_000,
  /**
   * After a sync slot went to a pre-sync that failed, the next goes to a claimant whose chain
   * connects near our tip, if any: up to this many claimants not yet known to claim a deep fork
   * are asked for their fork point at once (one small answer each; as many as the node's
   * connections, `--max-connections`' default, so no claimant is left out). Attack review #11:
   * 12 fresh ids claiming deep forks took every slot, and a node 60 blocks behind its honest
   * peer was still behind 20 s later.
   */
  connectingProbes: 64,
  /**
   * Pre-syncs of deep forks started per 10 minutes, for the whole node and per address group
   * (an IPv4 address, an IPv6 /64, all of loopback: the address bans' keying). Fresh ids cost a
   * key generation each, and each capped pre-sync costs ~54 s of the sync slot and ~8 CPU s at
   * the default cap; beyond these a deep claim waits (no penalty) and the slot goes to others.
   * The node-wide one bounds what all strangers together take (4, then one every 2.5 min: at
   * most ~36% of the time in capped pre-syncs); the group one leaves the others among them a turn.
   */
  presyncs: Object.freeze({
    node: Object.freeze({ limit: 4, periodMs: 600_000 }),
    group: Object.freeze({ limit: 2, periodMs: 600_000 }),
  }),
});

/** Admission while catching up (node/membership/catch-up.ts, node/p2p/admission-gate.ts). */
export const MEMBERSHIP_DEFAULTS = Object.freeze({
  /**
   * How far ahead of our clock a certificate's issued-at may be and still count as a clock
   * difference, not a certificate for later: such a peer may serve a node that is behind.
   */
  clockSkewMs: 5 * 60_000,
  /** A tip older than this means we are behind (a new device knows only genesis). */
  behindAfterMs: 10 * 60_000,
  /** Peers admitted read-only at once while behind (each holds a connection slot). */
  maxReadOnlyPeers: 8,
  /**
   * How long a read-only peer stays without serving us a batch that connected to our chain; each
   * such batch starts the time again. A stranger holding a slot and serving nothing loses it.
   */
  readOnlyIdleMs: 2 * 60_000,
  /** How long a peer dropped for idling read-only is not taken read-only again. */
  readOnlyCooldownMs: 10 * 60_000,
});

export const MEMPOOL_DEFAULTS = Object.freeze({
  /** Reconciliation with a random peer; the job scheduler's `mempool.sync` runs at the same period. */
  reconcileIntervalMs: 15_000,
});

export const API_DEFAULTS = Object.freeze({
  /** Loopback: the API signs entries and blocks peers, so nothing off this machine reaches it by default. */
  httpHost: '127.0.0.1',
  httpPort: 0,
  /** Host names besides localhost, 127.0.0.1, [::1] and the listen host (the DNS-rebinding allow-list). */
  httpAllowHosts: Object.freeze([]) as readonly string[],
});

export const JOBS_DEFAULTS = Object.freeze({
  scheduleMs: Object.freeze({
    'mempool.sync': MEMPOOL_DEFAULTS.reconcileIntervalMs,
    'chain.sync': 30_000,
    'stats.report': 60_000,
    'peers.refresh': 60_000,
  }) as Readonly<Record<ScheduledJob, number>>,
  /** Shortest scheduler period accepted. */
  minScheduleMs: 100,
});

export const FL_DEFAULTS = Object.freeze({
  split: 'iid' as SliceOptions['mode'],
  /** Seed of the deterministic corpus split; must be the same on every node. */
  splitSeed: 42,
  /** 0: rounds only on command. */
  everyMs: 0,
  /** How long a coordinated round waits for masked updates. */
  deadlineMs: 60_000,
  minDeadlineMs: 100,
  /**
   * Fewest distinct members a round's roster may name: a participant refuses a keys request
   * below it, and a coordinator starts no round with fewer acceptors. With 3 the threshold is at
   * least 2 (t > n/2), so the sum a coordinator unmasks always covers two updates; a roster of
   * one (threshold 1) handed the coordinator a participant's own update (issue 16, finding 2).
   */
  minRosterMembers: 3,
  /**
   * Roster members besides the coordinator a participant assumes may collude with it (a second
   * identity of the coordinator's: free on an open network). It reveals its unmask shares only
   * once more than (m + k)/2 of the m members other than the coordinator confirmed the same
   * survivor set (survivor-set.ts), so no two sets can both be confirmed. 1 costs a round of 5
   * with an outside coordinator one of its two dropouts and a round of 3 its one.
   */
  collusionTolerance: 1,
  /**
   * Record-level DP-SGD on each participant (node/fl/dp-sgd.ts): a plan of 20 rounds × 5 local
   * steps at Poisson rate q = 0.3 spends the default budget (ε = 3) in 100 steps, which the
   * accountant meets with z ≈ 4.65. Chosen on the corpus' IID 5-node split (bench:fl) from a
   * grid over q, epochs, C, lr and biasScale. C = 0.1 clips every gradient at first and 7–10% of
   * them in the last round (by then most examples have |p − y| < 0.1); lr = 240 looks large only
   * because the mean gradient is then at most C: a step's signal and its noise both scale with
   * lr·C = 24, and C decides how many gradients are cut (at equal lr·C, C = 0.1 beat 0.3 by
   * 0.3–0.5 points and 1 by about 1). biasScale 0.25 gives the word weights 94% of a clipped
   * gradient's squared norm instead of 50% (biasScale 1): +0.7 points. 12 runs of bench:fl's
   * record-level part (OS CSPRNG): 0.963–0.971 test accuracy, mean 0.967.
   */
  dpSgd: Object.freeze({
    samplingRate: 0.3,
    clipNorm: 0.1,
    learningRate: 240,
    biasScale: 0.25,
    l2: 0,
    stepsPerRound: 5,
    /** Steps the default budget is planned for; z follows from it (noiseMultiplierFor). */
    plannedSteps: 100,
  }),
  /**
   * DP mode of the rounds a node coordinates and takes part in (node/fl/net/wire.ts): `record`
   * (DP-SGD on every participant, each charged to its own ledger) or `update` (whole updates
   * clipped and noised: protects an update, not a record; ε ≈ 355 over 20 rounds in bench:fl).
   */
  mode: 'record' as DpMode,
  /**
   * Record mode: the public L2 bound a participant clips its DP-SGD delta to before the secure
   * sum (post-processing: no privacy cost), which the quantiser and the sum's range check use.
   * The default plan's deltas measure 109–112 on the 5-node IID split (noise on 16 385
   * coordinates dominates them); 250 leaves room for a smaller slice's larger noise.
   */
  recordUpdateClipNorm: 250,
  /** The per-node privacy ledger (node/fl/privacy-budget.ts). */
  privacy: Object.freeze({
    /** ε a node spends over everything it ever contributes, at `delta`, before it declines. */
    budgetEpsilon: 3,
    delta: 1e-5,
    /**
     * Floors on what a coordinator may ask for; a node refuses below them, with the reason. The
     * budget alone would catch an expensive round, but below z = 1 a single step without
     * subsampling costs more than the whole default budget, so such a request is a mistake or
     * an attempt to spend the budget in one go.
     */
    minNoiseMultiplier: 1,
    /**
     * Not a privacy bound (the noise scales with C, ε does not depend on it) but a sanity one:
     * the default DP-SGD plan uses 0.1; a coordinator asking for 10× less is misconfigured or probing, and a
     * node would rather decline than train at a scale it was never tested at.
     */
    minClipNorm: 0.01,
    /**
     * Floor on the Poisson rate q (the default plan's is 0.3). Below it a round costs next to
     * nothing whatever it asks (q = 1e-9, z = 1, 1,000 steps: ε 0.17, 4e-15 of the budget) while
     * every step still passes over the slice and draws 16,385 Gaussians: CPU for free (issue 16,
     * finding 6). At 0.01 a step of a 1,000-row slice sees ~10 examples, already mostly noise.
     */
    minSamplingRate: 0.01,
    /** Local steps one round may ask for: bounds the CPU a single announcement can buy. */
    maxStepsPerRound: 1_000,
    /**
     * Local steps the default budget (budgetEpsilon above) buys at most: a round of s steps must cost
     * at least s / 10,000 of it (budget-share.ts), so above the floors the CPU a coordinator gets
     * is still bounded by the budget it spends (q = 0.01, z = 4.65, 1,000 steps pays 1.06 % of
     * the 10 % it owes and is declined; z has no ceiling, and a huge z makes any round nearly
     * free). 100× the default plan's 100 steps: its rounds of 5 pay 5 %, 100× what they owe, and
     * a plan of 10× more, cheaper steps still fits; a budget can no longer buy the 10⁶ steps at
     * ε 0.17 that 1,000 rounds of q = 1e-9 did.
     */
    maxStepsPerBudget: 10_000,
    /**
     * ε one round may cost on its own. The default plan's rounds cost 0.648 each (20 × 5 steps
     * at ε 3), the e2e plan's 0.907 (10 × 10); 1.3 is 2× the default's, while q = 1, z = 1.5 and
     * one step (ε 2.985) would spend a fresh ledger in one round (issue 16, finding 7).
     */
    maxEpsilonPerRound: 1.3,
    /**
     * Caps on the budget rounds may hold while their `fl-commit` has not arrived
     * (node/fl/uncommitted-spend.ts, issue 16, finding 4: one saboteur failing every round at the
     * range check spent 20 rounds' ε, the whole budget, for nothing). A default round is 5 % of
     * the budget: a coordinator may have 3 rounds without a commit (so an honest one survives a
     * failure or two and its round in flight), all coordinators together 5; with one saboteur
     * in every round an honest node stops at ε 1.11 (3 rounds) of 3, at 1.44 with several
     * coordinators. A commit clears its own round and forgives half its cost of older failures,
     * so while rounds do commit, failed ones take at most (0.25 + 0.5) / 1.5 = half the budget;
     * the rest decays with a 3-day half-life, so a saboteur drains at most 0.25 · ln 2 / 3 ≈
     * 5.8 % of the budget a day (the budget lasts two weeks, time for an operator to see
     * cairn_fl_declined_total{reason="uncommitted-…"} and remove it), and a node that stopped
     * takes a round again after 0.97 days (in all) or 1.75 (per coordinator).
     */
    uncommittedShareInAll: 0.25,
    uncommittedSharePerCoordinator: 0.15,
    uncommittedHalfLifeMs: 3 * 24 * 3_600_000,
    uncommittedRecoveryPerCommit: 0.5,
    /** Per-round entries kept in the ledger file (totals always cover every round). */
    historyLimit: 1_000,
  }),
  /**
   * How long a round waits for the previous round's version to be mined (a model entry must
   * extend the chain's head): a few block times at the default 10 s, or the round fails.
   */
  headWaitMs: 60_000,
  /**
   * Rounds in a row that fail to get the head's bytes before a coordinator trains from the newest
   * version behind it that it has (or the initial model): the head may name bytes nobody serves
   * (issue 16, Finding 3b). 2: one failure may be a version just mined whose bytes are on their way.
   */
  headFetchAttempts: 2,
  /** How many versions behind an unavailable head a coordinator looks for bytes on its disk. */
  headFallbackDepth: 8,
  /**
   * Fetching a model version by hash (node/fl/net/model-sync.ts). Every connected peer may be
   * asked, those that claimed the version first, then those that served one before, then the
   * rest shuffled: a count (it was 5) let as many peers answering `unavailable` hide a version
   * the next one served (ATK-16). Bounded by time instead: `budgetMs` in all (a round's
   * deadline; an announcement's fetch has what its request leaves, FL_ANNOUNCE), at most
   * `inFlight` requests at once, the next one sent when one fails or `hedgeMs` passes without
   * an answer (most peers answer `unavailable` at once; a silent one costs hedgeMs, not its
   * 15 s timeout).
   */
  modelFetch: Object.freeze({ budgetMs: 60_000, announceBudgetMs: 12_000, hedgeMs: 2_000, inFlight: 3 }),
  /**
   * How far (nats) a round's loss on the validation set (node/fl/net/data.ts, disjoint from the
   * test set and every slice) may exceed the head's before the version is refused
   * (`loss-regressed`). Re-measured on the DP-SGD path at the default plan (runDpSgdRound and
   * bench:fl's secure-aggregation rounds, 20 rounds to ε = 3): over 6 runs each of 5 IID nodes at
   * 5, 10 and 20 steps a round, 3 runs each of 3 and 10 IID nodes and of 5 label-skewed nodes, and
   * 2 of 3 label-skewed nodes, the largest rise between consecutive rounds was 0.0078 (10 nodes);
   * 5 IID nodes 0.0049; bench:fl through secure aggregation 0.0026 (5 nodes) and 0.0088 (10). The
   * loss falls by 0.3-0.5 in round 1 and moves by < 0.01 either way once near its optimum. A
   * refused round still costs its participants ε, so the tolerance is ~3.5× the largest normal
   * move rather than tight against it; the update-level measurement (z = 1:
   * rises of 0.13-0.14 early on) does not apply to record-level rounds.
   */
  lossTolerance: 0.03,
});

export const OPTION_GROUPS = {
  node: 'Node',
  p2p: 'Network (libp2p)',
  peers: 'Peers',
  gossip: 'Gossip',
  mempool: 'Mempool',
  api: 'HTTP API',
  jobs: 'Jobs (BullMQ on Redis)',
  fl: 'Federated learning',
} as const;
type Group = keyof typeof OPTION_GROUPS;

const multiaddrProblem = (v: string) => (v.startsWith('/') ? undefined : 'takes multiaddrs like /ip4/…');
/** The last /p2p/<id> of a multiaddr, by text (options.ts stays free of libp2p imports). */
const bootstrapPeerIdOf = (v: string) => /\/p2p\/([^/]+)\/?$/.exec(v)?.[1];

const SCHEDULED = Object.keys(JOBS_DEFAULTS.scheduleMs) as ScheduledJob[];

/** The node's command line: flag, type, default, description, validation. */
export const NODE_OPTIONS = {
  dataDir: stringOpt<Group, string>({
    flag: 'data-dir',
    group: 'node',
    arg: 'DIR',
    description: 'where identity, chain store and peer data live',
    default: NODE_DEFAULTS.dataDir,
    defaultText: `./${NODE_DEFAULTS.dataDir}`,
  }),
  mine: switchOpt<Group>({
    flag: 'mine',
    group: 'node',
    description: 'mine blocks (adds the "mine" capability)',
  }),
  role: choiceOpt<Group, Role, Role>({
    flag: 'role',
    group: 'node',
    arg: 'ROLE',
    description: `${ROLES.join(' | ')} (open networks; on a roster network the certificate decides)`,
    values: ROLES,
    default: NODE_DEFAULTS.role,
  }),
  capabilities: listOpt<Group, Capability>({
    flag: 'capabilities',
    group: 'node',
    description: `comma-separated: ${CAPABILITIES.join(', ')} (open networks; likewise)`,
    default: [],
    check: (c) => ((CAPABILITIES as readonly string[]).includes(c) ? undefined : 'unknown capability'),
  }),
  networkConfig: stringOpt<Group, undefined>({
    flag: 'network-config',
    group: 'node',
    arg: 'FILE',
    description:
      'JSON overrides of the network config (block time, targets, membership, admins, members, …); without it a new data dir creates <data-dir>/network.json: a roster network with this node as its admin',
    default: undefined,
  }),
  logLevel: choiceOpt<Group, LogLevel, LogLevel>({
    flag: 'log-level',
    group: 'node',
    arg: 'LEVEL',
    description: `${LOG_LEVELS.join(' | ')}`,
    values: LOG_LEVELS,
    default: NODE_DEFAULTS.logLevel,
  }),
  listen: repeatOpt<Group>({
    flag: 'listen',
    group: 'p2p',
    arg: 'MULTIADDR',
    description: 'address to listen on; repeatable (WebRTC: /ip4/127.0.0.1/udp/0/webrtc-direct)',
    default: P2P_DEFAULTS.listen,
    check: multiaddrProblem,
  }),
  bootstrap: repeatOpt<Group>({
    flag: 'bootstrap',
    group: 'p2p',
    arg: 'MULTIADDR',
    description: 'a peer to connect to at start (with /p2p/<id>); repeatable',
    default: [],
    check: multiaddrProblem,
  }),
  mdns: switchOpt<Group>({
    flag: 'mdns',
    group: 'p2p',
    description: 'discover peers by multicast DNS on the LAN (off by default)',
  }),
  iceServers: repeatOpt<Group>({
    flag: 'ice-server',
    group: 'p2p',
    arg: 'URL|JSON',
    description:
      'a STUN/TURN server for WebRTC: a URL (stun:HOST:PORT) or JSON {"urls","username","credential"} for TURN; repeatable',
    default: [],
    defaultText: 'none',
    check: iceServerProblem,
  }),
  relays: repeatOpt<Group>({
    flag: 'relay',
    group: 'p2p',
    arg: 'MULTIADDR',
    description:
      'a member relay to keep a reservation on (with /p2p/<id>); the node then listens on /p2p-circuit and /webrtc; repeatable',
    default: [],
    check: (v) => multiaddrProblem(v) ?? (bootstrapPeerIdOf(v) ? undefined : 'needs /p2p/<peer id>'),
  }),
  announce: repeatOpt<Group>({
    flag: 'announce',
    group: 'p2p',
    arg: 'MULTIADDR',
    description:
      'an address peers can reach this node at (a public IP or port forward), announced besides the listen ones; repeatable',
    default: [],
    check: multiaddrProblem,
  }),
  relayMaxReservations: intOpt<Group, number>({
    flag: 'relay-max-reservations',
    group: 'p2p',
    description: 'with the "relay" capability: members holding a reservation at once',
    default: RELAY_DEFAULTS.maxReservations,
    min: 1,
    max: 10_000,
  }),
  relayDurationLimitMs: intOpt<Group, number>({
    flag: 'relay-duration-limit-ms',
    group: 'p2p',
    arg: 'MS',
    description:
      'with "relay": lifetime of one relayed connection (0 = none; a limit leaves only WebRTC signalling on it)',
    default: RELAY_DEFAULTS.durationLimitMs,
    min: 0,
  }),
  relayDataLimitBytes: intOpt<Group, number>({
    flag: 'relay-data-limit-bytes',
    group: 'p2p',
    arg: 'BYTES',
    description: 'with "relay": bytes one relayed connection may carry (0 = none; likewise)',
    default: RELAY_DEFAULTS.dataLimitBytes,
    min: 0,
  }),
  maxConnections: intOpt<Group, number>({
    flag: 'max-connections',
    group: 'p2p',
    description: 'connections in both directions',
    default: P2P_DEFAULTS.maxConnections,
    min: 2,
    max: 10_000,
  }),
  reservedOutbound: intOpt<Group, number>({
    flag: 'reserved-outbound',
    group: 'p2p',
    description: 'connection slots inbound connections can never take (eclipse defence)',
    default: P2P_DEFAULTS.reservedOutbound,
    min: 0,
    max: 10_000,
  }),
  maxInboundPerIp: intOpt<Group, number>({
    flag: 'max-inbound-per-ip',
    group: 'p2p',
    description: 'inbound connections from one IP address (Sybil defence)',
    default: P2P_DEFAULTS.maxInboundPerIp,
    min: 1,
    max: 10_000,
  }),
  ipLimitExempt: listOpt<Group>({
    flag: 'ip-limit-exempt',
    group: 'p2p',
    arg: 'CIDRS',
    description: 'IP ranges exempt from the per-IP cap and address bans; "" for none',
    default: P2P_DEFAULTS.ipLimitExempt,
    check: cidrProblem,
  }),
  banMs: intOpt<Group, number>({
    flag: 'ban-ms',
    group: 'peers',
    arg: 'MS',
    description: 'how long a peer whose score fell below the ban threshold is refused',
    default: PEERS_DEFAULTS.banMs,
    min: 1_000,
  }),
  addressBanThreshold: intOpt<Group, number>({
    flag: 'address-ban-threshold',
    group: 'peers',
    description:
      'banned peers seen at one IP in quick succession (the count halves every half-life) before the IP itself is refused',
    default: PEERS_DEFAULTS.addressBanThreshold,
    min: 1,
  }),
  addressBanHalfLifeMs: intOpt<Group, number>({
    flag: 'address-ban-half-life-ms',
    group: 'peers',
    arg: 'MS',
    description: "half-life of an address's ban count",
    default: PEERS_DEFAULTS.addressBanHalfLifeMs,
    min: 1_000,
  }),
  maxPresyncHeaders: intOpt<Group, number>({
    flag: 'max-presync-headers',
    group: 'peers',
    description: 'headers one pre-sync of a deep fork reads before the claim is disproved',
    default: SYNC_DEFAULTS.maxPresyncHeaders,
    min: 100,
  }),
  maxScoredPeers: intOpt<Group, number>({
    flag: 'max-scored-peers',
    group: 'peers',
    description: 'peers whose score is remembered; idle ones are pruned first, active bans never',
    default: PEERS_DEFAULTS.maxScoredPeers,
    min: 16,
  }),
  maxBannedPeers: intOpt<Group, number>({
    flag: 'max-banned-peers',
    group: 'peers',
    description:
      'peers whose ban is remembered; none is forgotten before its end, past it bans go to addresses',
    default: PEERS_DEFAULTS.maxBannedPeers,
    min: 16,
  }),
  ipColocationThreshold: intOpt<Group, number>({
    flag: 'gossip-ip-colocation-threshold',
    group: 'gossip',
    description: 'peers sharing one IP before gossipsub penalises them all',
    default: GOSSIP_DEFAULTS.ipColocationThreshold,
    min: 1,
  }),
  ipColocationWeight: numberOpt<Group>({
    flag: 'gossip-ip-colocation-weight',
    group: 'gossip',
    description: 'gossipsub score per squared peer beyond the threshold (0 = off)',
    default: GOSSIP_DEFAULTS.ipColocationWeight,
    min: -1_000,
    max: 0,
  }),
  ipColocationWhitelist: listOpt<Group>({
    flag: 'gossip-ip-whitelist',
    group: 'gossip',
    arg: 'CIDRS',
    description: 'IP ranges the colocation penalty never applies to (relays in use are added)',
    default: GOSSIP_DEFAULTS.ipColocationWhitelist,
    check: cidrProblem,
  }),
  reconcileMs: intOpt<Group, number>({
    flag: 'reconcile-ms',
    group: 'mempool',
    arg: 'MS',
    description: 'mempool reconciliation period (0 = off)',
    default: MEMPOOL_DEFAULTS.reconcileIntervalMs,
    min: 0,
  }),
  httpHost: stringOpt<Group, string>({
    flag: 'http-host',
    group: 'api',
    arg: 'HOST',
    description: 'status/metrics endpoint host',
    default: API_DEFAULTS.httpHost,
  }),
  httpPort: intOpt<Group, number>({
    flag: 'http-port',
    group: 'api',
    arg: 'PORT',
    description: 'status/metrics endpoint port (0 = any free port)',
    default: API_DEFAULTS.httpPort,
    min: 0,
    max: 65_535,
  }),
  httpAllowHosts: listOpt<Group>({
    flag: 'http-allow-host',
    group: 'api',
    arg: 'NAMES',
    description: 'more host names the API answers to (Host header; loopback names always)',
    default: API_DEFAULTS.httpAllowHosts,
    check: (h) => (/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)$/.test(h) ? undefined : 'not a host name'),
  }),
  redis: stringOpt<Group, undefined>({
    flag: 'redis',
    group: 'jobs',
    arg: 'URL',
    description:
      "run the node's jobs (schedulers, admin commands, reports to the collector) on this Redis, e.g. redis://127.0.0.1:6379; the node never needs Redis to stay in consensus",
    default: undefined,
    defaultText: 'none',
    check: (v) => (/^(rediss?|unix):\/\//.test(v) ? undefined : 'takes a redis://, rediss:// or unix:// URL'),
  }),
  schedule: listOpt<Group>({
    flag: 'schedule',
    group: 'jobs',
    description: 'scheduler periods in ms, e.g. stats.report=5000,chain.sync=30000',
    default: [],
    defaultText: SCHEDULED.map((j) => `${j}=${JOBS_DEFAULTS.scheduleMs[j]}`).join(','),
    check: (item) => {
      const [name, ms, ...rest] = item.split('=');
      if (!(SCHEDULED as string[]).includes(name ?? '') || rest.length)
        return `names one of ${SCHEDULED.join(', ')}`;
      const n = Number(ms);
      if (!Number.isInteger(n) || n < JOBS_DEFAULTS.minScheduleMs)
        return `needs a period of at least ${JOBS_DEFAULTS.minScheduleMs} ms`;
      return undefined;
    },
  }),
  commandKeys: listOpt<Group>({
    flag: 'command-keys',
    group: 'jobs',
    arg: 'HEXKEYS',
    description:
      'open networks only: public keys (hex) whose signed admin commands this node runs (a gateway logs its key at start); without them an open-network node takes no commands. Roster networks decide by the roster: a member with the "command" capability, or an admin',
    default: [],
    defaultText: 'none',
    check: (k) => (/^[0-9a-f]{64}$/i.test(k) ? undefined : 'takes 32-byte public keys in hex'),
  }),
  allowOperatorMessages: switchOpt<Group>({
    flag: 'allow-operator-messages',
    group: 'jobs',
    description:
      "take the sendMessage admin command: an operator (through the gateway) sends direct messages as this node. Off by default: the text crosses Redis and the gateway in the clear, and the message carries this device's signature",
  }),
  collectorKeys: listOpt<Group>({
    flag: 'collector-keys',
    group: 'jobs',
    arg: 'HEXKEYS',
    description:
      'public keys (hex) of the collectors whose signed receipts count a report delivered (a collector logs its receiptKey at start); with them, a report whose job finished unreceipted or sits parked is sent again, since any Redis client can mark a job completed. Without them a finished job is taken at its word',
    default: [],
    defaultText: 'none',
    check: (k) => (/^[0-9a-f]{64}$/i.test(k) ? undefined : 'takes 32-byte public keys in hex'),
  }),
  collectorKeyFile: stringOpt<Group, undefined>({
    flag: 'collector-key-file',
    group: 'jobs',
    arg: 'FILE',
    description:
      "a file holding a collector's public key in hex (network-init writes <dir>/public/collector-receipt-key.hex), added to --collector-keys: for deployments where the key is made after the command line is written (compose)",
    default: undefined,
  }),
  flSlice: intOpt<Group, undefined>({
    flag: 'fl-slice',
    group: 'fl',
    arg: 'K',
    description: 'train on slice K (0-based) of the corpus …',
    default: undefined,
    min: 0,
  }),
  flSlices: intOpt<Group, undefined>({
    flag: 'fl-slices',
    group: 'fl',
    description: '… split into N slices (needs the "train" capability)',
    default: undefined,
    min: 1,
  }),
  flSplit: choiceOpt<Group, SliceOptions['mode'], SliceOptions['mode']>({
    flag: 'fl-split',
    group: 'fl',
    arg: 'MODE',
    description: 'iid | label-skew',
    values: ['iid', 'label-skew'],
    default: FL_DEFAULTS.split,
  }),
  flSeed: intOpt<Group, number>({
    flag: 'fl-seed',
    group: 'fl',
    arg: 'S',
    description: 'seed of the deterministic split (same on every node)',
    default: FL_DEFAULTS.splitSeed,
    min: 0,
  }),
  flDecline: switchOpt<Group>({
    flag: 'fl-decline',
    group: 'fl',
    description: 'decline every federated round (policy)',
  }),
  flMisbehave: choiceOpt<Group, Misbehaviour, undefined>({
    flag: 'fl-misbehave',
    group: 'fl',
    arg: 'KIND',
    description: 'testing only: send an oversized | malformed | out-of-range masked update',
    values: ['oversized', 'malformed', 'out-of-range'],
    default: undefined,
  }),
  flEvery: intOpt<Group, number>({
    flag: 'fl-every',
    group: 'fl',
    arg: 'MS',
    description: 'coordinate one federated round every MS ms (0 = only on command)',
    default: FL_DEFAULTS.everyMs,
    min: 0,
  }),
  flMode: choiceOpt<Group, DpMode, DpMode>({
    flag: 'fl-mode',
    group: 'fl',
    arg: 'MODE',
    description:
      'DP of the rounds this node coordinates and joins: record (DP-SGD, each email protected, ' +
      'charged to the budget) | update (whole updates only; a record node declines such rounds)',
    values: [...DP_MODES],
    default: FL_DEFAULTS.mode,
  }),
  flBudget: numberOpt<Group, undefined>({
    flag: 'fl-budget',
    group: 'fl',
    arg: 'EPS',
    description:
      `set this node's privacy budget: ε at δ = ${FL_DEFAULTS.privacy.delta} over everything it ever ` +
      'contributes, after which it declines rounds (kept in <data-dir>/fl-privacy.json)',
    default: undefined,
    defaultText: `${FL_DEFAULTS.privacy.budgetEpsilon} for a new ledger, else the ledger's own`,
    min: 0,
    max: 1_000_000,
  }),
  flDeadline: intOpt<Group, number>({
    flag: 'fl-deadline',
    group: 'fl',
    arg: 'MS',
    description: 'how long a coordinated round waits for masked updates',
    default: FL_DEFAULTS.deadlineMs,
    min: FL_DEFAULTS.minDeadlineMs,
  }),
} as const;

export type CliValues = ValuesOf<typeof NODE_OPTIONS>;

export const HELP = renderHelp(
  NODE_OPTIONS,
  OPTION_GROUPS,
  'cairn node — a headless Cairn node\n\nusage: npm run node -- [options]\n' +
    '       npm run node -- invite --name NAME [--role ROLE] [--capabilities LIST] [--expires 30d]\n' +
    "                      (on an admin's machine next to its running node; invite --help)\n" +
    '       npm run node -- classify "<text>" --data-dir DIR [--json]\n' +
    "                      (the running node's model: spam or not; classify --help)\n" +
    '       npm run node -- join <invitation> --data-dir DIR [options]\n' +
    '                      (on a new device: redeem the invitation, then run the node)',
  'Logs are JSON lines on stdout; the line with "msg":"ready" carries peerId, addrs and httpUrl.\nSIGINT or SIGTERM shut the node down cleanly.',
);

/** Connection limits of the libp2p host (node/p2p/connection-limits.ts, host.ts). */
export interface P2pLimits {
  readonly maxConnections: number;
  readonly reservedOutbound: number;
  readonly maxInboundPerIp: number;
  readonly ipLimitExempt: readonly string[];
}

export interface GossipScoreOptions {
  readonly ipColocationWeight: number;
  readonly ipColocationThreshold: number;
  readonly ipColocationWhitelist: readonly string[];
}

export interface SyncLimits {
  readonly maxPresyncHeaders: number;
}

export interface PeerBanOptions {
  readonly banMs: number;
  readonly maxScoredPeers: number;
  readonly maxBannedPeers: number;
  readonly addressBanThreshold: number;
  readonly addressBanHalfLifeMs: number;
}

/** What the command line configures, typed and cross-checked. */
export interface CliConfig {
  readonly dataDir: string;
  readonly listen: readonly string[];
  readonly bootstrap: readonly string[];
  readonly mine: boolean;
  readonly mdns: boolean;
  readonly role: Role;
  readonly capabilities: readonly Capability[];
  readonly networkConfig: string | undefined;
  readonly iceServers: readonly string[];
  readonly relays: readonly string[];
  readonly announce: readonly string[];
  readonly relayLimits: {
    readonly maxReservations: number;
    readonly durationLimitMs: number;
    readonly dataLimitBytes: number;
  };
  readonly reconcileIntervalMs: number;
  readonly logLevel: string;
  readonly p2p: P2pLimits;
  readonly peers: PeerBanOptions;
  readonly sync: SyncLimits;
  readonly gossip: GossipScoreOptions;
  readonly http: { readonly host: string; readonly port: number; readonly allowHosts: readonly string[] };
  readonly jobs: {
    readonly redisUrl: string | undefined;
    readonly schedule: Partial<Record<ScheduledJob, number>>;
    readonly commandKeys: readonly string[];
    readonly collectorKeys: readonly string[];
    readonly allowOperatorMessages: boolean;
  };
  readonly fl: {
    readonly slice?: SliceOptions;
    readonly decline: boolean;
    readonly misbehave?: Misbehaviour;
    readonly everyMs: number;
    readonly deadlineMs: number;
    readonly mode: DpMode;
    readonly budgetEpsilon?: number;
  };
}

/** Rules between options that no single option's check can see. */
export function toCliConfig(v: CliValues): CliConfig {
  const capabilities = [...v.capabilities];
  if (v.mine && !capabilities.includes('mine')) capabilities.push('mine');
  if ((v.flSlice === undefined) !== (v.flSlices === undefined))
    throw new OptionError('--fl-slice and --fl-slices go together');
  if (v.flSlice !== undefined && v.flSlices !== undefined && v.flSlice >= v.flSlices)
    throw new OptionError('--fl-slice must be below --fl-slices');
  if (v.reservedOutbound >= v.maxConnections)
    throw new OptionError('--reserved-outbound must leave some of --max-connections to inbound connections');
  const schedule: Partial<Record<ScheduledJob, number>> = {};
  for (const item of v.schedule) {
    const [name, ms] = item.split('=') as [ScheduledJob, string];
    schedule[name] = Number(ms);
  }
  return {
    dataDir: path.resolve(v.dataDir),
    listen: v.listen,
    bootstrap: v.bootstrap,
    mine: v.mine,
    mdns: v.mdns,
    role: v.role,
    capabilities,
    networkConfig: v.networkConfig,
    iceServers: v.iceServers,
    relays: v.relays,
    announce: v.announce,
    relayLimits: {
      maxReservations: v.relayMaxReservations,
      durationLimitMs: v.relayDurationLimitMs,
      dataLimitBytes: v.relayDataLimitBytes,
    },
    reconcileIntervalMs: v.reconcileMs,
    logLevel: v.logLevel,
    p2p: {
      maxConnections: v.maxConnections,
      reservedOutbound: v.reservedOutbound,
      maxInboundPerIp: v.maxInboundPerIp,
      ipLimitExempt: v.ipLimitExempt,
    },
    peers: {
      banMs: v.banMs,
      maxScoredPeers: v.maxScoredPeers,
      maxBannedPeers: v.maxBannedPeers,
      addressBanThreshold: v.addressBanThreshold,
      addressBanHalfLifeMs: v.addressBanHalfLifeMs,
    },
    sync: { maxPresyncHeaders: v.maxPresyncHeaders },
    gossip: {
      ipColocationWeight: v.ipColocationWeight,
      ipColocationThreshold: v.ipColocationThreshold,
      ipColocationWhitelist: v.ipColocationWhitelist,
    },
    http: { host: v.httpHost, port: v.httpPort, allowHosts: v.httpAllowHosts },
    jobs: {
      redisUrl: v.redis === undefined ? undefined : withRedisPassword(v.redis),
      schedule,
      commandKeys: v.commandKeys.map((k) => k.toLowerCase()),
      allowOperatorMessages: v.allowOperatorMessages,
      collectorKeys: [
        ...v.collectorKeys,
        ...(v.collectorKeyFile ? [readPublicKeyFile(v.collectorKeyFile)] : []),
      ].map((k) => k.toLowerCase()),
    },
    fl: {
      ...(v.flSlice !== undefined && v.flSlices !== undefined
        ? { slice: { index: v.flSlice, of: v.flSlices, mode: v.flSplit, seed: v.flSeed } }
        : {}),
      decline: v.flDecline,
      ...(v.flMisbehave ? { misbehave: v.flMisbehave } : {}),
      everyMs: v.flEvery,
      deadlineMs: v.flDeadline,
      mode: v.flMode,
      ...(v.flBudget !== undefined ? { budgetEpsilon: v.flBudget } : {}),
    },
  };
}

/** The command line: `help` when asked for, else the config; throws OptionError on a bad one. */
export function parseNodeArgs(argv: readonly string[]): { help: true } | { help: false; config: CliConfig } {
  const parsed = parseOptions(NODE_OPTIONS, argv);
  if (parsed.help) return { help: true };
  return { help: false, config: toCliConfig(parsed.read()) };
}

/** A public key file: 32 bytes in hex on one line (what network-init writes for the collector). */
function readPublicKeyFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new Error(`--collector-key-file ${file}: ${(err as Error).message}`);
  }
  if (!/^[0-9a-f]{64}$/i.test(text))
    throw new Error(`--collector-key-file ${file}: not a 32-byte public key in hex`);
  return text;
}
