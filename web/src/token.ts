/**
 * The admin token lives in sessionStorage: it survives reloads of this tab but not the tab
 * itself, and is never sent anywhere but the gateway's Authorization header.
 */
const KEY = 'cairn.adminToken';

export function getToken(): string {
  try {
    return sessionStorage.getItem(KEY) ?? '';
  } catch {
    return '';
  }
}

export function setToken(token: string): void {
  const t = token.trim();
  if (t) sessionStorage.setItem(KEY, t);
  else sessionStorage.removeItem(KEY);
}
