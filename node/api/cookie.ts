/**
 * The node API's token, Bitcoin Core's `.cookie` scheme: a random secret written to the data dir
 * at every start (mode 0600), so whoever can read the data dir (the operator, the test harness,
 * a job worker on the same account) can call the API, and a web page or another local user
 * cannot. A new one per start means a leaked token dies with the process.
 */
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const COOKIE_FILE = '.cookie';
/** 32 random bytes, hex: as strong as the node's own keys. */
const TOKEN_BYTES = 32;

export interface ApiCookie {
  readonly token: string;
  readonly file: string;
}

export const cookiePath = (dataDir: string): string => path.join(dataDir, COOKIE_FILE);

/** Writes a fresh cookie (atomically: a reader never sees half a token) and returns it. */
export async function createApiCookie(dataDir: string): Promise<ApiCookie> {
  const file = cookiePath(dataDir);
  const token = randomBytes(TOKEN_BYTES).toString('hex');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${token}\n`, { mode: 0o600 });
  // The mode given to writeFile is masked by the umask and ignored for an existing file.
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return { token, file };
}

/** Removes the cookie at a clean stop, as bitcoind does (a stale one would be useless anyway). */
export async function removeApiCookie(cookie: ApiCookie): Promise<void> {
  await rm(cookie.file, { force: true });
}

/** The token in a cookie file, or undefined when there is none (a node that is not running). */
export async function readApiCookie(file: string): Promise<string | undefined> {
  try {
    const token = (await readFile(file, 'utf8')).trim();
    return token || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
