/**
 * Issue 14 item 5: the console's Messages page shows each node's delivery figures, which reach
 * the index only as metadata in the nodes' stats reports (every 5 s in this cluster). Real
 * messages between the demo's real nodes (their HTTP API); the page must show, for each node,
 * the figures that node itself has (GET /status), follow new ones live over the messagingStats
 * subscription, never show a message's text, and show nothing without a token.
 */

import { nodeApiHeaders } from '../cluster/node-process.ts';
import type { DemoNode } from '../demo/start.ts';
import { expect, test } from './fixtures.ts';

interface Figures {
  sent: number;
  delivered: number;
  pending: number;
  latency?: { p50Ms: number; p99Ms: number; samples: number };
  mailbox?: { items: number; bytes: number; capacityBytes: number };
}

const figuresOf = async (n: DemoNode): Promise<Figures> => {
  const res = await fetch(`${n.httpUrl}/status`);
  expect(res.ok).toBe(true);
  return ((await res.json()) as { messaging: Figures }).messaging;
};

const send = async (from: DemoNode, to: DemoNode, text: string): Promise<void> => {
  const res = await fetch(`${from.httpUrl}/messages`, {
    method: 'POST',
    headers: await nodeApiHeaders(from.cookieFile),
    body: JSON.stringify({ to: to.name, text }),
  });
  expect(res.status, await res.clone().text()).toBe(200);
};

test('the Messages page shows each node’s delivery figures as the node has them, live, and no text', async ({
  page,
  demo,
}) => {
  const [a, b, c] = demo.nodes as [DemoNode, DemoNode, DemoNode];
  const secret = `the eagle lands at ${Date.now()}`;
  for (let i = 0; i < 3; i++) await send(a, b, `${secret} #${i}`);
  await send(b, c, secret);
  // Every receipt is back before the figures are compared (a node's own view).
  await expect(async () => {
    const f = await figuresOf(a);
    expect([f.sent, f.delivered, f.pending]).toEqual([3, 3, 0]);
    expect((await figuresOf(b)).delivered).toBe(1);
  }).toPass({ timeout: 30_000 });

  // Without a token the page shows no figures.
  await page.goto(`${demo.consoleUrl}#/messages`);
  await expect(page.getByTestId('messages-need-token')).toBeVisible();
  await page.goto(`${demo.consoleUrl}#/admin`);
  await page.getByTestId('token-input').fill(demo.adminToken);
  await page.getByTestId('token-save').click();
  await page.goto(`${demo.consoleUrl}#/messages`);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected');

  const row = (n: DemoNode) => page.locator(`[data-testid=messaging-row][data-node="${n.peerId}"]`);
  const cell = (n: DemoNode, id: string) => row(n).getByTestId(id);
  // The next stats report of each node carries its figures (5 s period); the page follows.
  await expect(cell(a, 'msg-delivered')).toHaveText('3', { timeout: 30_000 });
  await expect(cell(b, 'msg-delivered')).toHaveText('1', { timeout: 30_000 });
  for (const [n, sent, delivered] of [
    [a, 3, 3],
    [b, 1, 1],
    [c, 0, 0],
  ] as const) {
    const own = await figuresOf(n);
    expect([own.sent, own.delivered]).toEqual([sent, delivered]);
    await expect(cell(n, 'msg-sent')).toHaveText(String(sent));
    await expect(cell(n, 'msg-delivered')).toHaveText(String(delivered));
    await expect(cell(n, 'msg-pending')).toHaveText(String(own.pending));
    // Latency: the node's own nearest-rank p50/p99 over its receipts (none yet on node-3).
    await expect(cell(n, 'msg-p50')).toHaveAttribute('data-ms', own.latency ? String(own.latency.p50Ms) : '');
    await expect(cell(n, 'msg-p99')).toHaveAttribute('data-ms', own.latency ? String(own.latency.p99Ms) : '');
    // Every demo member holds relay and archive: each is a mailbox, holding what it reported.
    expect(own.mailbox).toBeDefined();
    await expect(cell(n, 'msg-mailbox')).toHaveAttribute('data-items', String(own.mailbox!.items));
    await expect(cell(n, 'msg-mailbox')).toContainText('held');
  }
  expect((await figuresOf(a)).latency!.samples).toBe(3);

  // Live: a new message shows up through the subscription, without reloading the page.
  await page.evaluate(() => {
    (window as unknown as { stayed: boolean }).stayed = true;
  });
  await send(c, a, secret);
  await expect(cell(c, 'msg-delivered')).toHaveText('1', { timeout: 30_000 });
  await expect(cell(c, 'msg-sent')).toHaveText('1');
  expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
  // The text never reached the page (nor the gateway it reads from).
  expect(await page.content()).not.toContain('eagle');
});

test('sending as a node from the Admin page is refused by a node that does not allow it', async ({
  page,
  demo,
}) => {
  const [a, b] = demo.nodes as [DemoNode, DemoNode];
  const before = await figuresOf(a);
  await page.goto(`${demo.consoleUrl}#/admin/${a.peerId}`);
  await page.getByTestId('token-input').fill(demo.adminToken);
  await page.getByTestId('token-save').click();
  await page.getByTestId('message-to').fill(b.name);
  await page.getByTestId('message-text').fill('sent by an operator');
  await page.getByTestId('action-sendMessage').click();
  const result = page.getByTestId('admin-result');
  // The demo's nodes run without --allow-operator-messages: the node's signed refusal, as it came.
  await expect(result).toHaveAttribute('data-code', 'COMMAND_REFUSED');
  await expect(result).toContainText('--allow-operator-messages');
  const after = await figuresOf(a);
  expect([after.sent, after.pending]).toEqual([before.sent, before.pending]);
});
