/**
 * Subscribers asking the same thing share one execution. A thousand dashboards on `newBlock`
 * used to run a thousand executions of the same document against the same row for every block
 * (pub/sub listener, event-row lookup, executor, promise chains, one result object each): the
 * server spent most of a block's fan-out building identical results. Here the first subscriber
 * of a (document, operation, variables, role) key runs the real subscribe, and every later one
 * with that key joins its stream: each event is executed once and the one result goes to each.
 *
 * Why sharing is safe: what a result holds depends only on the document, the variables and the
 * context, and the context's only per-caller part that resolvers read is the role (authScopes in
 * schema/builder.ts; requireViewer is per gateway). The key holds all of them, so a joiner gets
 * exactly what its own execution would have given, and authorization (decided by the role when
 * the first subscription started) is the one it would have met. Per-subscriber work stays per
 * subscriber: rate limits, subscription slots, socket caps and metrics run in their own hooks.
 *
 * Each joiner has its own bounded queue: a subscriber whose socket does not drain falls behind
 * only itself; past MAX_QUEUED results it is ended with an error (code SLOW_SUBSCRIBER) instead of
 * holding memory for ever. The upstream ends when its last subscriber leaves.
 */
import type { Plugin } from '@envelop/core';
import { GraphQLError, print } from 'graphql';
import { Counter, Gauge, type Registry } from 'prom-client';

/** Results a subscriber may fall behind its stream before it is ended. */
export const MAX_QUEUED = 256;

type Result = unknown;

interface Listener {
  readonly queue: Result[];
  wake: (() => void) | undefined;
  ended: boolean;
  error: GraphQLError | undefined;
}

/** One upstream subscription and the subscribers reading it. */
class SharedStream {
  readonly listeners = new Set<Listener>();
  private done = false;
  private readonly upstream: AsyncIterator<Result>;
  private readonly onIdle: () => void;
  private readonly onSlow: () => void;

  constructor(upstream: AsyncIterable<Result>, onIdle: () => void, onSlow: () => void) {
    this.upstream = upstream[Symbol.asyncIterator]();
    this.onIdle = onIdle;
    this.onSlow = onSlow;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const next = await this.upstream.next();
        if (next.done) break;
        for (const l of this.listeners) {
          if (l.queue.length >= MAX_QUEUED) {
            this.onSlow();
            this.end(
              l,
              new GraphQLError(`the subscriber fell ${MAX_QUEUED} results behind its stream and was ended`, {
                extensions: { code: 'SLOW_SUBSCRIBER' },
              }),
            );
            continue;
          }
          l.queue.push(next.value);
          this.wakeUp(l);
        }
      }
    } catch (err) {
      const error = err instanceof GraphQLError ? err : new GraphQLError('subscription source failed');
      for (const l of this.listeners) this.end(l, error);
    }
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onIdle();
    for (const l of this.listeners) this.end(l);
  }

  private wakeUp(l: Listener): void {
    const w = l.wake;
    l.wake = undefined;
    w?.();
  }

  private end(l: Listener, error?: GraphQLError): void {
    if (l.ended) return;
    l.ended = true;
    l.error = error;
    this.listeners.delete(l);
    this.wakeUp(l);
  }

  private leave(l: Listener): void {
    l.queue.length = 0;
    this.end(l);
    if (this.listeners.size === 0 && !this.done) {
      this.done = true;
      this.onIdle();
      void this.upstream.return?.();
    }
  }

  /** A new subscriber's stream, from the next event on (or undefined: this stream has ended). */
  join(): AsyncIterableIterator<Result> | undefined {
    if (this.done) return undefined;
    const l: Listener = { queue: [], wake: undefined, ended: false, error: undefined };
    this.listeners.add(l);
    const it: AsyncIterableIterator<Result> = {
      next: async () => {
        for (;;) {
          if (l.queue.length > 0) return { value: l.queue.shift(), done: false };
          if (l.ended) {
            if (l.error) {
              const error = l.error;
              l.error = undefined;
              return { value: { errors: [error] }, done: false };
            }
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => {
            l.wake = resolve;
          });
        }
      },
      return: async () => {
        this.leave(l);
        return { value: undefined, done: true };
      },
      throw: async (err) => {
        this.leave(l);
        throw err;
      },
      [Symbol.asyncIterator]: () => it,
    };
    return it;
  }
}

const isAsyncIterable = (x: unknown): x is AsyncIterable<Result> =>
  typeof x === 'object' && x !== null && Symbol.asyncIterator in x;

export interface SharedSubscriptionMetrics {
  readonly streams: Gauge;
  readonly joined: Counter<'how'>;
  readonly slow: Counter;
}

export function sharedSubscriptionMetrics(registry: Registry): SharedSubscriptionMetrics {
  return {
    streams: new Gauge({
      name: 'cairn_gateway_shared_streams',
      help: 'Upstream subscriptions running, each shared by the subscribers of one key.',
      registers: [registry],
    }),
    joined: new Counter({
      name: 'cairn_gateway_subscriptions_joined_total',
      help: 'Subscriptions started: how=new ran its own execution, how=shared joined a running one.',
      labelNames: ['how'] as const,
      registers: [registry],
    }),
    slow: new Counter({
      name: 'cairn_gateway_slow_subscribers_total',
      help: `Subscribers ended because they fell ${MAX_QUEUED} results behind (SLOW_SUBSCRIBER).`,
      registers: [registry],
    }),
  };
}

/**
 * The envelop plugin. `scopeOf` names the part of the context a result may depend on (the
 * role); undefined keeps that subscription to itself.
 */
export function useSharedSubscriptions(
  scopeOf: (contextValue: unknown) => string | undefined,
  metrics: SharedSubscriptionMetrics,
): Plugin {
  const streams = new Map<string, SharedStream>();
  // Keys whose first subscribe is still running: joiners wait for it instead of starting their own.
  const starting = new Map<string, Promise<unknown>>();
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const scope = scopeOf(args.contextValue);
      if (scope === undefined) return;
      const key = JSON.stringify([
        scope,
        args.operationName ?? null,
        args.variableValues ?? null,
        print(args.document),
      ]);
      setSubscribeFn(async (a) => {
        for (;;) {
          const joined = streams.get(key)?.join();
          if (joined) {
            metrics.joined.inc({ how: 'shared' });
            return joined;
          }
          const pending = starting.get(key);
          if (!pending) break;
          await pending.catch(() => {});
        }
        const started = Promise.resolve(subscribeFn(a));
        starting.set(key, started);
        try {
          const result = await started;
          // An error result (refused, invalid) is this subscriber's own: nothing to share.
          if (!isAsyncIterable(result)) return result;
          metrics.joined.inc({ how: 'new' });
          metrics.streams.inc();
          const stream: SharedStream = new SharedStream(
            result,
            () => {
              metrics.streams.dec();
              if (streams.get(key) === stream) streams.delete(key);
            },
            () => metrics.slow.inc(),
          );
          streams.set(key, stream);
          return stream.join()!;
        } finally {
          starting.delete(key);
        }
      });
    },
  };
}
