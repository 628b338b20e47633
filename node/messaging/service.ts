/**
 * Direct messages between members (issue 14): the recipient side of `msg` and `msg-key`, and the
 * sender's persisted outbox, retried with backoff (1 s to 5 min) until the recipient's signed
 * receipt arrives. The recipient stores each (sender, sequence) once and releases messages to the
 * application in per-sender order (sequence.ts), so however many copies arrive, and across
 * restarts of either side, the application sees each message once and in order.
 *
 * Like FL (fl/net/service.ts) it sees the node through MessagingDeps only.
 */
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import type { PeerId } from '@libp2p/interface';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type { Registry } from 'prom-client';
import { fromHex, type Hex, toHex } from '../chain/bytes.ts';
import type { SigningKey } from '../chain/signature.ts';
import type { Logger } from '../log.ts';
import type { PeerAction } from '../p2p/peer-scores.ts';
import { HandlerError, RESULT, type ReqResp, ReqRespError } from '../p2p/reqresp.ts';
import type { GroupCommit } from '../store/group-commit.ts';
import { DeliveryStats, type MessagingStats } from './delivery-stats.ts';
import { openMessage, sealMessage } from './envelope.ts';
import { MessagingError, PENALTY_OF } from './errors.ts';
import { messagingKeyFromSeed, openKeyRecord, signKeyRecord } from './keys.ts';
import { MAILBOX_DEFAULTS, Mailbox, MailboxFull, type MailboxLimits } from './mailbox.ts';
import { type ArrivalRecord, MessageStore, type OutboxRow } from './message-store.ts';
import { createMessagingMetrics, type MessagingMetrics } from './metrics.ts';
import {
  backoffMs,
  depositProtocol,
  fetchProtocol,
  MAX_ACK_RECEIPTS,
  MESSAGING_DEFAULTS,
  MSG_ACK,
  MSG_KEY,
  msgProtocol,
} from './protocols.ts';
import { openReceipt, receiptMatches, signReceipt } from './receipt.ts';
import { SequenceTracker } from './sequence.ts';

export interface MessagingDeps {
  readonly chainId: Uint8Array;
  /** This node's identity key; its seed (the first 32 bytes of secretKey) derives the messaging key. */
  readonly signingKey: SigningKey;
  /** The node store's writer connection and its group commit (NodeStore.writes). */
  readonly writes: GroupCommit;
  readonly reqresp: Pick<ReqResp, 'register' | 'request'>;
  penalise(peer: string, action: PeerAction, reason: string): void;
  /** Whether this identity key may send messages here (roster: a member with `message`). */
  mayMessage(publicKeyHex: Hex): boolean;
  /** A member name, a peer id or an identity key in hex, as an identity key (undefined: unknown). */
  resolve(to: string): Hex | undefined;
  /** The member name of a key, for display. */
  nameOf(publicKeyHex: Hex): string | undefined;
  /** Called with a peer id whenever a connection to it opens; returns an unsubscribe. */
  onPeerConnected(listener: (peer: string) => void): () => void;
  /** Whether this identity key is a mailbox (roster: a member with `relay` or `archive`). */
  isMailbox(publicKeyHex: Hex): boolean;
  /** Peer ids connected now. */
  connectedPeers(): readonly string[];
  readonly registry: Registry;
  readonly log: Logger;
  readonly maxBodyBytes?: number;
  readonly mailboxLimits?: Partial<MailboxLimits>;
}

/** Why a send was refused at once (nothing is queued). */
export class SendRefused extends Error {
  override readonly name = 'SendRefused';
  readonly code: 'unknown-recipient' | 'oversized' | 'to-self' | 'stopped';
  constructor(code: 'unknown-recipient' | 'oversized' | 'to-self' | 'stopped', message: string) {
    super(message);
    this.code = code;
  }
}

