/**
 * Issue 16: the console shows each node's ε spent against its budget over rounds. The demo
 * cluster of the fixture runs a real record-level DP-SGD round every FL_EVERY_MS on its three
 * nodes; each node charges its own ledger and its stats reports carry it to the index. The box
 * must show, for every node, the figures of that node's own ledger (GET /fl/privacy) at the
 * round its last report was sent, not just something non-empty.
 */
import { nodeApiHeaders } from '../cluster/node-process.ts';
import { expect, FL_EVERY_MS, test } from './fixtures.ts';

interface Ledger {
  mode: string;
  budgetEpsilon: number;
  rounds: number;
  history: { epsilonTotal: number }[];
}

test('the privacy box shows each node’s ε spent against its budget, as its ledger has it', async ({
  page,
  demo,
}) => {
  const ledgerOf = async (node: (typeof demo.nodes)[number]): Promise<Ledger> => {
    const res = await fetch(`${node.httpUrl}/fl/privacy`, { headers: await nodeApiHeaders(node.cookieFile) });
    expect(res.ok).toBe(true);
    return (await res.json()) as Ledger;
  };
  await page.goto(`${demo.consoleUrl}#/models`);
  await expect(page.getByTestId('connection')).toHaveAttribute('data-state', 'connected');
  const box = page.getByTestId('privacy-box');
  const row = (peerId: string) => box.locator(`[data-testid=privacy-row][data-node="${peerId}"]`);
  // Every node has been charged for at least one round and has reported it; the page re-reads
  // the box on every new model version (a reload keeps the wait short if one was missed).
  await expect(async () => {
    for (const n of demo.nodes) {
      const cells = row(n.peerId).locator('td');
      if (Number(await cells.nth(5).textContent({ timeout: 1_000 })) < 1) {
        await page.reload();
        throw new Error(`${n.name} has not reported a charged round yet`);
      }
    }
  }).toPass({ timeout: 8 * FL_EVERY_MS, intervals: [2_000] });

  for (const n of demo.nodes) {
    // One read of the whole row: the box re-renders when a version arrives.
    const shown = await row(n.peerId).evaluate((tr) => {
      const td = [...tr.querySelectorAll('td')].map((c) => c.textContent ?? '');
      const bar = tr.querySelector('progress')!;
      return { td, max: bar.getAttribute('max'), value: Number(bar.getAttribute('value')) };
    });
    const shownRounds = Number(shown.td[5]);
    const ledger = await ledgerOf(n);
    expect(ledger.mode).toBe('record');
    expect(shown.td[1]).toBe('record');
    // The report may be a round behind the ledger, never ahead of it.
    expect(shownRounds).toBeGreaterThanOrEqual(1);
    expect(shownRounds).toBeLessThanOrEqual(ledger.rounds);
    // ε shown is the node's own total after the rounds shown, and within its budget (ε = 3).
    const spent = ledger.history[shownRounds - 1]!.epsilonTotal;
    expect(spent).toBeGreaterThan(0);
    expect(spent).toBeLessThanOrEqual(ledger.budgetEpsilon);
    expect(shown.td[2]).toBe(spent.toFixed(3));
    expect(shown.td[3]).toBe(String(ledger.budgetEpsilon));
    expect(shown.max).toBe(String(ledger.budgetEpsilon));
    expect(shown.value).toBeCloseTo(spent, 9);
  }
  // ε over rounds: one chart per node that has a history.
  await expect(box.getByTestId('chart-privacy')).toHaveCount(demo.nodes.length);
  for (const chart of await box.getByTestId('chart-privacy').all())
    expect(Number(await chart.getAttribute('data-points'))).toBeGreaterThanOrEqual(1);
});
