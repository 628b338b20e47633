/**
 * The cluster the browser tests run against, started exactly as `npm start` starts it
 * (e2e/demo/start.ts) but in a temp data dir, with a private redis-server and free ports, so it
 * never clashes with a running demo. One per worker (the config runs one worker).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test as base, expect, type Page } from '@playwright/test';
import { gql } from '../../gateway/testing.ts';
import { openIndexDb } from '../../jobs/index-db/open.ts';
import { targetForWork } from '../../node/chain/pow.ts';
import { type Demo, startDemo } from '../demo/start.ts';

/** Block time of the test chain (network.json); "within three block times" is measured against it. */
export const BLOCK_TIME_MS = 2000;
/**
 * Block arrivals are a Poisson process: a chain that averages exactly its block time leaves a
 * gap longer than three block times once in twenty. The test chain's difficulty is therefore
 * pinned (no retargeting: min = initial = max target) at ~100k hashes a block, which the three
 * miners find every ~0.2-1 s on this 2-core machine (≈120k H/s in all when it is busy), well
 * inside the 2 s block time even under load.
 */
export const PINNED_TARGET = targetForWork(100_000n);
/** node-1 coordinates a federated round this often (the demo's own period is 30 s). */
export const FL_EVERY_MS = 10_000;
export const SCREENSHOT_DIR = path.resolve(import.meta.dirname, '../../test-results/screenshots');

export interface DemoFixture {
  demo: Demo;
}

export interface CspFixture {
  /** CSP violations the page reported (Chromium logs each as a console error). */
  cspViolations: string[];
  /** A test that provokes violations on purpose sets this (test.use); otherwise any fails it. */
  allowCspViolations: boolean;
}

export const test = base.extend<CspFixture, DemoFixture>({
  allowCspViolations: [false, { option: true }],
  // Every test's page runs under the console's Content-Security-Policy and must not trip it.
  cspViolations: [
    async ({ page, allowCspViolations }, use) => {
      const seen: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) seen.push(m.text());
      });
      await use(seen);
      if (!allowCspViolations) expect(seen, 'CSP violations on the page').toEqual([]);
    },
    { auto: true },
  ],
  demo: [
    // biome-ignore lint/correctness/noEmptyPattern: Playwright fixtures take their dependencies by destructuring.
    async ({}, use) => {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'cairn-browser-'));
      const lines: string[] = [];
      const demo = await startDemo({
        dataDir,
        privateRedis: true,
        gatewayPort: 0,
        consolePort: 0,
        blockTimeMs: BLOCK_TIME_MS,
        network: { initialTarget: PINNED_TARGET, minTarget: PINNED_TARGET, maxTarget: PINNED_TARGET },
        schedule: 'stats.report=5000',
        flEveryMs: FL_EVERY_MS,
        log: (l) => lines.push(l),
      });
      let failed = false;
      try {
        await use(demo);
      } catch (err) {
        failed = true;
        throw err;
      } finally {
        await demo.stop();
        // Keep the cluster's logs when something went wrong (or on request).
        if (failed || process.env.CAIRN_KEEP_RUN_DIR) console.log(`demo data and logs kept in ${dataDir}`);
        else await rm(dataDir, { recursive: true, force: true });
      }
    },
    { scope: 'worker', timeout: 180_000 },
  ],
});

export { expect };

/** Heights of the block rows currently shown. */
export async function shownHeights(page: Page): Promise<number[]> {
  return page
    .getByTestId('block-row')
    .evaluateAll((rows) => rows.map((r) => Number((r as HTMLElement).dataset.height)));
}

/** The index's canonical height, or undefined while the gateway does not answer. */
export async function indexedHeight(demo: Demo): Promise<number | undefined> {
  return gql(demo.gatewayUrl, '{ _meta { height } }').then(
    (r) => r.body.data?._meta?.height,
    () => undefined,
  );
}

/** Waits until the index has a canonical block at `height` or above (the collector is behind the nodes). */
export async function waitForIndexedHeight(demo: Demo, height: number, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const h = await indexedHeight(demo);
    if (h !== undefined && h >= height) return;
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`index did not reach height ${height} within ${timeoutMs} ms (at ${h})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The hash of the canonical block holding the entry; throws while there is none yet. */
export async function canonicalBlockOfEntry(demo: Demo, id: string): Promise<string> {
  const entry = await gql(demo.gatewayUrl, 'query ($id: String!) { entry(id: $id) { blockHash } }', { id });
  const hash: string | undefined = entry.body.data?.entry?.blockHash;
  if (!hash) throw new Error(`entry ${id} is not indexed yet`);
  const block = await gql(demo.gatewayUrl, 'query ($h: String!) { block(hash: $h) { canonical } }', {
    h: hash,
  });
  if (!block.body.data?.block?.canonical) throw new Error(`block ${hash} of entry ${id} is not canonical`);
  return hash;
}

/** Opens the index DB the demo's collector writes (for the tampering test). */
export function openDemoIndex(demo: Demo) {
  return openIndexDb({ provider: 'sqlite', url: demo.databaseUrl });
}
