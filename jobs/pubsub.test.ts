import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { type Jsonified, TOPICS } from './events.ts';
import type { OrphanedBlock } from './index-db/generated/sqlite/client.ts';
import { createCairnPubSub } from './pubsub.ts';

/** A whole row, as the collector hands it to publish. */
const event = (hash: string): Jsonified<OrphanedBlock> => ({
  hash,
  reason: 'reorged-out',
  reorgDepth: 1,
  height: 1,
  prevHash: '00',
  miner: '11',
  reportedBy: 'n',
  at: new Date(0).toISOString(),
});

async function next<T>(it: AsyncIterator<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([
    it.next().then((x) => x.value as T),
    new Promise<'timeout'>((res) => {
      timer = setTimeout(() => res('timeout'), ms);
    }),
  ]);
  clearTimeout(timer);
  return r;
}

test('events cross processes through Redis within a namespace, and never into another namespace', async () => {
  const ns = `t${randomBytes(4).toString('hex')}`;
  const publisher = createCairnPubSub(undefined, ns);
  const sameNs = createCairnPubSub(undefined, ns);
  const otherNs = createCairnPubSub(undefined, `${ns}x`);
  try {
    const mine = sameNs.pubsub.subscribe(TOPICS.orphanedBlock)[Symbol.asyncIterator]();
    const theirs = otherNs.pubsub.subscribe(TOPICS.orphanedBlock)[Symbol.asyncIterator]();
    const pending = next(mine, 5_000);
    const leaked = next(theirs, 1_000);
    await new Promise((r) => setTimeout(r, 200)); // let SUBSCRIBE reach Redis
    publisher.pubsub.publish(TOPICS.orphanedBlock, event('ab'));
    // Only the row's key crosses Redis: subscribers look the row up (schema/event-rows.ts).
    assert.deepEqual(await pending, { hash: 'ab', reason: 'reorged-out' });
    assert.equal(await leaked, 'timeout');
    await mine.return?.();
    await theirs.return?.();
  } finally {
    await Promise.all([publisher.close(), sameNs.close(), otherNs.close()]);
  }
});
