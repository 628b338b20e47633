/**
 * Per-caller token buckets: each bearer token (keyed by its configured SHA-256, so two tokens
 * never share a bucket, whatever their names) and each anonymous client host get `perSecond`
 * requests a second with bursts up to `burst`. Over the limit a request gets 429 with
 * Retry-After before anything is parsed. Anonymous buckets are keyed by host the way the node's
 * per-IP cap is (an IPv4 address, an IPv6 /64: node/p2p/ip-ranges.ts `capKey`), so a stranger
 * does not get a fresh bucket per address of its /64; they are bounded (longest idle dropped), so
 * a stranger cycling hosts holds at most `maxKeys` of them. Token buckets live apart and are
 * never dropped for anonymous ones.
 */

import { TokenBuckets } from '../jobs/token-buckets.ts';
import { capKey } from '../node/p2p/ip-ranges.ts';

export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

/**
 * The rate defaults, by mode. 50 requests a second with bursts of 100 per token: a dashboard
 * polls far less. 10 a second with bursts of 50 per anonymous host: opening a console view is one
 * query and up to two subscribes, so a person clicking through never comes near, while a script
 * without a token cannot keep the gateway busy for everyone else. Development has no anonymous limit: the demo, the tests and GraphiQL all come from
 * 127.0.0.1. Behind a reverse proxy every anonymous client is the proxy's one host unless the
 * proxy is in CAIRN_TRUSTED_PROXIES (client-address.ts: its X-Forwarded-For names the client).
 */
export const RATE_DEFAULTS = Object.freeze({
  production: Object.freeze({
    token: Object.freeze({ perSecond: 50, burst: 100 }) as RateLimit,
    anonymous: Object.freeze({ perSecond: 10, burst: 50 }) as RateLimit | null,
  }),
  development: Object.freeze({
    token: Object.freeze({ perSecond: 50, burst: 100 }) as RateLimit,
    anonymous: null as RateLimit | null,
  }),
});

export interface RateLimiterOptions {
  /** Per token, unless its entry has a rate of its own; undefined = no limit. */
  readonly token?: RateLimit;
  /** Per anonymous client host; undefined = no limit. */
  readonly anonymous?: RateLimit;
  /** Anonymous buckets kept at most (default 10,000). */
  readonly maxKeys?: number;
  readonly now?: () => number;
}

/** Whose bucket a request is taken from. */
export type RateCaller =
  | { readonly kind: 'token'; readonly id: string; readonly rate?: RateLimit }
  /** `address` undefined: not known (the fetch handler), so no per-host bucket applies. */
  | { readonly kind: 'anonymous'; readonly address: string | undefined };

/** A request over its caller's limit. */
export interface RateRefusal {
  readonly kind: RateCaller['kind'];
  /** Whole seconds until one request would be allowed (Retry-After). */
  readonly retryAfter: number;
  readonly limit: RateLimit;
  /** For the 429's body and the graphql-ws error. */
  readonly message: string;
}

export class RateLimiter {
  private readonly tokenBuckets: TokenBuckets;
  private readonly anonymousBuckets: TokenBuckets;

  private readonly o: RateLimiterOptions;
  constructor(o: RateLimiterOptions) {
    this.o = o;
    const maxKeys = o.maxKeys ?? 10_000;
    this.tokenBuckets = new TokenBuckets(maxKeys, o.now);
    this.anonymousBuckets = new TokenBuckets(maxKeys, o.now);
  }

  /** Takes one request from the caller's bucket: undefined when allowed, else why not. */
  take(caller: RateCaller): RateRefusal | undefined {
    const limit = caller.kind === 'token' ? (caller.rate ?? this.o.token) : this.o.anonymous;
    if (!limit) return undefined;
    let key: string;
    let buckets: TokenBuckets;
    if (caller.kind === 'token') {
      key = caller.id;
      buckets = this.tokenBuckets;
    } else {
      if (caller.address === undefined) return undefined;
      key = capKey(caller.address);
      buckets = this.anonymousBuckets;
    }
    const wait = buckets.take(key, limit);
    if (wait === 0) return undefined;
    const rate = `${limit.perSecond}/s, bursts of ${limit.burst}`;
    return {
      kind: caller.kind,
      retryAfter: wait,
      limit,
      message:
        caller.kind === 'token'
          ? `Too many requests for this token (${rate}): retry in ${wait} s`
          : `Too many requests from this address without a token (${rate}; a token has a limit of its own): retry in ${wait} s`,
    };
  }
}
