/**
 * BullMQ's Lua scripts, run by digest only. A node's Redis user may not EVAL, SCRIPT LOAD or
 * FUNCTION (jobs/redis-acl.ts): a script of its own choosing could loop for ever after a write,
 * which stops Redis for every client and cannot be killed. It may EVALSHA, which runs only what
 * is already in Redis's script cache, and only trusted users (the collector, the gateway) put
 * scripts there: BullMQ's, at start and after every reconnect (a restarted Redis has an empty
 * cache), through `keepScriptsLoaded`.
 *
 * ioredis sends a script's first call on each socket as EVAL (and falls back to EVAL on
 * NOSCRIPT), which such a user is refused. `evalshaOnly` makes a connection send EVALSHA only;
 * on NOSCRIPT it loads the script itself if its user may (the demo, tests, trusted users) and
 * otherwise waits for the preload, retrying, so a Redis restart delays a node's jobs instead of
 * failing them, up to `maxWaitMs`, then a typed `ScriptNotLoaded`.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { ConnectionClosedError } from 'bullmq';
import { Command, type Redis } from 'ioredis';
import type { Counter } from 'prom-client';
import type { Logger } from '../node/log.ts';

export interface BullmqScript {
  /** BullMQ's command name, as it defines it on a connection (`<name>:<version>`). */
  readonly command: string;
  readonly name: string;
  readonly keys: number;
  readonly lua: string;
  /** What EVALSHA sends: sha1 of the script text, as ioredis computes it. */
  readonly sha: string;
}

/**
 * The scripts as BullMQ's RedisConnection.loadCommands defines them: the text bullmq ships,
 * its `--- @include` lines already expanded at bullmq's build. bullmq has no export of them
 * (nor types for its CJS build); the test checks these digests against a real connection's.
 */
function readBullmqScripts(): readonly BullmqScript[] {
  const require = createRequire(import.meta.url);
  const raw = require('bullmq/dist/cjs/scripts/index.js') as Record<
    string,
    { name: string; content: string; keys: number }
  >;
  const { version } = require('bullmq/dist/cjs/version.js') as { version: string };
  return Object.values(raw).map((s) => ({
    command: `${s.name}:${version}`,
    name: s.name,
    keys: s.keys,
    lua: s.content,
    sha: sha1(s.content),
  }));
}

const sha1 = (lua: string) => createHash('sha1').update(lua).digest('hex');

export const BULLMQ_SCRIPTS: readonly BullmqScript[] = readBullmqScripts();

/**
 * A BullMQ script Redis does not have, still missing after waiting for the preload. A kind of
 * ConnectionClosedError on purpose: BullMQ's worker gives up on any other error (a job whose
 * completion failed so is left active, stalls, and fails for good on its second stall), while a
 * connection error it retries every `runRetryDelay` until Redis is usable again.
 */
export class ScriptNotLoaded extends ConnectionClosedError {
  readonly code = 'script-not-loaded';
  readonly script: string;
  readonly sha: string;
  constructor(script: string, sha: string, waitedMs: number) {
    super(
      `redis script ${script} (${sha}) not in Redis's script cache after ${waitedMs} ms: ` +
        'the collector or gateway loads it (SCRIPT LOAD) when it connects',
    );
    this.script = script;
    this.sha = sha;
  }
}

/** A digest SCRIPT LOAD answered that is not the one EVALSHA will send (a changed ioredis?). */
export class ScriptDigestMismatch extends Error {
  readonly code = 'script-digest-mismatch';
}

export interface EvalshaOptions {
  /** Give up waiting for a missing script after this long (default 30 s: under a worker's lock). */
  readonly maxWaitMs?: number;
  /**
   * Each NOSCRIPT answer, by BullMQ script name, and whether the call now waits for the preload
   * (false: loaded by this connection itself, or given up) — a metric, a log line.
   */
  readonly onNoScript?: (script: string, waiting: boolean) => void;
}

export const EVALSHA_DEFAULTS = { maxWaitMs: 30_000, firstRetryMs: 50, maxRetryMs: 1_000 } as const;

/** The parts of ioredis's Script and connection this module drives (not in its public types). */
interface IoScript {
  readonly lua: string;
  readonly sha: string;
  readonly numberOfKeys: number | null;
  readonly keyPrefix: string;
  readonly readOnly: boolean;
  execute: (container: Container, args: unknown[], options: CommandOptions, cb?: Callback) => unknown;
}
interface Container {
  readonly isPipeline?: boolean;
  sendCommand(c: Command): unknown;
}
type CommandOptions = { keyPrefix?: string; readOnly?: boolean; replyEncoding?: BufferEncoding | null };
type Callback = (err: Error | null, result?: unknown) => void;
interface Scripted {
  scriptsSet: Record<string, IoScript>;
  defineCommand(name: string, d: { lua: string; numberOfKeys?: number }): void;
  duplicate(o?: object): Redis;
}

const MARK = Symbol.for('cairn.evalshaOnly');
const isNoScript = (err: unknown) => err instanceof Error && err.message.includes('NOSCRIPT');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/**
 * Makes `redis` (and its duplicates: BullMQ's worker blocks on one) run every script it is given
 * by defineCommand as EVALSHA only. Idempotent. Returns `redis`.
 */
