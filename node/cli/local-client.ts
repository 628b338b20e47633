/**
 * What the subcommands that talk to the node running on a data dir share (`classify`, `msg`):
 * the `--data-dir DIR [--json] [--help]` arguments, and the running node's API URL with the data
 * dir's cookie, so they answer exactly what the local API answers.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { cookiePath, readApiCookie } from '../api/cookie.ts';
import { NODE_DEFAULTS } from '../options.ts';
import { readRunningNode } from './node-file.ts';

export interface LocalClientArgs {
  readonly dataDir: string;
  readonly json: boolean;
  readonly help: boolean;
  readonly positionals: readonly string[];
}

/** Parses the shared arguments; throws the parser's error (a usage error) on an unknown one. */
export function parseLocalClientArgs(argv: readonly string[]): LocalClientArgs {
  const { values, positionals } = parseArgs({
    args: [...argv],
    options: {
      'data-dir': { type: 'string', default: NODE_DEFAULTS.dataDir },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  return {
    dataDir: path.resolve(values['data-dir'] as string),
    json: values.json as boolean,
    help: values.help as boolean,
    positionals,
  };
}

/** The running node's API and token, or the message to print when no node runs on `dataDir`. */
export async function connectToRunningNode(
  dataDir: string,
): Promise<{ httpUrl: string; token: string } | { error: string }> {
  const running = await readRunningNode(dataDir);
  const token = running && (await readApiCookie(cookiePath(dataDir)));
  if (!running || !token)
    return {
      error: `no node is running on ${dataDir}; start it first (npm run node -- --data-dir ${dataDir})`,
    };
  return { httpUrl: running.httpUrl, token };
}
