import { BLOCK_TIME_MS, expect, test, waitForIndexedHeight } from './fixtures.ts';

test('an entry submitted through the console arrives live on the Knowledge page and a search finds it', async ({
  page,
  context,
  demo,
}, info) => {
  await waitForIndexedHeight(demo, 1);
  // A word no other entry has, with an umlaut: the search folds it ("MUHLE…" finds "Mühle…").
  const word = `Mühle${Date.now().toString(36)}`;
  const content = `Die alte ${word} <b>am</b> Bach`;

  // Tab 1 follows a saved search for the word.
  await page.goto(`${demo.consoleUrl}#/knowledge`);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected');
  await page.getByTestId('knowledge-query').fill(word);
  await page.getByTestId('knowledge-follow').click();
  await expect(page.getByTestId('knowledge-follow-state')).toContainText(word);
  await expect(page.getByTestId('knowledge-live-empty')).toBeVisible();

  // Tab 2 submits the entry through the Admin page.
  const admin = await context.newPage();
  const node = demo.nodes[0]!;
  await admin.goto(`${demo.consoleUrl}#/admin/${node.peerId}`);
  await admin.getByTestId('token-input').fill(demo.adminToken);
  await admin.getByTestId('token-save').click();
  await admin.getByTestId('entry-content').fill(content);
  const t0 = Date.now();
  await admin.getByTestId('action-submitEntry').click();
  await expect(admin.getByTestId('admin-result')).toContainText('"accepted": true', { timeout: 20_000 });

  // Mined, indexed and pushed by newEntry within three block times of the submission.
  const live = page.getByTestId('knowledge-live').getByTestId('knowledge-result');
  await expect(live).toHaveCount(1, { timeout: Math.max(1, 3 * BLOCK_TIME_MS - (Date.now() - t0)) });
  info.annotations.push({
    type: 'live entry after',
    description: `${Date.now() - t0} ms (block time ${BLOCK_TIME_MS} ms)`,
  });
  // Shown as text (the <b> stays literal), the word marked.
  await expect(live.getByTestId('knowledge-content')).toHaveText(content);
  await expect(live.locator('mark')).toHaveText(word);
  await expect(live.locator('b')).toHaveCount(0);

  // A search by the folded, upper-case spelling finds it, with links to its block and author.
  await page.getByTestId('knowledge-query').fill(word.toUpperCase().replace('Ü', 'U'));
  await page.getByTestId('knowledge-search').click();
  const hit = page.getByTestId('knowledge-results').getByTestId('knowledge-result');
  await expect(hit).toHaveCount(1);
  await expect(hit.locator('mark')).toHaveText(word);
  await expect(hit.getByTestId('knowledge-block')).toHaveAttribute('href', /^#\/block\/[0-9a-f]{64}$/);
  await expect(hit.getByTestId('knowledge-author')).toHaveAttribute('href', `#/nodes/${node.peerId}`);
  await hit.getByTestId('knowledge-block').click();
  await expect(page.getByText(content)).toBeVisible();

  // A query that matches nothing says so.
  await page.goto(`${demo.consoleUrl}#/knowledge`);
  await page.getByTestId('knowledge-unfollow').click();
  await page.getByTestId('knowledge-query').fill('xyzzyqq');
  await page.getByTestId('knowledge-search').click();
  await expect(page.getByTestId('knowledge-empty')).toBeVisible();
});
