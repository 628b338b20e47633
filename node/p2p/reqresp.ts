import type { Connection, PeerId, Stream } from '@libp2p/interface';
import { lpStream, RateLimiter } from '@libp2p/utils';
import type { Logger } from 'pino';
import type { Uint8ArrayList } from 'uint8arraylist';
import { DecodeError } from '../chain/codec/errors.ts';
import type { CairnLibp2p } from './host.ts';
import type { PeerAction } from './peer-scores.ts';

/**
 * Request/response protocols `/cairn/<chain>/<name>/1`, after the Ethereum consensus req/resp
 * (as in Lodestar): one length-prefixed request, then zero or more response chunks, each a
 * result code byte and a payload, then the responder closes. Every protocol bounds request
 * and chunk sizes and chunk counts, runs under a deadline, and is rate-limited per peer.
 */

export const RESULT = {
  success: 0,
  invalidRequest: 1,
  serverError: 2,
  unavailable: 3,
  rateLimited: 4,
} as const;
const RESULT_NAME: Record<number, ReqRespErrorCode> = {
  1: 'invalid-request',
  2: 'server-error',
  3: 'resource-unavailable',
  4: 'rate-limited',
};

export type ReqRespErrorCode =
  | 'timeout'
  | 'rate-limited'
  | 'invalid-request'
  | 'server-error'
  | 'resource-unavailable'
  | 'invalid-response'
  | 'dial-failed'
  | 'not-admitted'
  | 'no-response';

