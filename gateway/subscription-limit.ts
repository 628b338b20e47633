/**
 * Caps on open subscriptions. A rate limit bounds how fast a caller opens them, not how many it
 * holds: paced under the limit, one viewer socket held 3,000 `newBlock` subscriptions, and every
 * event was then serialised 3,000 times for it (an honest subscriber's delay per block went from
 * tens of milliseconds to 15.8 s, and the gateway grew by 300 MB). So each caller (a token, or an
 * anonymous client host keyed like the rate limiter's buckets) holds at most `perCaller`
 * subscriptions over all its sockets and SSE streams, and one WebSocket at most `perSocket`
 * operations at a time. Per caller is not enough on its own: anonymous callers are hosts, and a
 * stranger with many addresses (an IPv6 /48, a botnet) is many hosts; so the gateway as a whole
 * holds at most `anonymous` subscriptions without a token and `total` in all, the ceilings that
 * keep its memory and fan-out bounded whoever asks. Pure bookkeeping: the transports acquire and
 * release.
 */
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { capKey } from '../node/p2p/ip-ranges.ts';

export interface SubscriptionLimits {
  /** Operations one WebSocket may have open at once (subscriptions and in-flight queries). */
  readonly perSocket: number;
  /** Subscriptions one caller may hold over all its connections. */
  readonly perCaller: number;
  /** Subscriptions without a token this gateway holds at once, over every anonymous caller. */
  readonly anonymous: number;
  /** Subscriptions this gateway holds at once, in all. */
  readonly total: number;
}

/**
 * A console view holds at most a handful (blocks, a model version, an entry filter); a dashboard
 * of several views a few dozen. Generous for people, far below what hurts other subscribers.
 * The ceilings: 3,000 subscriptions on one event cost an honest subscriber 15.8 s per block and
 * 300 MB (the review that brought in these caps); 10,000 in all and 2,000 of them anonymous keep
 * a gateway instance well inside that for events spread over topics, and a token keeps room
 * when strangers hold every anonymous slot.
 */
export const SUBSCRIPTION_DEFAULTS: SubscriptionLimits = Object.freeze({
  perSocket: 20,
  perCaller: 100,
  anonymous: 2_000,
  total: 10_000,
});

/** Whose subscriptions these are: a token by its id, or an anonymous host (undefined: unknown). */
export type SubscriptionCaller =
  | { readonly kind: 'token'; readonly id: string }
  | { readonly kind: 'anonymous'; readonly address: string | undefined };

export interface SubscriptionRefusal {
  readonly reason: 'per-socket' | 'per-caller' | 'anonymous-total' | 'total';
  readonly message: string;
}

export class SubscriptionLimiter {
  private readonly held = new Map<string, number>();
  private anonymousHeld = 0;
  private totalHeld = 0;
  readonly limits: SubscriptionLimits;

  constructor(limits: Partial<SubscriptionLimits> = {}) {
    this.limits = { ...SUBSCRIPTION_DEFAULTS, ...limits };
  }

  /** A socket about to run its `open`-th concurrent operation: refused past the cap. */
  checkSocket(open: number): SubscriptionRefusal | undefined {
    if (open <= this.limits.perSocket) return undefined;
    return {
      reason: 'per-socket',
      message: `Too many operations on this connection: at most ${this.limits.perSocket} at once`,
    };
  }

  /**
   * One more subscription for `caller`: a release function (call it exactly once, when the
   * subscription ends), or the refusal. A caller whose address is unknown is not capped per
   * caller (the fetch path has no address; its host limits at its edge, as for rates), but
   * counts toward the gateway's ceilings.
   */
  acquire(caller: SubscriptionCaller): (() => void) | SubscriptionRefusal {
    const anonymous = caller.kind === 'anonymous';
    if (this.totalHeld >= this.limits.total)
      return { reason: 'total', message: 'This gateway holds all the subscriptions it can: retry later' };
    if (anonymous && this.anonymousHeld >= this.limits.anonymous)
      return {
        reason: 'anonymous-total',
        message:
          'This gateway holds all the subscriptions it can without a token: retry later, or use a token',
      };
    const key = keyOf(caller);
    const n = key === undefined ? 0 : (this.held.get(key) ?? 0);
    if (key !== undefined && n >= this.limits.perCaller)
      return {
        reason: 'per-caller',
        message: `Too many open subscriptions: at most ${this.limits.perCaller} per caller`,
      };
    if (key !== undefined) this.held.set(key, n + 1);
    this.totalHeld++;
    if (anonymous) this.anonymousHeld++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.totalHeld--;
      if (anonymous) this.anonymousHeld--;
      if (key === undefined) return;
      const left = (this.held.get(key) ?? 1) - 1;
      if (left > 0) this.held.set(key, left);
      else this.held.delete(key);
    };
  }

  /** Subscriptions held now: all, and those without a token. */
  get open(): { readonly total: number; readonly anonymous: number } {
    return { total: this.totalHeld, anonymous: this.anonymousHeld };
  }

  /** Subscriptions `caller` holds now (for tests and metrics). */
  heldBy(caller: SubscriptionCaller): number {
    const key = keyOf(caller);
    return key === undefined ? 0 : (this.held.get(key) ?? 0);
  }

  /** Callers holding any (bounded by the open subscriptions themselves). */
  get callers(): number {
    return this.held.size;
  }
}

function keyOf(caller: SubscriptionCaller): string | undefined {
  if (caller.kind === 'token') return `t:${caller.id}`;
  return caller.address === undefined ? undefined : `a:${capKey(caller.address)}`;
}

/**
 * The envelop plugin that makes every subscription, over graphql-ws or SSE, hold one slot of its
 * caller's until it ends. A refusal is an ordinary GraphQL error (code SUBSCRIPTION_LIMIT).
 */
export function useSubscriptionSlots(
  limiter: SubscriptionLimiter,
  callerOf: (contextValue: unknown) => SubscriptionCaller,
  onRefused: (reason: SubscriptionRefusal['reason']) => void,
): Plugin {
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn, setResultAndStopExecution }) {
      const slot = limiter.acquire(callerOf(args.contextValue));
      if (typeof slot !== 'function') {
        onRefused(slot.reason);
        setResultAndStopExecution({
          errors: [new GraphQLError(slot.message, { extensions: { code: 'SUBSCRIPTION_LIMIT' } })],
        });
        return;
      }
      // A subscribe that throws or answers errors ends at once; only a stream keeps the slot.
      setSubscribeFn(async (a) => {
        try {
          return await subscribeFn(a);
        } catch (err) {
          slot();
          throw err;
        }
      });
      return {
        onSubscribeResult({ result }) {
          if (!isAsyncIterable(result)) {
            slot();
            return;
          }
          return { onEnd: slot };
        },
      };
    },
  };
}

const isAsyncIterable = (x: unknown): x is AsyncIterable<unknown> =>
  typeof x === 'object' && x !== null && Symbol.asyncIterator in x;
