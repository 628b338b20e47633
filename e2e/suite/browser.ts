/**
 * Which Chromium the browser tests drive. Playwright must never download a browser build (no
 * traffic leaves the machine), so the suite uses one that is already installed: a configured
 * path, else the usual install locations of Chromium or Chrome on Linux, macOS and Windows.
 * Pure apart from the file-system probe, so the search order is unit-tested.
 */

import path from 'node:path';
import { isExecutable as isExecutableFile } from '../cluster/children.ts';

/** Set to the browser executable to use; the suite sets it for its children once found. */
export const CHROMIUM_PATH_ENV = 'CHROMIUM_PATH';

/** The flags every launch uses: no sandbox as root, and no background traffic to Google. */
export const CHROMIUM_ARGS: readonly string[] = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Install locations to try, most specific first. */
export function chromiumCandidates(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] {
  if (platform === 'darwin') {
    const apps = ['/Applications', path.posix.join(env.HOME ?? '~', 'Applications')];
    return apps.flatMap((dir) => [
      `${dir}/Chromium.app/Contents/MacOS/Chromium`,
      `${dir}/Google Chrome.app/Contents/MacOS/Google Chrome`,
      `${dir}/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing`,
    ]);
  }
  if (platform === 'win32') {
    const roots = [env.LOCALAPPDATA, env.PROGRAMFILES, env['PROGRAMFILES(X86)']].filter(
      (r): r is string => !!r,
    );
    return roots.flatMap((r) => [
      path.win32.join(r, 'Chromium', 'Application', 'chrome.exe'),
      path.win32.join(r, 'Google', 'Chrome', 'Application', 'chrome.exe'),
    ]);
  }
  return [
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
    '/usr/bin/google-chrome',
    '/usr/bin/google-chrome-stable',
    '/opt/google/chrome/chrome',
    '/snap/bin/chromium',
  ];
}

export type ChromiumLookup =
  | { readonly found: true; readonly path: string; readonly source: 'env' | 'system' }
  | { readonly found: false; readonly reason: string };

/**
 * The browser to use. A `CHROMIUM_PATH` that does not point at an executable is an error, not
 * a reason to pick another browser silently.
 */
export function findChromium(
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
  isExecutable: (p: string) => boolean = isExecutableFile,
): ChromiumLookup {
  const configured = env[CHROMIUM_PATH_ENV];
  if (configured) {
    return isExecutable(configured)
      ? { found: true, path: configured, source: 'env' }
      : { found: false, reason: `${CHROMIUM_PATH_ENV}=${configured} is not an executable file` };
  }
  const hit = chromiumCandidates(platform, env).find(isExecutable);
  return hit
    ? { found: true, path: hit, source: 'system' }
    : { found: false, reason: 'no Chromium or Chrome is installed in the usual places' };
}

export const HOW_TO_GET_CHROMIUM = [
  'The browser tests need Chromium or Chrome (Playwright never downloads one here). Any of these works:',
  '  • Debian/Ubuntu:  sudo apt-get install chromium        (npm test does this itself when run as root)',
  '  • macOS:          brew install --cask chromium          (or install Google Chrome)',
  `  • any other:      ${CHROMIUM_PATH_ENV}=/path/to/chromium npm test`,
].join('\n');

/** For playwright.config.ts: the executable, or the one clear message. */
export function chromiumExecutable(): string {
  const r = findChromium();
  if (r.found) return r.path;
  throw new Error(`${r.reason}.\n${HOW_TO_GET_CHROMIUM}`);
}
