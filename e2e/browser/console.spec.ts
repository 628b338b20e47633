import path from 'node:path';
import { nodeApiHeaders } from '../cluster/node-process.ts';
import {
  BLOCK_TIME_MS,
  canonicalBlockOfEntry,
  expect,
  FL_EVERY_MS,
  indexedHeight,
  openDemoIndex,
  SCREENSHOT_DIR,
  shownHeights,
  test,
  waitForIndexedHeight,
} from './fixtures.ts';

const maxShown = async (page: Parameters<typeof shownHeights>[0]) =>
  Math.max(-1, ...(await shownHeights(page)));

test('overview charts the chain and the live page shows a new block within three block times', async ({
  page,
  demo,
}, info) => {
  await waitForIndexedHeight(demo, 3);
  await page.goto(demo.consoleUrl);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected');
  await expect(page.getByTestId('stat-height')).toHaveText(/^\d+$/);
  await expect
    .poll(async () => Number(await page.getByTestId('chart-height').getAttribute('data-points')))
    .toBeGreaterThan(2);
  await expect(page.getByTestId('block-row').first()).toBeVisible();
  const overview = path.join(SCREENSHOT_DIR, 'overview.png');
  await page.screenshot({ path: overview, fullPage: true });
  await info.attach('overview', { path: overview, contentType: 'image/png' });

  await page.goto(`${demo.consoleUrl}#/blocks`);
  await expect(page.getByTestId('block-row').first()).toBeVisible();
  const before = await maxShown(page);
  const t0 = Date.now();
  // Only the subscription adds rows to this page (no polling): a higher row is a live block.
  await expect
    .poll(() => maxShown(page), { timeout: 3 * BLOCK_TIME_MS, intervals: [100] })
    .toBeGreaterThan(before);
  await expect(page.getByTestId('live-count')).toContainText('arrived live');
  info.annotations.push({
    type: 'live block after',
    description: `${Date.now() - t0} ms (block time ${BLOCK_TIME_MS} ms)`,
  });
});

test('block detail lists the entries and shows the miner signature as valid', async ({
  page,
  demo,
}, info) => {
  const node = demo.nodes[0]!;
  const content = `browser test entry ${Date.now()}`;
  const posted = await fetch(`${node.httpUrl}/entries`, {
    method: 'POST',
    headers: await nodeApiHeaders(node.cookieFile),
    body: JSON.stringify({ content, metadata: [['source', 'playwright']] }),
  });
  expect(posted.ok).toBe(true);
  const { id } = (await posted.json()) as { id: string };
  // The entry is mined, reported and indexed into a block of the canonical chain. With three
  // miners its first block may lose a fork race (its entry then returns to a mempool and is
  // mined again), so the block is looked up afresh until its row can be opened from the list.
  let blockHash: string | undefined;
  await expect(async () => {
    blockHash = await canonicalBlockOfEntry(demo, id);
    // A retry reloads the list (a hash-only goto to the same URL would not re-query it).
    if (page.url().endsWith('#/blocks')) await page.reload();
    else await page.goto(`${demo.consoleUrl}#/blocks`);
    await page
      .locator(`[data-testid=block-row][data-hash="${blockHash}"] a`)
      .first()
      .click({ timeout: 5_000 });
  }).toPass({ timeout: 90_000, intervals: [1_000] });
  await expect(page.getByTestId('block-hash')).toHaveText(blockHash!);
  await expect(page.getByTestId('signature-status')).toHaveText('valid');
  await expect(page.getByTestId('signature-status')).toHaveAttribute('data-valid', 'true');
  await expect(page.getByTestId('hash-check')).toHaveText('yes');
  await expect(page.getByTestId('entry-row').filter({ hasText: content })).toHaveCount(1);
  const detail = path.join(SCREENSHOT_DIR, 'block-detail.png');
  await page.screenshot({ path: detail, fullPage: true });
  await info.attach('block detail', { path: detail, contentType: 'image/png' });
});

test('a block whose stored signature was tampered with shows as invalid', async ({ page, demo }) => {
  await waitForIndexedHeight(demo, 3);
  const db = await openDemoIndex(demo);
  try {
    const victim = await db.block.findFirst({ where: { canonical: true, height: 2 } });
    expect(victim).toBeTruthy();
    // Flip one bit of the last byte of S: still well-formed hex of the right length, no longer valid.
    const sig = victim!.signature;
    const last = Number.parseInt(sig.slice(-2), 16) ^ 1;
    const tampered = `${sig.slice(0, -2)}${last.toString(16).padStart(2, '0')}`;
    await db.block.update({ where: { hash: victim!.hash }, data: { signature: tampered } });

    await page.goto(`${demo.consoleUrl}#/block/${victim!.hash}`);
    await expect(page.getByTestId('signature-status')).toHaveText('invalid');
    await expect(page.getByTestId('signature-status')).toHaveAttribute('data-valid', 'false');
    await expect(page.getByTestId('signature-reason')).toContainText('signature');
    // The header still hashes to the block hash: only the signature is wrong.
    await expect(page.getByTestId('hash-check')).toHaveText('yes');
  } finally {
    await db.$disconnect();
  }
});

