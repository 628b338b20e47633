/** Every GraphQL document the console sends (built against schema/schema.graphql) and its types. */

export interface Meta {
  height: number;
  headHash: string | null;
  nodes: number;
  updatedAt: string | null;
}

export interface Stats {
  at: string;
  totalNodes: number;
  chainLengthMin: number;
  chainLengthMax: number;
  chainLengthAvg: number;
  avgPeers: number;
  target: string;
  difficulty: number;
  hashRate: number;
  mempoolTotal: number;
  mempoolMin: number;
  mempoolMax: number;
}

export interface BlockSummary {
  hash: string;
  height: number;
  timestamp: string;
  target: string;
  miner: string;
  entryCount: number;
  sizeBytes: number;
  reportedBy: string;
  receivedAt: string;
}

export interface Entry {
  id: string;
  position: number;
  kind: string;
  author: string;
  timestamp: string;
  payload: string;
  signature: string;
  content: string | null;
}

export interface BlockDetail extends BlockSummary {
  prevHash: string;
  merkleRoot: string;
  nonce: string;
  signature: string;
  header: string;
  totalWork: string;
  canonical: boolean;
  entries: Entry[];
  parent: { hash: string; height: number } | null;
}

export interface NodeInfo {
  id: string;
  role: string;
  capabilities: string[];
  /** Only with a token (NODES_DETAIL). */
  addrs?: string[];
  firstSeenAt: string;
  lastSeenAt: string;
  height: number;
  headHash: string;
  peerCount: number;
  mempoolSize: number;
  mining: boolean;
  /** Only with a token (NODES_DETAIL). */
  peers?: string[];
  /** Only with a token (NODES_DETAIL): open connections by kind. */
  connections?: { kind: string; count: number }[];
}

export interface Orphan {
  hash: string;
  reason: string;
  height: number;
  prevHash: string;
  miner: string;
  reportedBy: string;
  reorgDepth: number | null;
  at: string;
}

export interface ModelVersion {
  hash: string;
  parentHash: string | null;
  round: number;
  metrics: string;
  accuracy: number | null;
  epsilon: number;
  participants: number;
  blockHash: string | null;
  createdAt: string;
}

export interface FlRound {
  id: string;
  round: number;
  coordinator: string;
  status: string;
  participants: string[];
  leftOut: string[];
  modelHash: string | null;
  error: string | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { endCursor: string | null; hasNextPage: boolean };
}

const STATS =
  'at totalNodes chainLengthMin chainLengthMax chainLengthAvg avgPeers target difficulty hashRate mempoolTotal mempoolMin mempoolMax';
const BLOCK_SUMMARY = 'hash height timestamp target miner entryCount sizeBytes reportedBy receivedAt';
const NODE = 'id role capabilities firstSeenAt lastSeenAt height headHash peerCount mempoolSize mining';
/** Addresses and peer lists: the gateway serves them to token holders only. */
const NODE_DETAIL = `${NODE} addrs peers connections { kind count }`;
const ORPHAN = 'hash reason height prevHash miner reportedBy reorgDepth at';
const MODEL = 'hash parentHash round metrics accuracy epsilon participants blockHash createdAt';

/*
 * Page sizes are literals on purpose: the gateway's cost limit (5000) multiplies by them, and
 * every document here stays below it (checked by e2e/browser/queries.test.ts).
 */
export const OVERVIEW = /* GraphQL */ `
  query Overview {
    _meta { height headHash nodes updatedAt }
    networkStats { ${STATS} }
    networkConfig { chainId genesisHash config }
    networkStatsHistory(last: 120) { at chainLengthMax difficulty }
    blockConnection(first: 60) { edges { node { ${BLOCK_SUMMARY} } } }
  }`;

export const BLOCKS = /* GraphQL */ `
  query Blocks($after: String) {
    blockConnection(first: 25, after: $after) {
      edges { cursor node { ${BLOCK_SUMMARY} } }
      pageInfo { endCursor hasNextPage }
    }
  }`;

export const BLOCK = /* GraphQL */ `
  query Block($hash: String, $height: Int) {
    block(hash: $hash, height: $height) {
      ${BLOCK_SUMMARY} prevHash merkleRoot nonce signature header totalWork canonical
      entries { id position kind author timestamp payload signature content }
      parent { hash height }
    }
  }`;

export const NODES = /* GraphQL */ `
  query Nodes { nodes(first: 50) { edges { cursor node { ${NODE} } } pageInfo { endCursor hasNextPage } } }`;

export const NODES_DETAIL = /* GraphQL */ `
  query NodesDetail { nodes(first: 50) { edges { cursor node { ${NODE_DETAIL} } } pageInfo { endCursor hasNextPage } } }`;

export const ORPHANS = /* GraphQL */ `
  query Orphans { orphanedBlocks(first: 50) { edges { cursor node { ${ORPHAN} } } pageInfo { endCursor hasNextPage } } }`;

export const MODELS = /* GraphQL */ `
  query Models {
    modelVersions(first: 50) { edges { cursor node { ${MODEL} } } pageInfo { endCursor hasNextPage } }
    flRounds(first: 20) {
      edges { cursor node { id round coordinator status participants leftOut modelHash error startedAt finishedAt } }
      pageInfo { endCursor hasNextPage }
    }
  }`;