export interface SentMessage {
  /** The application id: `<sender hex>:<recipient hex>:<sequence>`. */
  readonly id: string;
  readonly to: Hex;
  readonly toName: string | null;
  readonly seq: number;
  readonly status: 'delivered' | 'pending';
  readonly contentId: Hex | null;
  readonly error: string | null;
}

export interface InboxMessageView {
  readonly id: string;
  readonly from: Hex;
  readonly fromName: string | null;
  readonly seq: number;
  readonly text: string;
  readonly sentAtMs: number;
  readonly receivedAtMs: number;
  readonly contentId: Hex;
  /** Position in the application's view (for `after=` paging). */
  readonly order: number;
}

interface PendingArrival {
  readonly m: ReturnType<typeof openMessage>;
  readonly now: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** Arrivals committed in one transaction at most. */
const ARRIVAL_BATCH_MAX = 256;

const peerIdOfKey = (keyHex: Hex): PeerId => peerIdFromPublicKey(publicKeyFromRaw(fromHex(keyHex)));

export class MessagingService {
  readonly metrics: MessagingMetrics;
  readonly store: MessageStore;
  /** Counts and latency for the stats report (delivery-stats.ts): no text, no correspondents. */
  private readonly deliveryStats = new DeliveryStats();
  private readonly self: Hex;
  private readonly messaging;
  private readonly keyRecord;
  private readonly spec;
  private readonly depositSpec;
  private readonly fetchSpec;
  private readonly maxBody: number;
  /** Set on nodes that hold envelopes for others (relay/archive members). */
  mailbox: Mailbox | undefined;
  private readonly fetching = new Set<string>();
  private pollTimer: NodeJS.Timeout | undefined;
  private readonly tracker = new SequenceTracker<{ seq: number }>();
  private readonly lastSeq = new Map<Hex, number>();
  /** Per recipient, when its first pending message is due (absent: nothing pending). */
  private readonly due = new Map<Hex, number>();
  private readonly busy = new Set<Hex>();
  private readonly dirty = new Set<Hex>();
  private lastOrder = 0;
  /** Senders waiting in send() for their message's first outcome, by `<recipient>:<seq>`. */
  private readonly waiters = new Map<string, () => void>();
  /** Arrivals waiting for the batch being committed (commitArrivals). */
  private arrivalQueue: PendingArrival[] = [];
  private committingArrivals = false;
  private arrivalsDrained: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private stopped = false;
  private readonly log: Logger;

  private readonly d: MessagingDeps;
  constructor(d: MessagingDeps) {
    this.d = d;
    this.metrics = createMessagingMetrics(d.registry);
    this.store = new MessageStore(d.writes);
    this.self = toHex(d.signingKey.publicKey);
    this.messaging = messagingKeyFromSeed(d.signingKey.secretKey.subarray(0, 32));
    this.keyRecord = signKeyRecord(d.chainId, d.signingKey, this.messaging.publicKey, Date.now());
    this.maxBody = d.maxBodyBytes ?? MESSAGING_DEFAULTS.maxBodyBytes;
    this.spec = msgProtocol(this.maxBody);
    this.depositSpec = depositProtocol(this.maxBody);
    this.fetchSpec = fetchProtocol(this.maxBody, MAILBOX_DEFAULTS.fetchBatch);
    this.log = d.log.child({ part: 'messaging' });
  }

  /** What the stats report carries of messaging: counts, latency, mailbox use (read-only). */
  stats(): MessagingStats {
    const m = this.mailbox;
    if (!m) return this.deliveryStats.snapshot();
    const use = m.quotas.usage();
    return this.deliveryStats.snapshot({ ...use, capacityBytes: m.quotas.limits.totalBytes });
  }