export function evalshaOnly(redis: Redis, o: EvalshaOptions = {}): Redis {
  const r = redis as unknown as Scripted & { [MARK]?: true };
  if (r[MARK]) return redis;
  r[MARK] = true;
  const maxWaitMs = o.maxWaitMs ?? EVALSHA_DEFAULTS.maxWaitMs;
  /** Whether this user may SCRIPT LOAD: learned from the first refusal. */
  let mayLoad = true;
  const define = r.defineCommand.bind(r);
  r.defineCommand = (name, d) => {
    define(name, d);
    const script = r.scriptsSet[name];
    if (script) script.execute = (c, args, opts, cb) => execute(name, script, c, args, opts, cb);
  };
  const duplicate = r.duplicate.bind(r);
  r.duplicate = (opts) => evalshaOnly(duplicate(opts), o);

  function send(c: Container, script: IoScript, args: readonly unknown[], opts: CommandOptions) {
    const cmd = new Command('evalsha', [script.sha, ...args] as never, { ...opts });
    c.sendCommand(cmd);
    return cmd.promise;
  }

  async function run(name: string, script: IoScript, args: unknown[], opts: CommandOptions) {
    const start = Date.now();
    for (let wait: number = EVALSHA_DEFAULTS.firstRetryMs; ; ) {
      try {
        return await send(redis as unknown as Container, script, args, opts);
      } catch (err) {
        if (!isNoScript(err)) throw err;
      }
      const waited = Date.now() - start;
      if (waited >= maxWaitMs) {
        o.onNoScript?.(scriptName(name), false);
        throw new ScriptNotLoaded(scriptName(name), script.sha, waited);
      }
      if (mayLoad) {
        const loaded: unknown = await redis.script('LOAD', script.lua).catch((e: Error) => e);
        if (loaded === script.sha) {
          o.onNoScript?.(scriptName(name), false);
          continue;
        }
        if (!(loaded instanceof Error))
          throw new ScriptDigestMismatch(
            `SCRIPT LOAD of ${name} gave ${String(loaded)}, EVALSHA sends ${script.sha}`,
          );
        if (/NOPERM/.test(loaded.message)) mayLoad = false;
      }
      o.onNoScript?.(scriptName(name), true);
      await sleep(Math.min(wait, maxWaitMs - waited));
      wait = Math.min(wait * 2, EVALSHA_DEFAULTS.maxRetryMs);
    }
  }

  function execute(
    name: string,
    script: IoScript,
    c: Container,
    args: unknown[],
    opts: CommandOptions,
    cb?: Callback,
  ): unknown {
    const full = typeof script.numberOfKeys === 'number' ? [script.numberOfKeys, ...args] : args;
    if (script.keyPrefix) opts.keyPrefix = script.keyPrefix;
    if (script.readOnly) opts.readOnly = true;
    // In a pipeline or MULTI a command cannot be sent again: EVALSHA once, NOSCRIPT is its
    // result. BullMQ pipelines scripts only for addBulk and flows, which Cairn's components
    // do not use (a test's addBulk does, after its scripts are cached).
    if (c.isPipeline) {
      const cmd = new Command('evalsha', [script.sha, ...full] as never, opts);
      if (cb) cmd.promise.then((v) => cb(null, v), cb);
      return c.sendCommand(cmd);
    }
    const p = run(name, script, full, opts);
    if (cb) p.then((v) => cb(null, v), cb);
    return p;
  }
  return redis;
}

/** `moveToActive:6.7.0` → `moveToActive`: a bounded metric label. */
const scriptName = (command: string) => command.split(':')[0] ?? command;

/** Loads every BullMQ script into Redis's cache; checks each digest is the one EVALSHA sends. */
export async function loadScripts(redis: Redis): Promise<number> {
  const answers = await Promise.all(BULLMQ_SCRIPTS.map((s) => redis.script('LOAD', s.lua)));
  answers.forEach((sha, i) => {
    const s = BULLMQ_SCRIPTS[i]!;
    if (sha !== s.sha)
      throw new ScriptDigestMismatch(`SCRIPT LOAD of ${s.name} gave ${String(sha)}, EVALSHA sends ${s.sha}`);
  });
  return answers.length;
}

export interface PreloadOptions {
  readonly log?: Pick<Logger, 'debug' | 'warn'>;
  /** cairn_redis_script_preloads_total{outcome}. */
  readonly counter?: Counter<'outcome'>;
}

/**
 * A trusted component's side: BullMQ's scripts loaded now and on every `ready` of `redis` (each
 * reconnect: Redis may have restarted with an empty cache). Returns a stop function.
 */
export function keepScriptsLoaded(redis: Redis, o: PreloadOptions): () => void {
  const preload = async () => {
    const start = Date.now();
    try {
      const n = await loadScripts(redis);
      o.counter?.inc({ outcome: 'ok' });
      o.log?.debug({ scripts: n, ms: Date.now() - start }, 'bullmq scripts loaded into redis');
    } catch (err) {
      o.counter?.inc({ outcome: 'failed' });
      o.log?.warn({ err: (err as Error).message }, 'loading bullmq scripts into redis failed; nodes wait');
    }
  };
  const onReady = () => void preload();
  redis.on('ready', onReady);
  if (redis.status === 'ready') void preload();
  return () => redis.off('ready', onReady);
}
