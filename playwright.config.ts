import { defineConfig } from '@playwright/test';
import { CHROMIUM_ARGS, chromiumExecutable } from './e2e/suite/browser.ts';

/**
 * Browser tests (e2e/browser) in an installed Chromium or Chrome (CHROMIUM_PATH, else the usual
 * install locations: e2e/suite/browser.ts); Playwright never downloads a browser here.
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
      executablePath: chromiumExecutable(),
      args: [...CHROMIUM_ARGS],
    },
  },
});
