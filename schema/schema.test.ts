import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { buildSchema, printSchema } from 'graphql';
import { printedSchema, SCHEMA_FILE } from './print.ts';

test('schema/schema.graphql is current (run `npm run schema:print` after changing schema/)', async () => {
  // Compared as schemas (re-printed), so the formatter's layout of the file does not matter.
  const committed = printSchema(buildSchema(await readFile(SCHEMA_FILE, 'utf8')));
  assert.equal(committed, printedSchema(), 'schema/schema.graphql is stale: run `npm run schema:print`');
});

test('the schema keeps the names the console is built against', () => {
  const sdl = printedSchema();
  for (const needle of [
    '_meta: Meta!',
    'block(hash: String, height: Int): Block',
    'blocks(fromHeight: Int!, toHeight: Int!): [Block!]!',
    'blockConnection(after: String, before: String, first: Int, last: Int): BlockConnection!',
    'entry(id: String!): Entry',
    'networkStats: NetworkStats\n',
    'networkStatsHistory(last: Int = 100): [NetworkStats!]!',
    'networkConfig: NetworkConfig',
    'node(id: ID!): Node',
    'nodes(after: String, before: String, first: Int, last: Int): NodeConnection!',
    'orphanedBlocks(after: String, before: String, first: Int, last: Int): OrphanedBlockConnection!',
    'modelVersions(after: String, before: String, first: Int, last: Int): ModelVersionConnection!',
    'flRounds(after: String, before: String, first: Int, last: Int): FlRoundConnection!',
    'syncMempool(nodeId: ID!, peerId: String): ReconcileResult!',
    'blockPeers(nodeId: ID!, peerIds: [String!]!): PeersResult!',
    'newBlock: Block!',
    'nodeStatus: Node!',
    'stats(last: Int = 60): [NodeStatsSnapshot!]!',
    'scalar DateTime',
  ])
    assert.ok(sdl.includes(needle), `missing: ${needle}`);
});
