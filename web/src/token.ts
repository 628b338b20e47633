/**
 * The admin token lives in sessionStorage: it survives reloads of this tab but not the tab
 * itself, and is only ever sent in the Authorization header (or graphql-ws connectionParams)
 * of the gateway it was entered for. A console pointed at another gateway (`?gateway=`, a
 * changed config.json) asks before the token goes there: a crafted link must not be able to
 * collect it.
 */
const KEY = 'cairn.adminToken';
const ORIGIN_KEY = 'cairn.adminTokenOrigin';
const APPROVED_KEY = 'cairn.adminTokenApproved';

export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

type Ask = (question: string) => boolean;

const session = (): TokenStore | undefined => {
  try {
    return globalThis.sessionStorage;
  } catch {
    return undefined;
  }
};

/** Origins refused in this page's life: asked once, not on every request. */
const declined = new Set<string>();

/**
 * The token to send to `origin`: the stored one when it was entered for that origin or the
 * user has agreed to send it there; '' otherwise.
 */
export function getToken(
  origin: string,
  ask: Ask = (q) => globalThis.confirm?.(q) ?? false,
  store: TokenStore | undefined = session(),
): string {
  const token = store?.getItem(KEY) ?? '';
  if (!token) return '';
  const home = store?.getItem(ORIGIN_KEY) ?? '';
  if (origin === home) return token;
  const approved: string[] = JSON.parse(store?.getItem(APPROVED_KEY) ?? '[]');
  if (approved.includes(origin)) return token;
  if (declined.has(origin)) return '';
  if (ask(`Send the admin token you entered for ${home || 'another gateway'} to ${origin}?`)) {
    store?.setItem(APPROVED_KEY, JSON.stringify([...approved, origin]));
    return token;
  }
  declined.add(origin);
  return '';
}

/** Stores the token for the gateway at `origin` ('' forgets it). */
export function setToken(token: string, origin: string, store: TokenStore | undefined = session()): void {
  const t = token.trim();
  store?.removeItem(APPROVED_KEY);
  declined.clear();
  if (t) {
    store?.setItem(KEY, t);
    store?.setItem(ORIGIN_KEY, origin);
  } else {
    store?.removeItem(KEY);
    store?.removeItem(ORIGIN_KEY);
  }
}
