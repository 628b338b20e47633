/**
 * Store and forward, after Briar's mailbox and Waku's store: a member with `relay` or `archive`
 * holds envelopes for a recipient that was unreachable, until the recipient fetches them and its
 * signed receipt deletes them, or their time to live (7 days) ends. A mailbox sees the envelope's
 * clear part only (recipient, ephemeral key, nonce): never text, never the sender's key.
 *
 * Everything a depositor can make a mailbox hold is bounded: per recipient and per depositor, in
 * count and in bytes, and in total. A deposit over a quota is refused with the quota's name (the
 * sender keeps the message in its outbox). Rows are in the node store, so a restart loses nothing.
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import type Database from 'libsql';
import { type Hex, toHex } from '../chain/bytes.ts';
import type { GroupCommit } from '../store/group-commit.ts';
import { readEnvelope } from './envelope.ts';
import { openReceipt } from './receipt.ts';

export const MAILBOX_DEFAULTS = {
  perRecipientCount: 1_000,
  perRecipientBytes: 16 * 1024 * 1024,
  perDepositorCount: 1_000,
  perDepositorBytes: 16 * 1024 * 1024,
  totalBytes: 256 * 1024 * 1024,
  ttlMs: 7 * 24 * 3600 * 1000,
  /** Envelopes per fetch answer. */
  fetchBatch: 64,
} as const;
export type MailboxLimits = { -readonly [K in keyof typeof MAILBOX_DEFAULTS]: number };

export type QuotaName =
  | 'recipient-count'
  | 'recipient-bytes'
  | 'depositor-count'
  | 'depositor-bytes'
  | 'total-bytes';

export class MailboxFull extends Error {
  override readonly name = 'MailboxFull';
  readonly quota: QuotaName;
  constructor(quota: QuotaName, limit: number) {
    super(`mailbox full: ${quota} quota (${limit}) reached; the sender keeps the message`);
    this.quota = quota;
  }
}

interface Usage {
  count: number;
  bytes: number;
}

/** Counts per recipient and per depositor (pure; the Mailbox keeps it in step with its rows). */
export class MailboxQuotas {
  private readonly recipients = new Map<string, Usage>();
  private readonly depositors = new Map<string, Usage>();
  private total = 0;

  readonly limits: MailboxLimits;
  constructor(limits: MailboxLimits) {
    this.limits = limits;
  }

  /** Throws MailboxFull when one more item of `bytes` would exceed a quota. */
  check(recipient: string, depositor: string, bytes: number): void {
    const r = this.recipients.get(recipient) ?? { count: 0, bytes: 0 };
    const d = this.depositors.get(depositor) ?? { count: 0, bytes: 0 };
    const l = this.limits;
    if (r.count + 1 > l.perRecipientCount) throw new MailboxFull('recipient-count', l.perRecipientCount);
    if (r.bytes + bytes > l.perRecipientBytes) throw new MailboxFull('recipient-bytes', l.perRecipientBytes);
    if (d.count + 1 > l.perDepositorCount) throw new MailboxFull('depositor-count', l.perDepositorCount);
    if (d.bytes + bytes > l.perDepositorBytes) throw new MailboxFull('depositor-bytes', l.perDepositorBytes);
    if (this.total + bytes > l.totalBytes) throw new MailboxFull('total-bytes', l.totalBytes);
  }

  add(recipient: string, depositor: string, bytes: number, sign = 1): void {
    for (const [m, k] of [
      [this.recipients, recipient],
      [this.depositors, depositor],
    ] as const) {
      const u = m.get(k) ?? { count: 0, bytes: 0 };
      u.count += sign;
      u.bytes += sign * bytes;
      if (u.count <= 0) m.delete(k);
      else m.set(k, u);
    }
    this.total += sign * bytes;
  }

  remove(recipient: string, depositor: string, bytes: number): void {
    this.add(recipient, depositor, bytes, -1);
  }

  usage(): { items: number; bytes: number } {
    let items = 0;
    for (const u of this.recipients.values()) items += u.count;
    return { items, bytes: this.total };
  }
}

/**
 * The mailbox's statements, prepared once on the node store's writer connection (positional
 * values only, as in message-store.ts): deposit, fetch and acknowledge are per-message paths.
 */
function prepareStatements(db: Database.Database) {
  return {
    usage: db.prepare(`SELECT "recipient","depositor","bytes" FROM "MailboxItem"`),
    held: db.prepare(`SELECT "recipient","depositor","bytes" FROM "MailboxItem" WHERE "contentId" = ?`),
    insert: db.prepare(
      `INSERT OR IGNORE INTO "MailboxItem" ("contentId","recipient","depositor","envelope","bytes","storedAt","expiresAt") VALUES (?,?,?,?,?,?,?)`,
    ),
    // Through the recipient index; expired rows wait for the sweep.
    fetch: db.prepare(
      `SELECT "envelope" FROM "MailboxItem" WHERE "recipient" = ? AND "expiresAt" > ? ORDER BY "storedAt" LIMIT ?`,
    ),
    remove: db.prepare(`DELETE FROM "MailboxItem" WHERE "contentId" = ?`),
    expired: db.prepare(
      `SELECT "contentId","recipient","depositor","bytes" FROM "MailboxItem" WHERE "expiresAt" <= ?`,
    ),
  };
}
interface HeldRow {
  recipient: string;
  depositor: string;
  bytes: number;
}

export class Mailbox {
  readonly quotas: MailboxQuotas;

