/**
 * Every GraphQL document of the web console is valid against the committed SDL
 * (schema/schema.graphql) and within the gateway's cost limit, so a schema change that breaks
 * the console fails here, in seconds, rather than in the browser tests.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { buildSchema, parse, validate } from 'graphql';
import { DEFAULT_LIMITS } from '../../gateway/gateway.ts';
import { listCostRule } from '../../gateway/list-cost.ts';
import * as Q from '../../web/src/queries.ts';

const schema = buildSchema(
  readFileSync(path.resolve(import.meta.dirname, '../../schema/schema.graphql'), 'utf8'),
);
/** The gateway's default (gateway/gateway.ts `maxCost`). */

const documents: [string, string][] = [];
for (const [name, value] of Object.entries(Q)) {
  if (typeof value === 'string') documents.push([name, value]);
  else
    for (const [action, { doc }] of Object.entries(Q.ADMIN_ACTIONS))
      documents.push([`ADMIN_ACTIONS.${action}`, doc]);
}

test('the console has documents for every view', () => {
  assert.ok(documents.length >= 12, `only ${documents.length} documents`);
});

for (const [name, text] of documents) {
  test(`${name} is valid against schema/schema.graphql and under the cost limit`, () => {
    const doc = parse(text);
    const errors = validate(schema, doc);
    assert.deepEqual(
      errors.map((e) => e.message),
      [],
    );
    let cost: string | undefined;
    try {
      validate(schema, doc, [costLimitRule({ maxCost: DEFAULT_LIMITS.maxCost } as never)]);
    } catch (err) {
      cost = (err as Error).message;
    }
    assert.equal(cost, undefined, `${name}: ${cost}`);
    // And under the limit that counts list sizes (a block's entries count as 1,000).
    assert.deepEqual(
      validate(schema, doc, [listCostRule({ maxCost: DEFAULT_LIMITS.maxListCost })]).map((e) => e.message),
      [],
      name,
    );
  });
}