  /** Registers the protocols (before the host starts), restores state, starts the outbox. */
  async start(): Promise<void> {
    const { cursors, held, lastOrder } = await this.store.receiveState();
    this.lastOrder = lastOrder;
    for (const [sender, next] of cursors)
      this.tracker.restore(
        sender,
        next,
        held.filter((h) => h.sender === sender).map((h) => [h.seq, { seq: h.seq }]),
      );
    for (const h of held) if (!cursors.has(h.sender)) this.tracker.accept(h.sender, h.seq, { seq: h.seq });
    for (const [r, s] of await this.store.lastSequences()) this.lastSeq.set(r, s);
    const pending = await this.store.pending();
    for (const p of pending) if (!this.due.has(p.recipient)) this.due.set(p.recipient, p.nextAttemptAt);
    this.metrics.pending.set(pending.length);
    this.deliveryStats.restorePending(pending.length);
    await this.d.reqresp.register(MSG_KEY, () => [this.keyRecord.encoded]);
    await this.d.reqresp.register(this.spec, async (envelope, peer) => [
      await this.receive(envelope, peer.toString()),
    ]);
    if (this.d.isMailbox(this.self)) await this.serveMailbox();
    // A recipient that (re)connects gets its pending messages now, not at the end of its
    // backoff; a mailbox that connects is asked for what it holds for us.
    this.unsubscribe = this.d.onPeerConnected((peer) => {
      const key = this.keyOfPeer(peer);
      if (key && this.due.has(key)) {
        this.due.set(key, Date.now());
        void this.flush(key);
      }
      if (key && key !== this.self && this.d.isMailbox(key)) void this.fetchFrom(peer);
    });
    this.timer = setInterval(() => this.tick(), MESSAGING_DEFAULTS.tickMs);
    this.timer.unref();
    this.pollTimer = setInterval(() => void this.fetchFromMailboxes(), MESSAGING_DEFAULTS.mailboxPollMs);
    this.pollTimer.unref();
  }

  private async serveMailbox(): Promise<void> {
    const mailbox = await Mailbox.open(this.d.writes, {
      chainId: this.d.chainId,
      maxBodyBytes: this.maxBody,
      pseudonymKey: hkdf(
        sha256,
        this.d.signingKey.secretKey.subarray(0, 32),
        undefined,
        new TextEncoder().encode('cairn/mailbox/pseudonyms/v1'),
        32,
      ),
      ...(this.d.mailboxLimits ? { limits: this.d.mailboxLimits } : {}),
    });
    this.mailbox = mailbox;
    this.metrics.mailboxItems.set(mailbox.quotas.usage().items);
    await this.d.reqresp.register(this.depositSpec, async (envelope, peer) => {
      const from = peer.toString();
      const key = this.keyOfPeer(from);
      // Only members who may message may make us hold anything.
      if (!key || !this.d.mayMessage(key))
        this.reject('unknown-sender', from, 'depositor may not message here');
      try {
        await mailbox.deposit(envelope, key, Date.now());
      } catch (err) {
        if (err instanceof MessagingError) this.reject(err.code, from, err);
        if (err instanceof MailboxFull) {
          this.metrics.rejected.inc({ reason: 'mailbox-full' });
          throw new HandlerError(RESULT.unavailable, err.message);
        }
        throw err;
      }
      this.metrics.mailboxItems.set(mailbox.quotas.usage().items);
      return [new Uint8Array([0])];
    });
    // The requester is the connection's authenticated peer: nobody fetches another's envelopes.
    await this.d.reqresp.register(this.fetchSpec, async (_req, peer) => {
      const key = this.keyOfPeer(peer.toString());
      return key ? mailbox.fetch(key, Date.now()) : [];
    });
    await this.d.reqresp.register(MSG_ACK, async (receipts, peer) => {
      const key = this.keyOfPeer(peer.toString());
      if (!key) return [0];
      let n: number;
      try {
        n = await mailbox.acknowledge(key, receipts);
      } catch (err) {
        if (err instanceof MessagingError) this.reject(err.code, peer.toString(), err);
        throw err;
      }
      this.metrics.mailboxItems.set(mailbox.quotas.usage().items);
      return [n];
    });
    const sweep = setInterval(
      () =>
        void mailbox
          .sweep(Date.now())
          .then(() => this.metrics.mailboxItems.set(mailbox.quotas.usage().items))
          .catch(() => {}),
      3_600_000,
    );
    sweep.unref();
    this.sweepTimer = sweep;
  }
  private sweepTimer: NodeJS.Timeout | undefined;

