/**
 * The console's Content-Security-Policy, one definition for every server of the bundle (the
 * demo's console server, `vite preview`). Scripts and styles come only from the bundle itself:
 * no inline script, no eval, no `javascript:` URL can run even if data slipped into the page.
 * The page may talk only to itself and to the gateway it is configured for (HTTP and its
 * graphql-ws twin), so a crafted `?gateway=` cannot make it send anything elsewhere unless the
 * server lists that origin too (`extraConnect`).
 */

/** `http://h:4000/graphql` → [`http://h:4000`, `ws://h:4000`] (https → wss). */
export function gatewaySources(gatewayUrl: string): string[] {
  const u = new URL(gatewayUrl);
  const ws = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return [u.origin, `${ws}//${u.host}`];
}

export function consoleCsp(
  o: { gateways?: readonly string[]; extraConnect?: readonly string[] } = {},
): string {
  const connect = ["'self'", ...(o.gateways ?? []).flatMap(gatewaySources), ...(o.extraConnect ?? [])];
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    // The favicon is `data:,`; the QR code is inline SVG markup, not an image URL.
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src ${[...new Set(connect)].join(' ')}`,
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
}