export class ReqRespError extends Error {
  override readonly name = 'ReqRespError';
  readonly code: ReqRespErrorCode;
  constructor(code: ReqRespErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/** Raised by a handler to answer with a specific result code instead of a server error. */
export class HandlerError extends Error {
  readonly result: (typeof RESULT)[keyof typeof RESULT];
  constructor(result: (typeof RESULT)[keyof typeof RESULT], message: string) {
    super(message);
    this.result = result;
  }
}

/**
 * Raised by a handler when the requester has spent its budget (answered as rate-limited, like
 * the framework's own limit, and penalised as one: the requester chose to ask for too much).
 */
export class OverBudgetError extends HandlerError {
  constructor(message: string) {
    super(RESULT.rateLimited, message);
  }
}

/**
 * Raised by a handler when the node-wide serve budget has no turn for the requester in time (the
 * node is busy serving others: node-serve-budget.ts). Answered as rate-limited, not penalised:
 * the requester kept to its own budget. `reason`: its wait ran out, or the queue was full.
 */
export class NodeBusyError extends HandlerError {
  readonly reason: 'wait' | 'queue-full';
  constructor(reason: 'wait' | 'queue-full', message: string) {
    super(RESULT.rateLimited, message);
    this.reason = reason;
  }
}

/**
 * `Res` is what a handler answers with (encoded by `encodeResponse`); `Out` is what a
 * requester gets back from `decodeResponse` (a block server sends stored bytes as they are,
 * the requester gets decoded blocks).
 */
export interface ProtocolSpec<Req, Res, Out = Res> {
  readonly name: string;
  readonly maxRequestBytes: number;
  readonly maxChunkBytes: number;
  readonly maxChunks: number;
  /**
   * The most chunks an answer to `req` may have, when the request says (a range of 4 blocks,
   * one hash): a responder sending more is refused at the first extra chunk and penalised, so
   * what it can make us hold follows what we asked for, not the protocol's maximum.
   */
  chunksFor?(req: Req): number;
  /**
   * Chunks every answer must have. A stream closed before them is a refusal (a server that
   * has banned us resets streams), not an empty answer.
   */
  readonly minChunks?: number;
  /**
   * Payload bytes of all chunks of one answer together, at most. The chunk bounds alone let an
   * answer of 128 blocks make us hold 128 × the block bound; with this, a responder ends its
   * answer early (a short answer) before it would exceed it, and a requester refuses (and
   * penalises) an answer that does, from the length prefix of the chunk that would.
   */
  readonly maxResponseBytes?: number;
  readonly timeoutMs: number;
  /**
   * Served to a peer that is not (yet) admitted by the roster: the join protocol only, by which
   * a device without a certificate redeems its invitation. Banned peers are still refused.
   */
  readonly beforeAdmission?: boolean;
  /**
   * Inbound requests of this protocol one peer may have open at once (default 4). Each open
   * request holds a read-ahead and a write buffer, so this bounds what a reader that never
   * reads can pin per peer, whatever number of streams its muxer lets it open.
   */
  readonly maxConcurrentPerPeer?: number;
  /**
   * Longest wait for the requester to take one chunk (default 5 s): a reader slower than that
   * is cut off rather than left holding its stream until the whole deadline.
   */
  readonly writeTimeoutMs?: number;
  /** Budget per peer: `points` per `durationSec`; a request costs `cost(req)` points (default 1). */
  readonly rateLimit: { readonly points: number; readonly durationSec: number };
  cost?(req: Req): number;
  encodeRequest(req: Req): Uint8Array;
  decodeRequest(bytes: Uint8Array): Req;
  encodeResponse(res: Res): Uint8Array;
  decodeResponse(bytes: Uint8Array): Out;
}

/**
 * Answers a request: a list, or an async iterable that produces chunks as they are written, so
 * a large answer is read from storage a few chunks ahead of the requester instead of whole
 * (each chunk is written, and its backpressure awaited, before the next is asked for). The
 * signal aborts when the request ends early (deadline, reset, slow reader).
 */
export type Handler<Req, Res> = (
  req: Req,
  peer: PeerId,
  signal: AbortSignal,
) => Promise<readonly Res[]> | readonly Res[] | AsyncIterable<Res>;

const isAsyncIterable = (x: unknown): x is AsyncIterable<unknown> =>
  typeof (x as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === 'function';

export interface ReqRespHooks {
  /** Called on peer misbehaviour detected by the framework (garbage frames, floods). */
  penalise(peer: PeerId, action: PeerAction, reason: string): void;
  /** Request outcomes, for metrics. */
  observe?(protocol: string, direction: 'inbound' | 'outbound', outcome: string, ms: number): void;
  /**
   * Peers not to serve (banned or blocked). A ban closes the connection asynchronously; until
   * it is gone, requests that still arrive on it are reset instead of answered.
   */
  refuses?(peer: PeerId): boolean;
  /**
   * Roster mode: whether the peer passed admission (admission-gate.ts): `true` at once, or the
   * outcome of its handshake (bounded by the handshake deadline). Requests from a peer that is
   * not admitted are reset unread, and none are sent to one (they would tell it our chain).
   */
  admitted?(peer: PeerId): true | Promise<boolean>;
}

const toBytes = (chunk: { subarray(): Uint8Array }) => chunk.subarray();

/**
 * The unsigned-varint length decoding lpStream uses by default, plus a note that a frame has
 * begun (called once per length byte read): a response that ends between chunks is complete,
 * one that ends inside a chunk (or inside its length prefix) is truncated. `check` sees each
 * decoded length before the frame's bytes are read, and may refuse it by throwing.
 */
function lengthDecoder(
  onByte: () => void,
  check?: (length: number) => void,
): (data: Uint8ArrayList) => number {
  return (data) => {
    onByte();
    let value = 0;
    let scale = 1;
    for (let i = 0; i < data.byteLength; i++) {
      const b = data.get(i);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        check?.(value);
        return value;
      }
      scale *= 0x80;
    }
    // lpStream reads another byte on a RangeError; any other error ends the read.
    if (data.byteLength >= 8) throw new DecodeError('oversized', 'length prefix of 8 bytes or more');
    throw new RangeError('incomplete length prefix');
  };
}

export class ReqResp {
  private readonly limiters = new Map<string, RateLimiter>();
  /** Open inbound requests per protocol and peer (entries removed at zero, so bounded by peers). */
  private readonly active = new Map<string, Map<string, number>>();

  private readonly host: CairnLibp2p;
  private readonly prefix: string;
  private readonly hooks: ReqRespHooks;
  private readonly log: Logger;
  constructor(host: CairnLibp2p, prefix: string, hooks: ReqRespHooks, log: Logger) {
    this.host = host;
    this.prefix = prefix;
    this.hooks = hooks;
    this.log = log;
  }

  protocolId(name: string): string {
    return `${this.prefix}/${name}/1`;
  }

  async register<Req, Res, Out>(
    spec: ProtocolSpec<Req, Res, Out>,
    handler: Handler<Req, Res>,
  ): Promise<void> {
    this.active.set(spec.name, new Map());
    this.limiters.set(
      spec.name,
      new RateLimiter({ points: spec.rateLimit.points, duration: spec.rateLimit.durationSec }),
    );
    await this.host.handle(
      this.protocolId(spec.name),
      (stream: Stream, connection: Connection) => {
        const peer = connection.remotePeer;
        if (this.hooks.refuses?.(peer)) {
          stream.abort(new Error('peer refused'));
          return;
        }
        const admitted = spec.beforeAdmission ? true : (this.hooks.admitted?.(peer) ?? true);
        if (admitted === true) return this.serve(spec, handler, stream, peer);
        // A request that raced the handshake waits for its verdict; a stranger's is reset unread.
        return admitted.then((ok) => {
          if (ok && !this.hooks.refuses?.(peer)) return this.serve(spec, handler, stream, peer);
          this.hooks.observe?.(spec.name, 'inbound', 'not-admitted', 0);
          stream.abort(new Error('peer not admitted'));
        });
      },
      { maxInboundStreams: 16 },
    );
  }

  private async serve<Req, Res, Out>(
    spec: ProtocolSpec<Req, Res, Out>,
    handler: Handler<Req, Res>,
    stream: Stream,
    peer: PeerId,
  ) {
    const started = performance.now();
    const deadline = AbortSignal.timeout(spec.timeoutMs);
    // Aborted on the deadline and when serving ends early, so a streaming handler stops reading.
    const ended = new AbortController();
    const signal = AbortSignal.any([deadline, ended.signal]);
    const writeTimeoutMs = spec.writeTimeoutMs ?? 5_000;
    let writeTimedOut = false;
    let writeFailed = false;
    const lp = lpStream(stream, { maxDataLength: spec.maxRequestBytes });
    const reply = async (result: number, payload: Uint8Array) => {
      const frame = new Uint8Array(payload.length + 1);
      frame[0] = result;
      frame.set(payload, 1);
      const slow = AbortSignal.timeout(writeTimeoutMs);
      try {
        await lp.write(frame, { signal: AbortSignal.any([signal, slow]) });
      } catch (err) {
        writeFailed = true;
        if (slow.aborted && !deadline.aborted) writeTimedOut = true;
        throw err;
      }
    };
    const key = peer.toString();
    const active = this.active.get(spec.name)!;
    const open = active.get(key) ?? 0;
    let admitted = false;
    let outcome = 'ok';
    try {
      if (open >= (spec.maxConcurrentPerPeer ?? 4)) {
        outcome = 'too-many-streams';
        this.hooks.penalise(peer, 'high-tolerance', `${spec.name}: more than ${open} concurrent requests`);
        await reply(RESULT.rateLimited, new TextEncoder().encode('too many concurrent requests')).catch(
          () => {},
        );
        return;
      }
      active.set(key, open + 1);
      admitted = true;
      let req: Req;
      try {
        req = spec.decodeRequest(toBytes(await lp.read({ signal })));
      } catch (err) {
        outcome = 'bad-request';
        const garbage = err instanceof DecodeError || (err as Error).name.startsWith('InvalidDataLength');
        if (garbage) this.hooks.penalise(peer, 'low-tolerance', `${spec.name}: ${(err as Error).message}`);
        await reply(
          RESULT.invalidRequest,
          new TextEncoder().encode((err as Error).message.slice(0, 256)),
        ).catch(() => {});
        return;
      }
      try {
        this.limiters.get(spec.name)!.consume(peer.toString(), spec.cost?.(req) ?? 1);
      } catch {
        outcome = 'rate-limited';
        this.hooks.penalise(peer, 'high-tolerance', `${spec.name}: rate limited`);
        await reply(RESULT.rateLimited, new TextEncoder().encode('rate limited'));
        return;
      }
      let sent = 0;
      let sentBytes = 0;
      const maxBytes = spec.maxResponseBytes ?? Number.POSITIVE_INFINITY;
      // False once the next chunk would take the answer over its byte bound: it ends there, short.
      const send = async (r: Res): Promise<boolean> => {
        const payload = spec.encodeResponse(r);
        if (sentBytes + payload.length > maxBytes) return false;
        await reply(RESULT.success, payload);
        sentBytes += payload.length;
        sent++;
        return true;
      };
      try {
        const responses = await handler(req, peer, signal);
        if (isAsyncIterable(responses)) {
          for await (const r of responses) {
            if (sent >= spec.maxChunks || !(await send(r))) break;
          }
        } else {
          for (const r of responses.slice(0, spec.maxChunks)) if (!(await send(r))) break;
        }
      } catch (err) {
        // Only a handler's own failure is answered; a failed write means the stream is gone.
        if (writeFailed || signal.aborted) throw err;
        const result = err instanceof HandlerError ? err.result : RESULT.serverError;
        outcome =
          err instanceof OverBudgetError
            ? 'rate-limited'
            : err instanceof NodeBusyError
              ? 'busy'
              : 'handler-error';
        if (err instanceof OverBudgetError)
          this.hooks.penalise(peer, 'high-tolerance', `${spec.name}: ${err.message}`);
        await reply(result, new TextEncoder().encode((err as Error).message.slice(0, 256)));
        return;
      }
    } catch (err) {
      outcome = writeTimedOut ? 'write-timeout' : 'stream-error';
      // A reader that does not take what it asked for is holding our buffers: it pays for it.
      if (writeTimedOut)
        this.hooks.penalise(
          peer,
          'mid-tolerance',
          `${spec.name}: slow reader (no chunk taken in ${writeTimeoutMs} ms)`,
        );
      this.log.debug({ err, protocol: spec.name, peer: peer.toString() }, 'inbound request failed');
      if (writeTimedOut) stream.abort(new Error('slow reader'));
    } finally {
      ended.abort();
      if (admitted) {
        const n = (active.get(key) ?? 1) - 1;
        if (n > 0) active.set(key, n);
        else active.delete(key);
      }
      await stream
        .close({ signal: AbortSignal.timeout(2000) })
        .catch(() => stream.abort(new Error('close failed')));
      this.hooks.observe?.(spec.name, 'inbound', outcome, performance.now() - started);
    }
  }

  async request<Req, Res, Out>(
    peer: PeerId,
    spec: ProtocolSpec<Req, Res, Out>,
    req: Req,
    timeoutMs = spec.timeoutMs,
  ): Promise<Out[]> {
    const started = performance.now();
    const signal = AbortSignal.timeout(timeoutMs);
    let outcome = 'ok';
    let stream: Stream;
    try {
      let admitted: true | Promise<boolean> = true;
      if (this.hooks.admitted) {
        // Connected first, so the handshake runs; then nothing is sent before its verdict.
        if (this.host.getConnections(peer).length === 0) await this.host.dial(peer, { signal });
        admitted = this.hooks.admitted(peer);
      }
      // The stream is negotiated while the handshake finishes; the request waits for both.
      const opening = this.host.dialProtocol(peer, this.protocolId(spec.name), { signal });
      // Handled now: it may fail while the verdict is awaited (still thrown below when awaited).
      opening.catch(() => {});
      if (admitted !== true && !(await admitted)) {
        void opening.then((s) => s.abort(new Error('peer not admitted'))).catch(() => {});
        this.hooks.observe?.(spec.name, 'outbound', 'not-admitted', performance.now() - started);
        throw new ReqRespError('not-admitted', `${peer.toString()} was not admitted`);
      }
      stream = await opening;
    } catch (err) {
      if (err instanceof ReqRespError) throw err;
      this.hooks.observe?.(spec.name, 'outbound', 'dial-failed', performance.now() - started);
      throw new ReqRespError(signal.aborted ? 'timeout' : 'dial-failed', (err as Error).message);
    }
    let frameStarted = false;
    let received = 0;
    const maxBytes = spec.maxResponseBytes ?? Number.POSITIVE_INFINITY;
    const lp = lpStream(stream, {
      maxDataLength: spec.maxChunkBytes + 1,
      lengthDecoder: lengthDecoder(
        () => {
          frameStarted = true;
        },
        // A frame is a result byte and a payload: refused before its bytes are read.
        (length) => {
          if (received + length - 1 > maxBytes)
            throw new DecodeError(
              'oversized',
              `answer over ${maxBytes} bytes (${received} read, next chunk ${length - 1})`,
            );
        },
      ),
    });
    const out: Out[] = [];
    const maxChunks = Math.min(spec.maxChunks, spec.chunksFor?.(req) ?? spec.maxChunks);
    try {
      await lp.write(spec.encodeRequest(req), { signal });
      for (;;) {
        let frame: Uint8Array;
        frameStarted = false;
        try {
          frame = toBytes(await lp.read({ signal }));
        } catch (err) {
          const name = (err as Error).name;
          // The responder closed the stream between chunks: the response is complete.
          if (name === 'UnexpectedEOFError' && !frameStarted) break;
          // A chunk cut short, or one (or its length prefix) over the bound: the responder's fault.
          if (
            name === 'UnexpectedEOFError' ||
            name.startsWith('InvalidDataLength') ||
            err instanceof DecodeError
          )
            throw new ReqRespError('invalid-response', (err as Error).message);
          throw err;
        }
        if (frame.length === 0) throw new ReqRespError('invalid-response', 'empty chunk');
        if (frame[0] !== RESULT.success) {
          throw new ReqRespError(
            RESULT_NAME[frame[0]!] ?? 'invalid-response',
            new TextDecoder().decode(frame.subarray(1)),
          );
        }
        if (out.length >= maxChunks)
          throw new ReqRespError('invalid-response', `more than ${maxChunks} chunks`);
        received += frame.length - 1;
        try {
          out.push(spec.decodeResponse(frame.subarray(1)));
        } catch (err) {
          throw new ReqRespError('invalid-response', (err as Error).message);
        }
      }
      if (out.length < (spec.minChunks ?? 0)) {
        throw new ReqRespError(
          'no-response',
          `stream closed after ${out.length} of ${spec.minChunks} chunks`,
        );
      }
      return out;
    } catch (err) {
      if (err instanceof ReqRespError) {
        outcome = err.code;
        if (err.code === 'invalid-response')
          this.hooks.penalise(peer, 'low-tolerance', `${spec.name}: ${err.message}`);
        throw err;
      }
      outcome = signal.aborted ? 'timeout' : 'stream-error';
      if (signal.aborted) this.hooks.penalise(peer, 'high-tolerance', `${spec.name}: timeout`);
      throw new ReqRespError(signal.aborted ? 'timeout' : 'invalid-response', (err as Error).message);
    } finally {
      stream.abort(new Error('done'));
      this.hooks.observe?.(spec.name, 'outbound', outcome, performance.now() - started);
    }
  }
}