  /** Asks every connected mailbox for what it holds for us. */
  private async fetchFromMailboxes(): Promise<void> {
    for (const peer of this.d.connectedPeers()) {
      const key = this.keyOfPeer(peer);
      if (key && key !== this.self && this.d.isMailbox(key)) await this.fetchFrom(peer);
    }
  }

  /** Fetches, opens and stores what one mailbox holds for us, then acknowledges it. */
  private async fetchFrom(peer: string): Promise<void> {
    if (this.fetching.has(peer) || this.stopped) return;
    this.fetching.add(peer);
    try {
      const pid = peerIdOfKey(this.keyOfPeer(peer)!);
      for (let round = 0; round < 100 && !this.stopped; round++) {
        const envelopes = await this.d.reqresp.request(pid, this.fetchSpec, new Uint8Array([1]));
        if (envelopes.length === 0) return;
        const receipts: Uint8Array[] = [];
        for (const env of envelopes) {
          try {
            receipts.push(await this.receive(env, peer));
          } catch (err) {
            this.log.debug({ err: (err as Error).message, peer }, 'mailbox envelope refused');
          }
        }
        this.metrics.fetched.inc(envelopes.length);
        for (let i = 0; i < receipts.length; i += MAX_ACK_RECEIPTS)
          await this.d.reqresp.request(pid, MSG_ACK, receipts.slice(i, i + MAX_ACK_RECEIPTS));
        // Nothing acknowledged means nothing would change by asking again.
        if (receipts.length === 0 || envelopes.length < MAILBOX_DEFAULTS.fetchBatch) return;
      }
    } catch (err) {
      this.log.debug({ err: (err as Error).message, peer }, 'mailbox fetch failed');
    } finally {
      this.fetching.delete(peer);
    }
  }

  /**
   * The recipient is unreachable: the sealed envelope goes to up to three connected mailboxes
   * (not the recipient). Returns how many took it; a full one's refusal is the error kept.
   */
  private async deposit(row: OutboxRow): Promise<{ stored: number; error?: string }> {
    const fresh = await this.store.outboxRow(row.recipient, row.seq);
    if (!fresh?.envelope) return { stored: 0 };
    const mailboxes = this.d
      .connectedPeers()
      .filter((p) => {
        const k = this.keyOfPeer(p);
        return k !== undefined && k !== row.recipient && k !== this.self && this.d.isMailbox(k);
      })
      .slice(0, MESSAGING_DEFAULTS.mailboxCopies);
    let stored = 0;
    let error: string | undefined;
    for (const p of mailboxes) {
      try {
        await this.d.reqresp.request(
          peerIdOfKey(this.keyOfPeer(p)!),
          this.depositSpec,
          fresh.envelope,
          MESSAGING_DEFAULTS.attemptTimeoutMs,
        );
        stored++;
      } catch (err) {
        error = (err as Error).message;
      }
    }
    if (stored > 0) {
      await this.store.markDeposited(row.recipient, row.seq, stored);
      this.metrics.deposited.inc({ outcome: 'stored' });
    } else if (mailboxes.length > 0) this.metrics.deposited.inc({ outcome: 'refused' });
    return { stored, ...(error ? { error } : {}) };
  }

  private keyOfPeer(peer: string): Hex | undefined {
    try {
      return this.d.resolve(peer);
    } catch {
      return undefined;
    }
  }

  private reject(code: string, from: string | undefined, err: MessagingError | string): never {
    const message = typeof err === 'string' ? err : err.message;
    this.metrics.rejected.inc({ reason: code });
    const action = PENALTY_OF[code as keyof typeof PENALTY_OF];
    if (from && action) this.d.penalise(from, action, `msg: ${message}`);
    throw new HandlerError(RESULT.invalidRequest, message);
  }

