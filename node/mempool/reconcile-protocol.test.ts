/**
 * Mempool reconciliation over real libp2p hosts: entries are admitted frame by frame as they
 * arrive, and a frame with invalid entries ends the session before any answer goes back.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { lpStream } from '@libp2p/utils';
import type { SealedEntry } from '../chain/types.ts';
import { identityFromSeed } from '../identity/identity.ts';
import { createLogger } from '../log.ts';
import { type CairnLibp2p, createHost } from '../p2p/host.ts';
import { knowledgeEntry, TEST_NOW, testKey } from '../testing/forge.ts';
import { Reconciler } from './reconcile.ts';
import { encodeReconcileFrame, RECONCILE_LIMITS } from './reconcile-codec.ts';
import { ReconcileProtocol } from './reconcile-protocol.ts';

const dirs: string[] = [];
const hosts: CairnLibp2p[] = [];
after(async () => {
  await Promise.all(hosts.map((h) => h.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function host(seed: number): Promise<CairnLibp2p> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'cairn-rec-'));
  dirs.push(dataDir);
  const h = await createHost({
    identity: await identityFromSeed(new Uint8Array(32).fill(seed)),
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: [],
    mdns: false,
    networkTag: 'cairn-rec-test',
    gater: {},
    maxGossipBytes: 1024 * 1024,
  });
  await h.start();
  hosts.push(h);
  return h;
}

test('a frame with invalid entries is judged on arrival and ends the session unanswered', async () => {
  const [a, b] = [await host(1), await host(2)];
  const accepted: number[] = [];
  const penalties: string[] = [];
  const protocolId = '/cairn/rec-test/mempool-reconcile/1';
  const server = new ReconcileProtocol({
    host: b,
    protocolId,
    entries: () => [],
    // Entries whose content says "bad" are invalid.
    accept: async (entries: readonly SealedEntry[]) => {
      accepted.push(entries.length);
      return entries.filter((e) => e.payload.kind === 'knowledge' && e.payload.content.startsWith('bad'))
        .length;
    },
    penalise: (_p, action, reason) => penalties.push(`${action}: ${reason}`),
    log: createLogger('silent'),
  });
  await server.start();
  await a.dial(b.getMultiaddrs()[0]!);
  // A raw initiator: an opening frame that asks for an answer, carrying one invalid entry.
  const stream = await a.dialProtocol(b.peerId, protocolId);
  const lp = lpStream(stream, { maxDataLength: RECONCILE_LIMITS.frameBytes });
  const opening = new Reconciler([]).initiate();
  const entries = [knowledgeEntry(testKey(1), TEST_NOW, 'good'), knowledgeEntry(testKey(2), TEST_NOW, 'bad')];
  await lp.write(encodeReconcileFrame({ ...opening, entries }));
  const answer = await lp.read({ signal: AbortSignal.timeout(3_000) }).then(
    () => 'answered',
    (err: Error) => err.name,
  );
  assert.notEqual(answer, 'answered', 'the responder answered a frame with invalid entries');
  await sleep(100);
  assert.deepEqual(accepted, [2], 'the frame was admitted as it arrived');
  assert.deepEqual(penalties, ['low-tolerance: 1 invalid entries in reconciliation']);
});
