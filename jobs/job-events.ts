/**
 * Completion of jobs on many queues over ONE blocking Redis connection. BullMQ's QueueEvents
 * listens to one queue and blocks its own connection, so a gateway talking to 300 nodes would
 * hold 300 connections; here one XREAD reads the event streams (`<prefix>:<queue>:events`, what
 * QueueEvents reads) of every queue a command is waiting on. A queue added while the read blocks
 * interrupts it with CLIENT UNBLOCK from the second (non-blocking) connection.
 *
 * A completion entry carries the job's return value: for an admin command, the node's signed
 * answer sealed to the gateway (result-envelope.ts), which the admin client checks; this module
 * hands on values as Redis holds them and believes none. Once read for its waiter the entry is
 * deleted from the stream (XDEL): even as ciphertext, nothing is left that needs no keeping
 * (queues.ts NODE_EVENTS_MAX_LEN trims what nobody read).
 *
 * A stream can be deleted and recreated under the reader: the watchdogs delete an events stream
 * whose last id is ahead of Redis's clock (queue-watch.ts), and a Redis that lost its data starts
 * from nothing. The reader's last id may then be ahead of every id the new stream will get (it
 * read the entry that poisoned the stream), and XREAD after it would never return a completion
 * again. So the streams being waited on are checked (XINFO) when a command starts watching and
 * every RESET_CHECK_MS: one that is gone, or whose last id is behind ours, is read again from
 * its start (every entry of a recreated stream is newer than the reset), and counted (onReset).
 */
import type { Redis } from 'ioredis';

export type JobOutcome = { readonly completed: unknown } | { readonly failed: string };

interface Waiter {
  readonly resolve: (o: JobOutcome) => void;
}

/** How long one XREAD blocks; also the longest a stream change waits if an UNBLOCK raced the read. */
const BLOCK_MS = 2_000;
/** Entries read per stream per round trip. */
const COUNT = 200;
/** A stream nobody has waited on for this long is no longer read. */
const IDLE_MS = 5 * 60_000;
/** How often the streams waited on are checked for a reset (deleted, or recreated behind us). */
export const RESET_CHECK_MS = 2_000;

/** A stream id as a comparable pair; undefined for anything else. */
function idParts(id: string): [bigint, bigint] | undefined {
  const m = /^(\d+)-(\d+)$/.exec(id);
  return m ? [BigInt(m[1]!), BigInt(m[2]!)] : undefined;
}

/** True if stream id `a` comes after `b`. */
function after(a: string, b: string): boolean {
  const x = idParts(a);
  const y = idParts(b);
  if (!x || !y) return false;
  return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
}

export interface JobEventsOptions {
  /** A stream was found reset and is read again from its start (a metric: the gateway's). */
  readonly onReset?: (stream: string, why: 'gone' | 'behind') => void;
}

export class JobEvents {
  /** Stream key → the last id read and when a job on it was last awaited. */
  private readonly streams = new Map<string, { lastId: string; usedAt: number }>();
  /** `${stream} ${jobId}` → the caller waiting for that job. */
  private readonly waiters = new Map<string, Waiter>();
  private generation = 0;
  private readGeneration = -1;
  private reading = false;
  private closed = false;
  private idle: (() => void) | undefined;
  private readonly loop: Promise<void>;

  /** When the streams were last checked for a reset. */
  private checkedAt = 0;

  private readonly blocking: Redis;
  private readonly control: Redis;
  private readonly opts: JobEventsOptions;
  constructor(blocking: Redis, control: Redis, opts: JobEventsOptions = {}) {
    this.blocking = blocking;
    this.control = control;
    this.opts = opts;
    this.loop = this.run();
  }

  /**
   * Starts watching job `jobId` of the stream `stream` (await it before adding the job, so an
   * answer faster than the add's reply is not missed). `done` settles on completion or failure;
   * `cancel` stops waiting.
   */
  async watch(stream: string, jobId: string): Promise<{ done: Promise<JobOutcome>; cancel: () => void }> {
    const key = `${stream} ${jobId}`;
    const done = new Promise<JobOutcome>((resolve) => this.waiters.set(key, { resolve }));
    const cancel = () => this.waiters.delete(key);
    const s = this.streams.get(stream);
    if (s) {
      s.usedAt = Date.now();
      // A command sent right after a watchdog repair must not wait for the periodic check.
      await this.checkResets([stream]).catch(() => {});
    } else {
      // From the stream's last entry: the job is added after this, so its events come later.
      // (Not from a time of ours: stream ids are the Redis server's clock.)
      let lastId = '0-0';
      try {
        const last = (await this.control.xrevrange(stream, '+', '-', 'COUNT', 1)) as [string, string[]][];
        lastId = last[0]?.[0] ?? '0-0';
      } catch (err) {
        cancel();
        throw err;
      }
      if (!this.streams.has(stream)) {
        this.streams.set(stream, { lastId, usedAt: Date.now() });
        this.changed();
      }
    }
    if (this.idle) this.changed();
    return { done, cancel };
  }