  /** The recipient's side: open, check the sender, store once, answer with a signed receipt. */
  private async receive(envelope: Uint8Array, from: string): Promise<Uint8Array> {
    let m: ReturnType<typeof openMessage>;
    try {
      m = openMessage(envelope, {
        chainId: this.d.chainId,
        self: this.d.signingKey.publicKey,
        messagingSecret: this.messaging.secretKey,
        messagingPublic: this.messaging.publicKey,
        maxBodyBytes: this.maxBody,
      });
    } catch (err) {
      if (err instanceof MessagingError) this.reject(err.code, from, err);
      throw err;
    }
    if (!this.d.mayMessage(m.senderHex))
      this.reject('unknown-sender', from, `sender ${m.senderHex.slice(0, 16)}… may not message here`);
    const now = Date.now();
    await new Promise<void>((resolve, reject) => {
      this.arrivalQueue.push({ m, now, resolve, reject });
      if (!this.committingArrivals) this.arrivalsDrained = this.commitArrivals();
    });
    return signReceipt(
      {
        chainId: this.d.chainId,
        contentId: m.contentId,
        sender: m.sender,
        sequence: m.sequence,
        receivedAtMs: now,
      },
      this.d.signingKey,
    ).encoded;
  }

  /**
   * Arrivals are judged and committed in batches, one at a time: the tracker takes a batch's
   * arrivals in order, their writes commit in one transaction, and only then is any of them
   * receipted. A failed commit receipts none of them and rebuilds their senders' state from
   * the store, so the tracker and the store never disagree (and a burst costs one fsync).
   */
  private async commitArrivals(): Promise<void> {
    this.committingArrivals = true;
    try {
      while (this.arrivalQueue.length > 0) {
        const batch = this.arrivalQueue.splice(0, ARRIVAL_BATCH_MAX);
        const records: ArrivalRecord[] = [];
        const judged: { a: PendingArrival; status: string }[] = [];
        for (const a of batch) {
          const { m } = a;
          const r = this.tracker.accept(m.senderHex, m.sequence, { seq: m.sequence });
          if (r.status === 'too-far-ahead') {
            this.metrics.rejected.inc({ reason: 'too-far-ahead' });
            a.reject(
              new HandlerError(
                RESULT.unavailable,
                `sequence ${m.sequence} too far ahead; send earlier ones first`,
              ),
            );
            continue;
          }
          judged.push({ a, status: r.status });
          if (r.status === 'duplicate') continue;
          const deliver =
            r.status === 'delivered'
              ? r.deliver.map((x) => ({ seq: x.seq, appOrder: ++this.lastOrder }))
              : [];
          records.push({
            row: {
              sender: m.senderHex,
              seq: m.sequence,
              body: m.body,
              sentAt: m.sentAtMs,
              receivedAt: a.now,
              contentId: m.contentId,
            },
            released: deliver,
            cursor: this.tracker.next(m.senderHex),
          });
        }
        try {
          if (records.length > 0) await this.store.recordArrivals(records);
        } catch (err) {
          // Not stored, so not receipted: these senders' state as the store has it.
          const { cursors, held, lastOrder } = await this.store.receiveState();
          this.lastOrder = lastOrder;
          for (const sender of new Set(judged.map((j) => j.a.m.senderHex)))
            this.tracker.restore(
              sender,
              cursors.get(sender) ?? 1,
              held.filter((h) => h.sender === sender).map((h) => [h.seq, { seq: h.seq }]),
            );
          this.log.warn({ err: (err as Error).message, arrivals: judged.length }, 'arrivals not stored');
          for (const j of judged) j.a.reject(err);
          continue;
        }
        if (records.length > 0) this.metrics.arrivalCommits.inc();
        for (const j of judged) {
          this.metrics.received.inc({ outcome: j.status });
          j.a.resolve();
        }
      }
    } catch (err) {
      // receiveState itself failed: nothing queued can be judged against a known state.
      for (const a of this.arrivalQueue.splice(0)) a.reject(err);
    } finally {
      this.committingArrivals = false;
    }
  }

