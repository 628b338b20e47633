/**
 * Links built from data (hashes, node ids, a `?gateway=` URL) must never become script URLs:
 * `javascript:`, `data:`, `vbscript:` and anything else but http(s), mailto and in-page `#`
 * routes is refused. The URL parser decides the scheme (it strips tabs and newlines, so
 * `java\tscript:` is caught), not a string prefix.
 */
const SAFE_SCHEMES = new Set(['http:', 'https:', 'mailto:']);

/** The href to use, or undefined when it must not be a link. */
export function safeHref(
  raw: string,
  base: string = globalThis.location?.href ?? 'http://console.invalid/',
): string | undefined {
  const s = raw.trim();
  if (s.startsWith('#')) return s;
  try {
    return SAFE_SCHEMES.has(new URL(s, base).protocol) ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Attributes that navigate or load: the DOM builder passes their values through safeHref. */
export const URL_ATTRIBUTES: ReadonlySet<string> = new Set([
  'href',
  'src',
  'action',
  'formaction',
  'xlink:href',
]);