export const SUB_NEW_BLOCK = `subscription { newBlock { ${BLOCK_SUMMARY} } }`;
export const SUB_STATS = `subscription { networkStats { ${STATS} } }`;
export const SUB_NODE = `subscription { nodeStatus { ${NODE} } }`;
export const SUB_NODE_DETAIL = `subscription { nodeStatus { ${NODE_DETAIL} } }`;
export const SUB_ORPHAN = `subscription { orphanedBlock { ${ORPHAN} } }`;
export const SUB_MODEL = `subscription { modelVersion { ${MODEL} } }`;

/** Admin actions: one mutation each, with its result selection. */
export const ADMIN_ACTIONS = {
  syncMempool: {
    label: 'Sync mempool',
    doc: 'mutation ($nodeId: ID!) { syncMempool(nodeId: $nodeId) { peerId sent received roundTrips bytes } }',
  },
  syncChain: {
    label: 'Sync chain',
    doc: 'mutation ($nodeId: ID!) { syncChain(nodeId: $nodeId) { state outcome height headHash } }',
  },
  reportStats: {
    label: 'Report stats now',
    doc: 'mutation ($nodeId: ID!) { reportStats(nodeId: $nodeId) { seq } }',
  },
} as const;
export type AdminAction = keyof typeof ADMIN_ACTIONS;

/** Admin: a direct message sent as the node; only a node started with --allow-operator-messages takes it. */
export const SEND_MESSAGE =
  'mutation ($nodeId: ID!, $to: String!, $text: String!) { sendMessage(nodeId: $nodeId, to: $to, text: $text) { id toName seq status error } }';

export const SUBMIT_ENTRY =
  'mutation ($nodeId: ID!, $content: String!) { submitEntry(nodeId: $nodeId, content: $content) { accepted id reason } }';

export interface MemberInfo {
  publicKey: string;
  name: string;
  role: string;
  capabilities: string[];
  admin: boolean;
  issuedAt: string;
  expiresAt: string;
  state: 'member' | 'expired' | 'revoked';
}

export const MEMBERS = /* GraphQL */ `
  query Members($nodeId: ID!) {
    members(nodeId: $nodeId) { publicKey name role capabilities admin issuedAt expiresAt state }
  }`;

export const INVITE_DEVICE = /* GraphQL */ `
  mutation Invite($nodeId: ID!, $name: String!, $role: String!, $capabilities: [String!]!, $days: Int!) {
    inviteDevice(nodeId: $nodeId, name: $name, role: $role, capabilities: $capabilities, expiresInDays: $days) {
      invitation expiresAt memberUntil
    }
  }`;

export const REVOKE_DEVICE = /* GraphQL */ `
  mutation Revoke($nodeId: ID!, $publicKey: String!) {
    revokeDevice(nodeId: $nodeId, publicKey: $publicKey) { id accepted reason }
  }`;

/** A model version's verdict on a text (schema/classify.ts); `version` null: the newest committed. */
export const CLASSIFY = /* GraphQL */ `
  query Classify($text: String!, $version: String) {
    classify(text: $text, version: $version) { version round spam score }
  }
`;

export interface Classification {
  version: string;
  round: number;
  spam: boolean;
  score: number;
}

/** An entry as the Knowledge page shows it (schema/search.ts). */
export interface KnowledgeEntry {
  id: string;
  blockHash: string;
  kind: string;
  authorNodeId: string;
  timestamp: string;
  content: string | null;
  metadata: { key: string; value: string }[];
  highlights: { start: number; end: number }[];
  block: { height: number; canonical: boolean } | null;
}

const KNOWLEDGE_ENTRY =
  'id blockHash kind authorNodeId timestamp content metadata { key value } highlights { start end } block { height canonical }';

export const ENTRIES = /* GraphQL */ `
  query Entries($filter: EntryFilter, $after: String) {
    entries(filter: $filter, first: 20, after: $after) {
      edges { cursor node { ${KNOWLEDGE_ENTRY} } }
      pageInfo { endCursor hasNextPage }
    }
  }`;

export const TOPICS = /* GraphQL */ `
  query Topics { topics(key: "topic", first: 30) { value count } }`;

export const SUB_NEW_ENTRY = `subscription NewEntry($filter: EntryFilter) { newEntry(filter: $filter) { ${KNOWLEDGE_ENTRY} } }`;

/** Each node's record-level privacy ledger and its last reports (schema/fl-privacy.ts). */
export const FL_PRIVACY = /* GraphQL */ `
  query FlPrivacy {
    flPrivacy { nodeId mode epsilon budget remaining delta rounds history(last: 15) { at epsilon budget rounds } }
  }
`;

export interface FlPrivacy {
  nodeId: string;
  mode: string;
  epsilon: number;
  budget: number;
  remaining: number;
  delta: number;
  rounds: number;
  history: { at: string; epsilon: number; budget: number; rounds: number }[];
}

/** Each node's messaging figures (schema/messaging.ts): counts, latency, mailbox use; viewers. */
const MESSAGING =
  'nodeId at sent delivered pending latencyP50Ms latencyP99Ms latencySamples mailbox { items bytes capacityBytes used }';
export const MESSAGING_STATS = /* GraphQL */ `
  query MessagingStats { messagingStats { ${MESSAGING} } }
`;
export const SUB_MESSAGING_STATS = `subscription { messagingStats { ${MESSAGING} } }`;

export interface MessagingStats {
  nodeId: string;
  at: string;
  sent: number;
  delivered: number;
  pending: number;
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencySamples: number;
  mailbox: { items: number; bytes: number; capacityBytes: number; used: number } | null;
}