  /**
   * Queues a message (persisted before this returns) and makes a first attempt at once;
   * `waitMs` bounds how long the caller waits for its receipt.
   */
  async send(to: string, text: string, waitMs = MESSAGING_DEFAULTS.attemptTimeoutMs): Promise<SentMessage> {
    if (this.stopped) throw new SendRefused('stopped', 'messaging is stopped');
    const recipient = this.d.resolve(to);
    if (!recipient) throw new SendRefused('unknown-recipient', `no member or peer ${JSON.stringify(to)}`);
    if (recipient === this.self) throw new SendRefused('to-self', 'a node does not message itself');
    const bytes = Buffer.byteLength(text);
    if (bytes > this.maxBody)
      throw new SendRefused('oversized', `message of ${bytes} bytes; at most ${this.maxBody}`);
    const seq = (this.lastSeq.get(recipient) ?? 0) + 1;
    this.lastSeq.set(recipient, seq);
    const now = Date.now();
    // Sealed in the same write when the recipient's key is known: one commit fewer per message.
    const record = await this.store.keyRecord(recipient);
    const sealed = record
      ? sealMessage({
          chainId: this.d.chainId,
          sender: this.d.signingKey,
          recipient: fromHex(recipient),
          recipientMessagingKey: openKeyRecord(record, this.d.chainId).messagingKey,
          sequence: seq,
          sentAtMs: now,
          body: text,
          maxBodyBytes: this.maxBody,
        })
      : undefined;
    await this.store.addOutbox({ recipient, seq, body: text, now, ...(sealed ? { sealed } : {}) });
    this.metrics.sent.inc();
    this.metrics.pending.inc();
    this.deliveryStats.sent();
    this.dirty.add(recipient);
    if (!this.due.has(recipient)) this.due.set(recipient, Date.now());
    // The caller waits for this message's own outcome, not for the whole outbox to drain.
    const id = `${recipient}:${seq}`;
    const settled = new Promise<void>((resolve) => this.waiters.set(id, resolve));
    void this.flush(recipient);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    this.waiters.delete(id);
    const row = await this.store.outboxRow(recipient, seq);
    if (!row) throw new Error(`outbox row ${seq} to ${recipient} vanished`);
    return this.view(row, row.deliveredAt !== null);
  }

  private view(
    r: Pick<OutboxRow, 'recipient' | 'seq' | 'contentId' | 'lastError'>,
    delivered: boolean,
  ): SentMessage {
    return {
      id: `${this.self}:${r.recipient}:${r.seq}`,
      to: r.recipient,
      toName: this.d.nameOf(r.recipient) ?? null,
      seq: r.seq,
      status: delivered ? 'delivered' : 'pending',
      contentId: r.contentId ? toHex(r.contentId) : null,
      error: delivered ? null : r.lastError,
    };
  }

  private tick(): void {
    const now = Date.now();
    for (const [r, at] of this.due) if (at <= now) void this.flush(r);
  }