  /** The set of streams changed: wake the loop (idle) or interrupt its blocking read. */
  private changed(): void {
    this.generation++;
    const wake = this.idle;
    this.idle = undefined;
    wake?.();
    void this.unblock();
  }

  private async unblock(): Promise<void> {
    // Until the loop reads with the current set of streams: an UNBLOCK that arrived just before
    // the XREAD started would be lost, so it is repeated.
    for (let i = 0; i < 40 && this.reading && this.readGeneration < this.generation && !this.closed; i++) {
      const id = this.blockingId;
      if (id !== undefined) await this.control.client('UNBLOCK', id).catch(() => 0);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private blockingId: number | undefined;

  private async run(): Promise<void> {
    while (!this.closed) {
      this.prune();
      if (this.waiters.size === 0) {
        await new Promise<void>((r) => {
          this.idle = r;
        });
        continue;
      }
      try {
        if (Date.now() - this.checkedAt >= RESET_CHECK_MS) {
          this.checkedAt = Date.now();
          await this.checkResets(this.waitedStreams());
        }
      } catch {
        // Redis away: the read below fails the same way and waits.
      }
      const keys = [...this.streams.keys()];
      const ids = keys.map((k) => this.streams.get(k)!.lastId);
      try {
        this.blockingId = Number(await this.blocking.client('ID'));
        this.readGeneration = this.generation;
        this.reading = true;
        const res = (await this.blocking.xread(
          'COUNT',
          COUNT,
          'BLOCK',
          BLOCK_MS,
          'STREAMS',
          ...keys,
          ...ids,
        )) as [string, [string, string[]][]][] | null;
        this.reading = false;
        for (const [stream, entries] of res ?? []) this.consume(stream, entries);
      } catch {
        this.reading = false;
        if (this.closed) return;
        // Redis away: the callers' timeouts decide; try again shortly.
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  private consume(stream: string, entries: [string, string[]][]): void {
    const s = this.streams.get(stream);
    for (const [id, fields] of entries) {
      if (s) s.lastId = id;
      const f: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!;
      if (f.event !== 'completed' && f.event !== 'failed') continue;
      const key = `${stream} ${f.jobId}`;
      const w = this.waiters.get(key);
      if (!w) continue;
      this.waiters.delete(key);
      if (f.event === 'failed') w.resolve({ failed: f.failedReason ?? 'failed' });
      else {
        // Gone from Redis once we hold it (best effort: with Redis away the trim bounds it).
        this.control.xdel(stream, id).catch(() => 0);
        let value: unknown;
        try {
          value = JSON.parse(f.returnvalue ?? 'null');
        } catch {
          value = undefined;
        }
        w.resolve({ completed: value });
      }
    }
  }

  /** Streams someone waits on now. */
  private waitedStreams(): Set<string> {
    return new Set([...this.waiters.keys()].map((k) => k.slice(0, k.lastIndexOf(' '))));
  }

  /**
   * Streams that are gone, or whose last id is behind the one we read up to, were deleted (and
   * maybe recreated) since: read them again from the start. One pipelined XINFO per stream.
   */
  private async checkResets(streams: Iterable<string>): Promise<void> {
    const keys = [...streams].filter((k) => this.streams.get(k)?.lastId !== '0-0');
    if (keys.length === 0) return;
    const pipe = this.control.pipeline();
    for (const k of keys) pipe.xinfo('STREAM', k);
    const replies = (await pipe.exec()) ?? [];
    let reset = false;
    keys.forEach((k, i) => {
      const s = this.streams.get(k);
      const [err, info] = replies[i] ?? [new Error('no reply'), undefined];
      if (!s) return;
      let why: 'gone' | 'behind' | undefined;
      if (err) {
        if (/no such key/i.test(err.message)) why = 'gone';
        else return; // Redis trouble: the next check decides.
      } else {
        const list = info as unknown[];
        const i2 = list.indexOf('last-generated-id');
        if (i2 >= 0 && after(s.lastId, String(list[i2 + 1]))) why = 'behind';
      }
      if (!why) return;
      s.lastId = '0-0';
      reset = true;
      this.opts.onReset?.(k, why);
    });
    // Interrupt a read blocked on the stale ids.
    if (reset) this.changed();
  }

  private prune(): void {
    const now = Date.now();
    const waited = this.waitedStreams();
    for (const [stream, s] of this.streams)
      if (!waited.has(stream) && now - s.usedAt > IDLE_MS) this.streams.delete(stream);
  }

  /** Streams read now (tests). */
  get streamCount(): number {
    return this.streams.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    const wake = this.idle;
    this.idle = undefined;
    wake?.();
    if (this.reading && this.blockingId !== undefined)
      await this.control.client('UNBLOCK', this.blockingId).catch(() => 0);
    // With Redis away the read waits for a reconnect: the owner closing the connection ends it.
    await Promise.race([this.loop, new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
