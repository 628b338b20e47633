import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The node's Prometheus metrics, one registry per node process. */
export function createNodeMetrics(registry = new Registry()) {
  const r = [registry];
  return {
    registry,
    peers: new Gauge({ name: 'cairn_peers', help: 'Connected peers', registers: r }),
    height: new Gauge({ name: 'cairn_chain_height', help: 'Height of the selected tip', registers: r }),
    totalWork: new Gauge({
      name: 'cairn_chain_total_work_log2',
      help: 'log2 of the cumulative work of the tip',
      registers: r,
    }),
    mempoolSize: new Gauge({ name: 'cairn_mempool_entries', help: 'Entries in the mempool', registers: r }),
    orphans: new Gauge({ name: 'cairn_orphan_blocks', help: 'Blocks in the orphan pool', registers: r }),
    orphansDropped: new Counter({
      name: 'cairn_orphan_blocks_dropped_total',
      help: 'Orphans dropped from the pool by reason (evicted by the count or the byte bounds, expired, unresolved, low work)',
      labelNames: ['reason'],
      registers: r,
    }),
    syncState: new Gauge({
      name: 'cairn_sync_state',
      help: 'Sync state: 0 idle/synced, 1 syncing',
      registers: r,
    }),
    blocksProcessed: new Counter({
      name: 'cairn_blocks_processed_total',
      help: 'Blocks processed by outcome',
      labelNames: ['outcome', 'source'],
      registers: r,
    }),
    blockErrors: new Counter({
      name: 'cairn_block_validation_errors_total',
      help: 'Rejected blocks by validation error code',
      labelNames: ['code'],
      registers: r,
    }),
    blocksIgnored: new Counter({
      name: 'cairn_blocks_ignored_total',
      help: 'Blocks neither stored nor judged invalid (orphans outside the window or envelope, low-work side chains)',
      labelNames: ['reason'],
      registers: r,
    }),
    unknownBlockFetches: new Counter({
      name: 'cairn_unknown_block_fetches_total',
      help: 'Ancestor fetches for orphans by outcome',
      labelNames: ['outcome'],
      registers: r,
    }),
    storedBlocks: new Gauge({
      name: 'cairn_stored_blocks',
      help: 'Blocks in the block tree (main and side chains)',
      registers: r,
    }),
    reorgs: new Counter({
      name: 'cairn_reorgs_total',
      help: 'Reorganisations of the main chain',
      registers: r,
    }),
    gossip: new Counter({
      name: 'cairn_gossip_messages_total',
      help: 'Gossip messages received by topic and validation result',
      labelNames: ['topic', 'result'],
      registers: r,
    }),
    reqresp: new Histogram({
      name: 'cairn_reqresp_duration_seconds',
      help: 'Request/response durations by protocol, direction and outcome',
      labelNames: ['protocol', 'direction', 'outcome'],
      buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    serveWaits: new Histogram({
      name: 'cairn_serve_wait_seconds',
      help: 'Waits of block chunks queued for their turn in the node-wide serve budget',
      buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 4],
      registers: r,
    }),
    serveBusy: new Counter({
      name: 'cairn_serve_busy_total',
      help: 'Block answers the node-wide serve budget cut, by reason (wait, queue-full, answer-time) and ending (short, refused)',
      labelNames: ['reason', 'ending'],
      registers: r,
    }),
    peerActions: new Counter({
      name: 'cairn_peer_penalties_total',
      help: 'Penalties applied to peers by action',
      labelNames: ['action'],
      registers: r,
    }),
    bans: new Counter({ name: 'cairn_peer_bans_total', help: 'Peers banned', registers: r }),
    syncedBlocks: new Counter({
      name: 'cairn_sync_blocks_total',
      help: 'Blocks imported by range sync',
      registers: r,
    }),
    syncDisproved: new Counter({
      name: 'cairn_sync_status_disproved_total',
      help: 'Peer statuses a sync disproved (lie: contradicted by its answers; unserved: not delivered)',
      labelNames: ['kind'],
      registers: r,
    }),
    presyncs: new Counter({
      name: 'cairn_sync_presyncs_total',
      help: 'Headers-first pre-syncs of deep forks by outcome (proven, or why they failed)',
      labelNames: ['outcome'],
      registers: r,
    }),
    syncTurns: new Counter({
      name: 'cairn_sync_turns_total',
      help: 'Syncs started, by whose turn: the best claim, or (after a failed pre-sync) a claim connecting near our tip',
      labelNames: ['turn'],
      registers: r,
    }),
    presyncHeaders: new Counter({
      name: 'cairn_sync_presync_headers_total',
      help: 'Headers read and checked by pre-syncs (none of them stored)',
      registers: r,
    }),
    checkpointDisagreements: new Counter({
      name: 'cairn_sync_checkpoint_disagreements_total',
      help: 'Checkpoint heights where 2/3 of the trusted peers asked name another block than the one imported (advisory: validation decides)',
      registers: r,
    }),
    reorgDepth: new Histogram({
      name: 'cairn_reorg_depth_blocks',
      help: 'Blocks disconnected by each reorg',
      buckets: [1, 2, 4, 8, 16, 64, 256, 1024, 4096],
      registers: r,
    }),
    finalizedHeight: new Gauge({
      name: 'cairn_finalized_height',
      help: 'Height of the highest admin checkpoint final on this node (0: none)',
      registers: r,
    }),
    checkpointRefusals: new Counter({
      name: 'cairn_checkpoint_refusals_total',
      help: 'Blocks refused because their chain forks below the final checkpoint (a split)',
      registers: r,
    }),
    splits: new Counter({
      name: 'cairn_network_splits_detected_total',
      help: 'Deep forks seen on reconnection (network splits that healed)',
      registers: r,
    }),
    reconciliations: new Counter({
      name: 'cairn_mempool_reconciliations_total',
      help: 'Mempool reconciliations by outcome',
      labelNames: ['outcome'],
      registers: r,
    }),
    hashes: new Counter({
      name: 'cairn_miner_hashes_total',
      help: 'Hashes computed by the miner',
      registers: r,
    }),
    blocksMined: new Counter({
      name: 'cairn_blocks_mined_total',
      help: 'Blocks mined by this node',
      registers: r,
    }),
    storageFailed: new Gauge({
      name: 'cairn_storage_failed',
      help: '1 once a store commit failed (disk full, I/O error): the node mines, relays and accepts nothing',
      registers: r,
    }),
  };
}

export type NodeMetrics = ReturnType<typeof createNodeMetrics>;
