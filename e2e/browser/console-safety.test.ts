/**
 * The console's own defences, as plain functions (issue 13, item 7): links built from data never
 * become script URLs, a gateway override is an http(s) URL, and the stored token goes to another
 * gateway's origin only after the user agreed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { consoleCsp, gatewaySources } from '../../web/csp.ts';
import { normalizeGatewayUrl } from '../../web/src/config.ts';
import { safeHref } from '../../web/src/safe-href.ts';
import { getToken, setToken, type TokenStore } from '../../web/src/token.ts';

const BASE = 'http://127.0.0.1:5173/';

test('safeHref keeps routes and web links, refuses every script URL', () => {
  for (const ok of [
    '#/block/abc',
    '#/admin/12D3KooW',
    'http://127.0.0.1:4000/graphql',
    'https://x.example/a?b',
    'mailto:a@b.c',
  ])
    assert.equal(safeHref(ok, BASE), ok);
  assert.equal(safeHref('  #/nodes ', BASE), '#/nodes');
  for (const bad of [
    'javascript:alert(1)',
    'JavaScript:alert(1)',
    ' javascript:alert(1)',
    'java\tscript:alert(1)',
    'java\nscript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    'vbscript:msgbox(1)',
    'blob:http://127.0.0.1/x',
    'file:///etc/passwd',
  ])
    assert.equal(safeHref(bad, BASE), undefined, JSON.stringify(bad));
  // A relative path resolves against the page: same scheme, allowed.
  assert.equal(safeHref('graphql', BASE), 'graphql');
});

test('a ?gateway= override must be an http(s) or ws(s) URL', () => {
  assert.equal(normalizeGatewayUrl('ws://10.0.0.5:4000', BASE), 'http://10.0.0.5:4000/graphql');
  assert.equal(normalizeGatewayUrl('https://gw.example/', BASE), 'https://gw.example/graphql');
  for (const bad of ['javascript:alert(1)', 'data:,x', 'file:///x'])
    assert.throws(() => normalizeGatewayUrl(bad, BASE), /not http\(s\) or ws\(s\)/, bad);
});

class MemoryStore implements TokenStore {
  readonly m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

test('the stored token goes to its own gateway freely, to another origin only when the user agrees', () => {
  const store = new MemoryStore();
  const home = 'http://127.0.0.1:4000';
  const asked: string[] = [];
  const no = (q: string) => {
    asked.push(q);
    return false;
  };
  const yes = (q: string) => {
    asked.push(q);
    return true;
  };
  setToken(' secret ', home, store);
  assert.equal(getToken(home, no, store), 'secret');
  assert.deepEqual(asked, []);
  // A crafted ?gateway=https://evil.example: asked, declined, not asked again in this page.
  assert.equal(getToken('https://evil.example', no, store), '');
  assert.equal(getToken('https://evil.example', yes, store), '');
  assert.equal(asked.length, 1);
  assert.match(
    asked[0]!,
    /Send the admin token you entered for http:\/\/127\.0\.0\.1:4000 to https:\/\/evil\.example\?/,
  );
  // Another gateway the user means to use: asked once, then remembered for the tab.
  assert.equal(getToken('http://10.0.0.5:4000', yes, store), 'secret');
  assert.equal(getToken('http://10.0.0.5:4000', no, store), 'secret');
  assert.equal(asked.length, 2);
  // Entering the token again resets what was agreed.
  setToken('secret', home, store);
  assert.equal(getToken('http://10.0.0.5:4000', no, store), '');
  setToken('', home, store);
  assert.equal(getToken(home, yes, store), '');
});

test('the CSP names the gateway for HTTP and WebSocket and allows no inline script', () => {
  assert.deepEqual(gatewaySources('https://gw.example:8443/graphql'), [
    'https://gw.example:8443',
    'wss://gw.example:8443',
  ]);
  const csp = consoleCsp({ gateways: ['http://127.0.0.1:4000/graphql'] });
  assert.match(csp, /connect-src 'self' http:\/\/127\.0\.0\.1:4000 ws:\/\/127\.0\.0\.1:4000;/);
  assert.doesNotMatch(csp, /unsafe/);
});