  private readonly writes: GroupCommit;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly chainId: Uint8Array;
  private readonly maxBodyBytes: number;
  private readonly pseudonymKey: Uint8Array;
  private constructor(
    writes: GroupCommit,
    chainId: Uint8Array,
    maxBodyBytes: number,
    limits: MailboxLimits,
    pseudonymKey: Uint8Array,
  ) {
    this.writes = writes;
    this.sql = prepareStatements(writes.connection);
    this.chainId = chainId;
    this.maxBodyBytes = maxBodyBytes;
    this.pseudonymKey = pseudonymKey;
    this.quotas = new MailboxQuotas(limits);
  }

  /** `writes`: the node store's group commit (NodeStore.writes), whose connection holds the rows. */
  static async open(
    writes: GroupCommit,
    o: {
      chainId: Uint8Array;
      maxBodyBytes: number;
      limits?: Partial<MailboxLimits>;
      /** This mailbox's secret for depositor pseudonyms (stable across restarts). */
      pseudonymKey: Uint8Array;
    },
  ): Promise<Mailbox> {
    const m = new Mailbox(
      writes,
      o.chainId,
      o.maxBodyBytes,
      { ...MAILBOX_DEFAULTS, ...o.limits },
      o.pseudonymKey,
    );
    for (const r of m.sql.usage.all() as HeldRow[]) m.quotas.add(r.recipient, r.depositor, Number(r.bytes));
    return m;
  }

  /**
   * Holds an envelope (a copy already held is accepted again, unchanged). MessagingError
   * (malformed, oversized) for bytes that are not an envelope; MailboxFull over a quota.
   */
  async deposit(bytes: Uint8Array, depositorKey: Hex, now: number): Promise<'stored' | 'duplicate'> {
    const h = readEnvelope(bytes, this.maxBodyBytes);
    // The per-sender quota needs to tell depositors apart, not to name them: the store keeps a
    // keyed hash, so a copy of the file does not say who wrote to whom.
    const depositor = toHex(
      hmac(sha256, this.pseudonymKey, Buffer.from(depositorKey, 'utf8')).subarray(0, 16),
    );
    if (this.sql.held.get([h.contentIdHex])) return 'duplicate';
    this.quotas.check(h.recipientHex, depositor, bytes.length);
    // Counted before the commit, so deposits committing together cannot pass a quota between
    // them; taken back if the row is not written after all.
    this.quotas.add(h.recipientHex, depositor, bytes.length);
    let inserted: number;
    try {
      inserted = await this.writes.commit(
        () =>
          this.sql.insert.run([
            h.contentIdHex,
            h.recipientHex,
            depositor,
            h.encoded,
            bytes.length,
            now,
            now + this.quotas.limits.ttlMs,
          ]).changes,
      );
    } catch (err) {
      this.quotas.remove(h.recipientHex, depositor, bytes.length);
      throw err;
    }
    if (inserted === 0) {
      // The same envelope deposited twice in one turn: the first copy holds it.
      this.quotas.remove(h.recipientHex, depositor, bytes.length);
      return 'duplicate';
    }
    return 'stored';
  }

  /** The oldest envelopes held for `recipient` (not expired). */
  async fetch(recipient: Hex, now: number, limit = this.quotas.limits.fetchBatch): Promise<Uint8Array[]> {
    const rows = this.sql.fetch.all([recipient, now, limit]) as { envelope: Uint8Array | ArrayBuffer }[];
    // libsql hands blobs over as ArrayBuffers: viewed, not copied.
    return rows.map((r) => (r.envelope instanceof Uint8Array ? r.envelope : new Uint8Array(r.envelope)));
  }

  /**
   * Deletes what the recipient's signed receipts acknowledge, in one commit. Only receipts
   * signed by `requester` count: nobody else can make a mailbox drop a member's messages. A
   * receipt that does not open ends the list: those before it are still deleted, then its
   * error is thrown.
   */
  async acknowledge(requester: Hex, receipts: readonly Uint8Array[]): Promise<number> {
    const acknowledged = new Map<string, HeldRow>();
    let refused: unknown;
    for (const bytes of receipts) {
      let r: ReturnType<typeof openReceipt>;
      try {
        r = openReceipt(bytes, this.chainId);
      } catch (err) {
        refused = err;
        break;
      }
      if (Buffer.from(r.recipient).toString('hex') !== requester) continue;
      const row = this.sql.held.get([r.contentIdHex]) as HeldRow | undefined;
      if (!row || row.recipient !== requester) continue;
      acknowledged.set(r.contentIdHex, row);
    }
    const deleted = await this.remove(acknowledged);
    if (refused !== undefined) throw refused;
    return deleted;
  }

  /** Drops envelopes past their time to live. */
  async sweep(now: number): Promise<number> {
    const rows = this.sql.expired.all([now]) as (HeldRow & { contentId: string })[];
    return this.remove(new Map(rows.map((r) => [r.contentId, r])));
  }

  /** Deletes these rows in one commit and gives their room back; how many were there. */
  private async remove(rows: ReadonlyMap<string, HeldRow>): Promise<number> {
    if (rows.size === 0) return 0;
    const gone = await this.writes.commit(() =>
      [...rows].filter(([contentId]) => this.sql.remove.run([contentId]).changes > 0),
    );
    for (const [, row] of gone) this.quotas.remove(row.recipient, row.depositor, Number(row.bytes));
    return gone.length;
  }
}