  /** Sends a recipient's pending messages in sequence order until one fails or none are left. */
  private async flush(recipient: Hex): Promise<void> {
    if (this.busy.has(recipient) || this.stopped) return;
    this.busy.add(recipient);
    try {
      // Messages queued while this runs mark the recipient dirty: they are picked up before it ends.
      do {
        this.dirty.delete(recipient);
        const rows = await this.store.pending(recipient);
        const failed = await this.attemptInOrder(rows);
        if (this.stopped) return;
        if (failed) {
          const row = failed.row;
          let error = failed.error;
          // Unreachable: store and forward this one and those queued behind it, once each
          // (direct retries go on regardless). Only rows that could be sealed can be left.
          for (const later of failed.undelivered) {
            if (later.deposited !== 0 || this.stopped) continue;
            if (later !== row) await this.seal(later).catch(() => {});
            const d = await this.deposit(later);
            if (later === row && d.stored === 0 && d.error)
              error = `${error}; no mailbox took it: ${d.error}`;
          }
          const attempts = row.attempts + 1;
          const next = Date.now() + backoffMs(attempts);
          await this.store.markFailed(recipient, row.seq, attempts, next, error);
          for (const r of failed.undelivered) this.settle(r);
          this.due.set(recipient, next);
          this.metrics.attempts.inc({ outcome: 'failed' });
          this.log.debug({ recipient, seq: row.seq, attempts, error }, 'delivery attempt failed');
          return;
        }
      } while (this.dirty.has(recipient));
      this.due.delete(recipient);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, recipient }, 'outbox flush failed');
      this.due.set(recipient, Date.now() + MESSAGING_DEFAULTS.minBackoffMs);
    } finally {
      this.busy.delete(recipient);
    }
  }

  /**
   * Attempts `rows` (one recipient's, in sequence order) with up to `inFlight` open at once; the
   * first one alone when it still needs the recipient's key, so the key is fetched once. After a
   * failure no new attempt starts. Returns the lowest failed row with what was not delivered
   * from it on (failed or never tried), or undefined when every row was delivered.
   */
  private async attemptInOrder(
    rows: readonly OutboxRow[],
  ): Promise<{ row: OutboxRow; error: string; undelivered: OutboxRow[] } | undefined> {
    const errors = new Map<number, string>();
    let next = 0;
    const worker = async () => {
      while (next < rows.length && errors.size === 0 && !this.stopped) {
        const i = next++;
        const error = await this.attempt(rows[i]!);
        if (error) errors.set(i, error);
      }
    };
    if (rows[0] && !rows[0].envelope && !(await this.store.keyRecord(rows[0].recipient))) {
      next = 1;
      const error = await this.attempt(rows[0]);
      if (error) errors.set(0, error);
    }
    await Promise.all(Array.from({ length: MESSAGING_DEFAULTS.inFlight }, worker));
    // Stopped half way, nothing failed: the caller sees `stopped` and leaves the rest pending.
    if (errors.size === 0) return undefined;
    const first = Math.min(...errors.keys());
    const undelivered = rows.filter((_, i) => i >= first && (errors.has(i) || i >= next));
    return { row: rows[first]!, error: errors.get(first)!, undelivered };
  }

  /** A waiting send() of this row may return: it was delivered, or this attempt failed. */
  private settle(row: Pick<OutboxRow, 'recipient' | 'seq'>): void {
    this.waiters.get(`${row.recipient}:${row.seq}`)?.();
  }

  /** The row's envelope, sealed (and stored) on first use: every retry sends the same bytes. */
  private async seal(row: OutboxRow): Promise<{ envelope: Uint8Array; contentId: Uint8Array }> {
    if (row.envelope && row.contentId) return { envelope: row.envelope, contentId: row.contentId };
    const key = await this.recipientKey(
      row.recipient,
      peerIdOfKey(row.recipient),
      MESSAGING_DEFAULTS.attemptTimeoutMs,
    );
    const sealed = sealMessage({
      chainId: this.d.chainId,
      sender: this.d.signingKey,
      recipient: fromHex(row.recipient),
      recipientMessagingKey: key,
      sequence: row.seq,
      sentAtMs: row.createdAt,
      body: row.body,
      maxBodyBytes: this.maxBody,
    });
    await this.store.setEnvelope(row.recipient, row.seq, sealed.envelope, sealed.contentId);
    return sealed;
  }

  /** One delivery attempt; undefined when the receipt came back and was recorded, else why not. */
  private async attempt(row: OutboxRow): Promise<string | undefined> {
    const peer = peerIdOfKey(row.recipient);
    const timeout = MESSAGING_DEFAULTS.attemptTimeoutMs;
    try {
      const { envelope, contentId } = await this.seal(row);
      const [bytes] = await this.d.reqresp.request(peer, this.spec, envelope, timeout);
      let receipt: ReturnType<typeof openReceipt>;
      try {
        receipt = openReceipt(bytes!, this.d.chainId);
      } catch (err) {
        this.reject('bad-receipt', undefined, err as MessagingError);
      }
      if (
        !receiptMatches(receipt, {
          contentId,
          sender: this.d.signingKey.publicKey,
          recipient: fromHex(row.recipient),
          sequence: row.seq,
        })
      ) {
        this.metrics.rejected.inc({ reason: 'bad-receipt' });
        this.d.penalise(peer.toString(), 'low-tolerance', 'msg: receipt for another message');
        return 'bad-receipt: receipt for another message';
      }
      const now = Date.now();
      await this.store.markDelivered(row.recipient, row.seq, receipt.encoded, now);
      this.metrics.delivered.inc();
      this.metrics.pending.dec();
      this.metrics.attempts.inc({ outcome: 'delivered' });
      this.metrics.latency.observe((now - row.createdAt) / 1000);
      this.deliveryStats.delivered(now - row.createdAt);
      this.settle(row);
      return undefined;
    } catch (err) {
      return err instanceof ReqRespError || err instanceof MessagingError || err instanceof HandlerError
        ? err.message
        : `error: ${(err as Error).message}`;
    }
  }

  /** The recipient's messaging key: stored, or asked of the recipient itself and stored. */
  private async recipientKey(recipient: Hex, peer: PeerId, timeoutMs: number): Promise<Uint8Array> {
    const stored = await this.store.keyRecord(recipient);
    if (stored) return openKeyRecord(stored, this.d.chainId).messagingKey;
    const [bytes] = await this.d.reqresp.request(peer, MSG_KEY, new Uint8Array([1]), timeoutMs);
    let rec: ReturnType<typeof openKeyRecord>;
    try {
      rec = openKeyRecord(bytes!, this.d.chainId);
    } catch (err) {
      if (err instanceof MessagingError) {
        this.metrics.rejected.inc({ reason: `key-${err.code}` });
        this.d.penalise(peer.toString(), 'low-tolerance', `msg-key: ${err.message}`);
      }
      throw err;
    }
    if (rec.identityHex !== recipient) {
      this.metrics.rejected.inc({ reason: 'key-misaddressed' });
      this.d.penalise(peer.toString(), 'low-tolerance', 'msg-key: record of another identity');
      throw new MessagingError('unknown-recipient', 'key record of another identity');
    }
    await this.store.putKeyRecord(recipient, rec.encoded, Date.now());
    return rec.messagingKey;
  }

  /** The application's inbox: released messages after `after` (an `order`), oldest first. */
  async inbox(after = 0, limit = 100): Promise<InboxMessageView[]> {
    const rows = await this.store.inbox(after, Math.min(Math.max(1, limit), 1000));
    return rows.map((r) => ({
      id: `${r.sender}:${this.self}:${r.seq}`,
      from: r.sender,
      fromName: this.d.nameOf(r.sender) ?? null,
      seq: r.seq,
      text: r.body,
      sentAtMs: r.sentAt,
      receivedAtMs: r.receivedAt,
      contentId: toHex(r.contentId),
      order: r.appOrder!,
    }));
  }

  /** The newest `limit` sent messages, with what became of them. */
  async outbox(limit = 100): Promise<(SentMessage & { attempts: number; createdAtMs: number })[]> {
    const rows = await this.store.outbox(Math.min(Math.max(1, limit), 1000));
    return rows.map((r) => ({
      ...this.view(r, r.deliveredAt !== null),
      attempts: r.attempts,
      createdAtMs: r.createdAt,
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearInterval(this.pollTimer);
    clearInterval(this.sweepTimer);
    this.unsubscribe?.();
    await this.arrivalsDrained;
  }
}
