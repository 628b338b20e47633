import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { serverAudits } from 'graphql-http';
import { startTestGateway, type TestGateway } from './testing.ts';

let gw: TestGateway;
before(async () => {
  gw = await startTestGateway({ seed: { blocks: 3 } });
});
after(() => gw.close());

test('graphql-http serverAudits: every audit is ok against the gateway', async () => {
  const audits = serverAudits({ url: gw.url, fetchFn: fetch });
  assert.ok(audits.length > 20);
  const failed: string[] = [];
  for (const audit of audits) {
    const result = await audit.fn();
    if (result.status !== 'ok') failed.push(`${audit.id} ${audit.name}: ${result.status} ${result.reason}`);
  }
  assert.deepEqual(failed, []);
});