test('an admin action works with the token and is refused without one', async ({ page, demo }) => {
  const node = demo.nodes[0]!;
  await page.goto(`${demo.consoleUrl}#/admin/${node.peerId}`);
  await expect(page.getByTestId('admin-node')).toHaveValue(node.peerId);
  const result = page.getByTestId('admin-result');

  await page.getByTestId('token-clear').click();
  await page.getByTestId('action-syncMempool').click();
  await expect(result).toHaveAttribute('data-ok', 'false');
  await expect(result).toHaveAttribute('data-code', /^(FORBIDDEN|UNAUTHENTICATED)$/);

  await page.getByTestId('token-input').fill(demo.adminToken);
  await page.getByTestId('token-save').click();
  await expect(page.getByTestId('token-state')).toContainText('token set');
  await page.getByTestId('action-syncMempool').click();
  await expect(result).toHaveAttribute('data-ok', 'true', { timeout: 40_000 });
  await expect(result).not.toHaveAttribute('data-pending', 'true', { timeout: 40_000 });
  await expect(result).toContainText('"peerId"');
  // The token survives a reload of the tab (sessionStorage), and is not in the page's URL.
  await page.reload();
  await expect(page.getByTestId('token-state')).toContainText('token set');
  expect(page.url()).not.toContain(demo.adminToken);
});

test('the live page recovers when the gateway is killed and restarted', async ({ page, demo }) => {
  await page.goto(`${demo.consoleUrl}#/blocks`);
  const conn = page.getByTestId('connection');
  await expect(conn).toHaveAttribute('data-state', 'connected');
  await expect(page.getByTestId('block-row').first()).toBeVisible();

  await demo.gateway.kill();
  await expect(conn).toHaveAttribute('data-state', 'reconnecting');
  await expect(conn).toHaveText(/reconnecting/);
  await demo.gateway.start();
  await expect(conn).toHaveAttribute('data-state', 'connected', { timeout: 30_000 });

  // After the reconnect the page re-reads the chain; then a new block must arrive live again.
  await expect
    .poll(async () => {
      const head = await indexedHeight(demo);
      return head !== undefined && (await maxShown(page)) >= head;
    })
    .toBe(true);
  const before = await maxShown(page);
  await expect
    .poll(() => maxShown(page), { timeout: 3 * BLOCK_TIME_MS, intervals: [100] })
    .toBeGreaterThan(before);
});

test('the models page shows the versions the nodes train together, live', async ({ page, demo }, info) => {
  await page.goto(`${demo.consoleUrl}#/models`);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected');
  const rows = page.getByTestId('model-row');
  // The page was loaded before this count: a higher one arrived through the subscription (or
  // a re-read). Each round trains on all three nodes' slices and is committed on the chain.
  const before = await rows.count();
  await expect.poll(() => rows.count(), { timeout: 6 * FL_EVERY_MS }).toBeGreaterThan(before);
  const newest = rows.first();
  // The first round may start before the last node has connected; later ones have all three.
  expect(Number(await newest.locator('td').nth(5).textContent())).toBeGreaterThanOrEqual(2);
  const accuracy = Number(await newest.locator('td').nth(3).textContent());
  expect(accuracy).toBeGreaterThan(0.5);
  await expect(page.getByTestId('chart-accuracy')).toBeVisible();
  await expect(page.getByTestId('chart-accuracy')).toContainText('round');
  const models = path.join(SCREENSHOT_DIR, 'models.png');
  await page.screenshot({ path: models, fullPage: true });
  await info.attach('models', { path: models, contentType: 'image/png' });
});

test('the members page picks its node as the admin page does and lists that node’s roster', async ({
  page,
  demo,
}) => {
  // The token is set once for the tab, on the Admin page.
  await page.goto(`${demo.consoleUrl}#/admin`);
  await page.getByTestId('token-input').fill(demo.adminToken);
  await page.getByTestId('token-save').click();
  // No node in the route: the first one reported is chosen, and its roster shown.
  await page.goto(`${demo.consoleUrl}#/members`);
  const select = page.getByTestId('members-node');
  await expect(select.locator('option')).toHaveCount(demo.nodes.length, { timeout: 40_000 });
  await expect(select).not.toHaveValue('');
  const rows = page.getByTestId('member-row');
  await expect(rows.first()).toBeVisible({ timeout: 40_000 });
  // A node named in the route is kept and its roster read: every demo node is on it.
  const last = demo.nodes.at(-1)!;
  await page.goto(`${demo.consoleUrl}#/members/${last.peerId}`);
  await expect(page.getByTestId('members-node')).toHaveValue(last.peerId);
  await expect(page.getByTestId('member-state').first()).toHaveText(/member|expired|revoked/, {
    timeout: 40_000,
  });
  // Choosing another node reads that node's roster.
  const first = demo.nodes[0]!;
  await page.getByTestId('members-node').selectOption(first.peerId);
  await expect(page.getByTestId('members-node')).toHaveValue(first.peerId);
  await expect(page.getByTestId('member-row').first()).toBeVisible({ timeout: 40_000 });
});
