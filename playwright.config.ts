import { defineConfig } from '@playwright/test';

/**
 * Browser tests (e2e/browser) in Debian's Chromium: Playwright never downloads a browser here.
 * One worker: the specs share one demo cluster (started by the worker fixture in
 * e2e/browser/fixtures.ts) and some of them stop its gateway.
 * Screenshots kept on purpose land in test-results/screenshots/; failure artifacts in
 * test-results/playwright/.
 */
export default defineConfig({
  testDir: 'e2e/browser',
  testMatch: '*.spec.ts',
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 120_000,
  expect: { timeout: 20_000 },
  outputDir: 'test-results/playwright',
  reporter: [['list']],
  use: {
    headless: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
    },
  },
});
