import { type Client, createClient } from 'graphql-ws';
import type { GatewayEndpoints } from './config.ts';
import { getToken } from './token.ts';

export type ConnState = 'connecting' | 'connected' | 'reconnecting';

/** A GraphQL error answer; `code` is `extensions.code` of the first error (e.g. FORBIDDEN). */
export class GqlError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = 'GqlError';
  }
}

interface GqlResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

interface LiveSubscription {
  readonly query: string;
  readonly variables: Record<string, unknown>;
  readonly onData: (data: unknown) => void;
  dispose: (() => void) | undefined;
}

/** Reconnect delays: 0.5 s doubling to 8 s, with jitter so many consoles do not stampede. */
export function backoffMs(retries: number): number {
  const base = Math.min(8000, 500 * 2 ** retries);
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/**
 * The console's one link to the gateway: HTTP POST for queries and mutations, one graphql-ws
 * socket for every live view. The socket is eager (the connection indicator means something
 * even on pages without subscriptions) and retries forever; graphql-ws re-subscribes the active
 * subscriptions itself after a reconnect, and views re-fetch their queries through onReconnect.
 * Close codes graphql-ws treats as fatal (e.g. 4500 from a gateway shutting down) end its retry
 * loop, so the client is then recreated and the subscriptions moved onto it.
 */
export class Gateway {
  state: ConnState = 'connecting';
  private client: Client | undefined;
  private everConnected = false;
  private readonly stateListeners = new Set<(s: ConnState) => void>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly subs = new Set<LiveSubscription>();
  private generation = 0;

  constructor(readonly endpoints: GatewayEndpoints) {
    this.openClient();
  }

  /** The stored token, if it may go to this gateway's origin (token.ts asks once otherwise). */
  token(): string {
    return getToken(new URL(this.endpoints.http).origin);
  }

  /**
   * The stored token changed (Admin page): the socket authenticated with the old one at
   * connection_init, so open a new one. Its subscriptions attach again and views re-read, as after
   * any reconnect; without this a token set after the page loaded never reached subscriptions
   * that need it (messagingStats, nodeStatus with peers), which the gateway refused on the
   * anonymous socket.
   */
  tokenChanged(): void {
    this.recreate();
  }

  onState(fn: (s: ConnState) => void): () => void {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  /** Called each time the socket is connected again after having been lost. */
  onReconnect(fn: () => void): () => void {
    this.reconnectListeners.add(fn);
    return () => this.reconnectListeners.delete(fn);
  }

  async query<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
    };
    // Sent on reads too when stored: a gateway may require a viewer token for reads (compose does).
    const token = this.token();
    if (token) headers.authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await fetch(this.endpoints.http, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
      });
    } catch (err) {
      throw new GqlError(`gateway unreachable (${(err as Error).message})`, 'UNREACHABLE', undefined);
    }
    let body: GqlResponse<T>;
    try {
      body = (await res.json()) as GqlResponse<T>;
    } catch {
      throw new GqlError(`gateway answered HTTP ${res.status} without JSON`, undefined, res.status);
    }
    const first = body.errors?.[0];
    if (first) throw new GqlError(first.message, first.extensions?.code, res.status);
    if (!body.data)
      throw new GqlError(`gateway answered HTTP ${res.status} without data`, undefined, res.status);
    return body.data;
  }

  /** A live subscription that survives reconnects; returns its disposer. */
  subscribe<T>(query: string, variables: Record<string, unknown>, onData: (data: T) => void): () => void {
    const sub: LiveSubscription = {
      query,
      variables,
      onData: onData as (d: unknown) => void,
      dispose: undefined,
    };
    this.subs.add(sub);
    this.attach(sub);
    return () => {
      this.subs.delete(sub);
      sub.dispose?.();
    };
  }

  private setState(s: ConnState): void {
    if (s === this.state) return;
    this.state = s;
    for (const fn of this.stateListeners) fn(s);
  }

  private openClient(): void {
    const gen = ++this.generation;
    const lost = () => {
      if (gen === this.generation) this.setState(this.everConnected ? 'reconnecting' : 'connecting');
    };
    this.client = createClient({
      url: this.endpoints.ws,
      lazy: false,
      retryAttempts: Number.POSITIVE_INFINITY,
      shouldRetry: () => true,
      retryWait: (retries) => new Promise((r) => setTimeout(r, backoffMs(retries))),
      keepAlive: 10_000,
      connectionParams: () => {
        const token = this.token();
        return token ? { authorization: `Bearer ${token}` } : {};
      },
      on: {
        connected: () => {
          if (gen !== this.generation) return;
          const again = this.everConnected;
          this.everConnected = true;
          this.setState('connected');
          if (again) for (const fn of this.reconnectListeners) fn();
        },
        closed: lost,
        error: lost,
      },
      onNonLazyError: () => {
        // graphql-ws gave up (a close code it deems fatal): start over with a fresh client.
        if (gen !== this.generation) return;
        lost();
        setTimeout(() => this.recreate(), backoffMs(2));
      },
    });
    for (const sub of this.subs) this.attach(sub);
  }

  private recreate(): void {
    for (const sub of this.subs) sub.dispose?.();
    void this.client?.dispose();
    this.openClient();
  }

  private attach(sub: LiveSubscription): void {
    const client = this.client;
    if (!client) return;
    const gen = this.generation;
    sub.dispose = client.subscribe(
      { query: sub.query, variables: sub.variables },
      {
        next: (msg) => {
          if (msg.data) sub.onData(msg.data);
        },
        error: (err) => {
          // An operation-level error ends this subscription on this socket; try it again on the
          // next connection rather than leaving the view silently dead.
          console.warn('subscription error', err);
          const off = this.onReconnect(() => {
            off();
            // A recreated client (new generation) has attached every subscription already.
            if (gen === this.generation && this.subs.has(sub)) this.attach(sub);
          });
        },
        complete: () => {},
      },
    );
  }
}
