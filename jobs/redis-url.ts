/**
 * Redis URLs: defaults, the password from the environment, redaction for logs. Apart from
 * redis.ts so a node without --redis never loads ioredis (~22 MB of RSS) to parse its options.
 */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const redisUrl = (url = process.env.REDIS_URL) => url || DEFAULT_REDIS_URL;

/**
 * `url` with the password from `password` (CAIRN_REDIS_PASSWORD) when it names none. A command
 * line is readable by every local user (`ps`), a process's environment only by its owner, so a
 * deployment passes `--redis redis://node@host` and the password in the environment.
 */
export function withRedisPassword(url: string, password = process.env.CAIRN_REDIS_PASSWORD): string {
  if (!password) return url;
  try {
    const u = new URL(url);
    if (u.password) return url;
    u.password = password;
    return u.toString();
  } catch {
    return url;
  }
}

/** A URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}
