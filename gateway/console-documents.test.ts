/**
 * Every GraphQL document the console sends (web/src/queries.ts) passes the limits of a production
 * gateway, through the gateway's own validation (graphql-armor's rules, the list and answer-size
 * cost, no introspection): the limits that refuse hostile queries must not refuse the console.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as Q from '../web/src/queries.ts';
import { startTestGateway, type TestGateway } from './testing.ts';

const documents: [string, string][] = [];
for (const [name, value] of Object.entries(Q)) {
  if (typeof value === 'string') documents.push([name, value]);
  else
    for (const [action, { doc }] of Object.entries(Q.ADMIN_ACTIONS))
      documents.push([`ADMIN_ACTIONS.${action}`, doc]);
}

describe('the console documents against a production gateway', () => {
  let gw: TestGateway;
  /** The validation errors the gateway would answer this document with. */
  let validate: (text: string) => string[];
  before(async () => {
    gw = await startTestGateway({ production: true, seed: { blocks: 2 } });
    validate = (text) => {
      const { schema, parse, validate } = gw.server.gateway.yoga.getEnveloped({
        request: new Request(gw.url, { method: 'POST' }),
        params: { query: text },
      });
      return validate(schema, parse(text)).map((e: { message: string }) => e.message);
    };
  });
  after(() => gw.close());

  test('there is a document for every view, and the check refuses what the limits refuse', () => {
    assert.ok(documents.length >= 20, `only ${documents.length} documents`);
    // Not vacuous: the console's block document, asked for 19 blocks, is over the answer size.
    const block = Q.BLOCK.replace(
      'block(hash: $hash, height: $height)',
      'blocks(fromHeight: 0, toHeight: 18)',
    );
    assert.match(validate(block).join('\n'), /answer size limit/);
  });

  for (const [name, text] of documents)
    test(`${name} passes every limit`, () => assert.deepEqual(validate(text), []));
});
