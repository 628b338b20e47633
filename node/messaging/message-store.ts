/**
 * Messaging's rows in the node store (migration 0005_messaging): key records of other members,
 * the outbox, the inbox and per-sender cursors. Only the service writes them; every change an
 * arrival makes (its row, the rows it releases to the application, the cursor) commits in one
 * transaction before the receipt is signed, so a receipt always means "stored here".
 *
 * Prepared statements on the node store's synchronous writer connection, not Prisma: under
 * bench:messaging libsql under Prisma and Prisma's own JS were the largest CPU items on both
 * sender and recipient (8–11 ms per message).
 */

import type Database from 'libsql';
import type { Hex } from '../chain/bytes.ts';
import type { GroupCommit } from '../store/group-commit.ts';

export interface OutboxRow {
  readonly recipient: Hex;
  readonly seq: number;
  readonly body: string;
  readonly envelope: Uint8Array | null;
  readonly contentId: Uint8Array | null;
  readonly createdAt: number;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly deliveredAt: number | null;
  readonly lastError: string | null;
  readonly deposited: number;
}

export interface InboxRow {
  readonly sender: Hex;
  readonly seq: number;
  readonly body: string;
  readonly sentAt: number;
  readonly receivedAt: number;
  readonly contentId: Uint8Array;
  readonly appOrder: number | null;
}

/** libsql hands blobs over as ArrayBuffers: viewed, not copied. */
const bytesOf = (b: Uint8Array | ArrayBuffer): Uint8Array =>
  b instanceof Uint8Array ? b : new Uint8Array(b);
type Blob = Uint8Array | ArrayBuffer;

const OUTBOX_COLUMNS = `"recipient","seq","body","envelope","contentId","createdAt","attempts","nextAttemptAt","deliveredAt","lastError","deposited"`;
interface OutboxSqlRow {
  recipient: string;
  seq: number;
  body: string;
  envelope: Blob | null;
  contentId: Blob | null;
  createdAt: number;
  attempts: number;
  nextAttemptAt: number;
  deliveredAt: number | null;
  lastError: string | null;
  deposited: number;
}
const outboxRow = (r: OutboxSqlRow): OutboxRow => ({
  recipient: r.recipient,
  seq: Number(r.seq),
  body: r.body,
  envelope: r.envelope === null ? null : bytesOf(r.envelope),
  contentId: r.contentId === null ? null : bytesOf(r.contentId),
  createdAt: Number(r.createdAt),
  attempts: Number(r.attempts),
  nextAttemptAt: Number(r.nextAttemptAt),
  deliveredAt: r.deliveredAt === null ? null : Number(r.deliveredAt),
  lastError: r.lastError,
  deposited: Number(r.deposited),
});

const INBOX_COLUMNS = `"sender","seq","body","sentAt","receivedAt","contentId","appOrder"`;
interface InboxSqlRow {
  sender: string;
  seq: number;
  body: string;
  sentAt: number;
  receivedAt: number;
  contentId: Blob;
  appOrder: number | null;
}
const inboxRow = (r: InboxSqlRow): InboxRow => ({
  sender: r.sender,
  seq: Number(r.seq),
  body: r.body,
  sentAt: Number(r.sentAt),
  receivedAt: Number(r.receivedAt),
  contentId: bytesOf(r.contentId),
  appOrder: r.appOrder === null ? null : Number(r.appOrder),
});

/**
 * Messaging's statements, prepared once per store on the writer connection, on the Prisma
 * schema (migrations 0005, 0008). Always run with one array of positional values: libsql takes
 * a lone object argument, a Uint8Array included, for named parameters.
 */
function prepareStatements(db: Database.Database) {
  const outboxWhere = `WHERE "recipient" = ? AND "seq" = ?`;
  return {
    keyRecord: db.prepare(`SELECT "record" FROM "MessageKey" WHERE "identity" = ?`),
    putKeyRecord: db.prepare(
      `INSERT INTO "MessageKey" ("identity","record","updatedAt") VALUES (?,?,?)
       ON CONFLICT("identity") DO UPDATE SET "record" = excluded."record", "updatedAt" = excluded."updatedAt"`,
    ),
    lastSequences: db.prepare(
      `SELECT "recipient", MAX("seq") AS "seq" FROM "OutboxMessage" GROUP BY "recipient"`,
    ),
    addOutbox: db.prepare(
      `INSERT INTO "OutboxMessage" ("recipient","seq","body","envelope","contentId","createdAt","nextAttemptAt") VALUES (?,?,?,?,?,?,?)`,
    ),
    // Through the (recipient, deliveredAt, seq) index of 0008: delivered rows are not scanned.
    pendingOf: db.prepare(
      `SELECT ${OUTBOX_COLUMNS} FROM "OutboxMessage" WHERE "recipient" = ? AND "deliveredAt" IS NULL ORDER BY "seq"`,
    ),
    pendingAll: db.prepare(
      `SELECT ${OUTBOX_COLUMNS} FROM "OutboxMessage" WHERE "deliveredAt" IS NULL ORDER BY "recipient", "seq"`,
    ),
    outboxRow: db.prepare(`SELECT ${OUTBOX_COLUMNS} FROM "OutboxMessage" ${outboxWhere}`),
    outboxNewest: db.prepare(
      `SELECT ${OUTBOX_COLUMNS} FROM "OutboxMessage" ORDER BY "createdAt" DESC LIMIT ?`,
    ),
    setEnvelope: db.prepare(`UPDATE "OutboxMessage" SET "envelope" = ?, "contentId" = ? ${outboxWhere}`),
    markFailed: db.prepare(
      `UPDATE "OutboxMessage" SET "attempts" = ?, "nextAttemptAt" = ?, "lastError" = ? ${outboxWhere}`,
    ),
    markDeposited: db.prepare(`UPDATE "OutboxMessage" SET "deposited" = ? ${outboxWhere}`),
    markDelivered: db.prepare(
      `UPDATE "OutboxMessage" SET "deliveredAt" = ?, "receipt" = ?, "lastError" = NULL ${outboxWhere}`,
    ),
    cursors: db.prepare(`SELECT "sender","next" FROM "MessageCursor"`),
    held: db.prepare(`SELECT ${INBOX_COLUMNS} FROM "InboxMessage" WHERE "appOrder" IS NULL`),
    lastOrder: db.prepare(`SELECT MAX("appOrder") AS "last" FROM "InboxMessage"`),
    // A copy already stored (a retry whose receipt was lost) is left alone.
    addInbox: db.prepare(
      `INSERT OR IGNORE INTO "InboxMessage" ("sender","seq","body","sentAt","receivedAt","contentId","appOrder") VALUES (?,?,?,?,?,?,NULL)`,
    ),
    release: db.prepare(`UPDATE "InboxMessage" SET "appOrder" = ? WHERE "sender" = ? AND "seq" = ?`),
    putCursor: db.prepare(
      `INSERT INTO "MessageCursor" ("sender","next") VALUES (?,?) ON CONFLICT("sender") DO UPDATE SET "next" = excluded."next"`,
    ),
    inbox: db.prepare(
      `SELECT ${INBOX_COLUMNS} FROM "InboxMessage" WHERE "appOrder" > ? ORDER BY "appOrder" LIMIT ?`,
    ),
  };
}

/** An update that found no row: the caller's state and the store disagree (never expected). */
export class MessageRowMissing extends Error {
  override readonly name = 'MessageRowMissing';
  readonly code = 'row-missing';
}

const mustChange = (r: { changes: number }, what: string): void => {
  if (r.changes === 0) throw new MessageRowMissing(`${what}: no such row`);
};

/** One arrival's writes: its row (a copy already stored is left alone), what it released, the cursor. */
export interface ArrivalRecord {
  readonly row: Omit<InboxRow, 'appOrder'>;
  readonly released: readonly { seq: number; appOrder: number }[];
  readonly cursor: number;
}

/** Key records kept in memory at most (a roster of this many members is far beyond the seeds' 100). */
const KEY_CACHE_MAX = 4096;

export class MessageStore {
  /**
   * Writes go through the node store's group commit: the sends, deliveries and arrivals of one
   * event-loop turn share one transaction (one fsync) on the synchronous writer connection.
   * Reads run on the same connection, synchronously, and see only committed rows: every write's
   * promise resolves after its commit.
   */
  private readonly writes: GroupCommit;
  private readonly sql: ReturnType<typeof prepareStatements>;
  private readonly keys = new Map<Hex, Uint8Array>();
  constructor(writes: GroupCommit) {
    this.writes = writes;
    this.sql = prepareStatements(writes.connection);
  }

  /** Transactions the store's group commit has run (a burst of sends shares a few). */
  get transactions(): number {
    return this.writes.transactions;
  }

  async keyRecord(identity: Hex): Promise<Uint8Array | undefined> {
    const cached = this.keys.get(identity);
    if (cached) return cached;
    const r = this.sql.keyRecord.get([identity]) as { record: Blob } | undefined;
    if (!r) return undefined;
    const record = bytesOf(r.record);
    this.remember(identity, record);
    return record;
  }

  async putKeyRecord(identity: Hex, record: Uint8Array, now: number): Promise<void> {
    await this.writes.commit(() => this.sql.putKeyRecord.run([identity, record, now]));
    this.remember(identity, record);
  }

  /** Key records are read on every send: kept in memory, a bounded number (members are few). */
  private remember(identity: Hex, record: Uint8Array): void {
    if (this.keys.size >= KEY_CACHE_MAX && !this.keys.has(identity)) this.keys.clear();
    this.keys.set(identity, record);
  }

  /** The highest sequence used towards each recipient (the next send takes one more). */
  async lastSequences(): Promise<Map<Hex, number>> {
    const rows = this.sql.lastSequences.all() as { recipient: string; seq: number }[];
    return new Map(rows.map((r) => [r.recipient, Number(r.seq)]));
  }

  async addOutbox(row: {
    recipient: Hex;
    seq: number;
    body: string;
    now: number;
    sealed?: { envelope: Uint8Array; contentId: Uint8Array };
  }): Promise<void> {
    await this.writes.commit(() =>
      this.sql.addOutbox.run([
        row.recipient,
        row.seq,
        row.body,
        row.sealed?.envelope ?? null,
        row.sealed?.contentId ?? null,
        row.now,
        row.now,
      ]),
    );
  }

  async pending(recipient?: Hex): Promise<OutboxRow[]> {
    const rows = (
      recipient === undefined ? this.sql.pendingAll.all() : this.sql.pendingOf.all([recipient])
    ) as OutboxSqlRow[];
    return rows.map(outboxRow);
  }

  async outboxRow(recipient: Hex, seq: number): Promise<OutboxRow | undefined> {
    const r = this.sql.outboxRow.get([recipient, seq]) as OutboxSqlRow | undefined;
    return r ? outboxRow(r) : undefined;
  }

  async outbox(limit: number): Promise<OutboxRow[]> {
    return (this.sql.outboxNewest.all([limit]) as OutboxSqlRow[]).map(outboxRow);
  }

  async setEnvelope(recipient: Hex, seq: number, envelope: Uint8Array, contentId: Uint8Array): Promise<void> {
    await this.writes.commit(() =>
      mustChange(
        this.sql.setEnvelope.run([envelope, contentId, recipient, seq]),
        `outbox ${recipient}:${seq}`,
      ),
    );
  }

  async markFailed(recipient: Hex, seq: number, attempts: number, nextAttemptAt: number, error: string) {
    await this.writes.commit(() =>
      mustChange(
        this.sql.markFailed.run([attempts, nextAttemptAt, error.slice(0, 500), recipient, seq]),
        `outbox ${recipient}:${seq}`,
      ),
    );
  }

  async markDeposited(recipient: Hex, seq: number, mailboxes: number): Promise<void> {
    await this.writes.commit(() =>
      mustChange(this.sql.markDeposited.run([mailboxes, recipient, seq]), `outbox ${recipient}:${seq}`),
    );
  }

  async markDelivered(recipient: Hex, seq: number, receipt: Uint8Array, now: number): Promise<void> {
    await this.writes.commit(() =>
      mustChange(this.sql.markDelivered.run([now, receipt, recipient, seq]), `outbox ${recipient}:${seq}`),
    );
  }

  /** Cursors and held (not yet released) messages, to restore the sequence tracker. */
  async receiveState(): Promise<{ cursors: Map<Hex, number>; held: InboxRow[]; lastOrder: number }> {
    const cursors = this.sql.cursors.all() as { sender: string; next: number }[];
    const held = this.sql.held.all() as InboxSqlRow[];
    const last = this.sql.lastOrder.get() as { last: number | null };
    return {
      cursors: new Map(cursors.map((c) => [c.sender, Number(c.next)])),
      held: held.map(inboxRow),
      lastOrder: last.last === null ? 0 : Number(last.last),
    };
  }

  /**
   * Arrivals in one write, in order: each one's row (a copy already stored is left alone), the
   * rows it released with their application order, and its sender's cursor. All or none.
   */
  async recordArrivals(arrivals: readonly ArrivalRecord[]): Promise<void> {
    const s = this.sql;
    await this.writes.commit(() => {
      for (const a of arrivals) {
        const r = a.row;
        s.addInbox.run([r.sender, r.seq, r.body, r.sentAt, r.receivedAt, r.contentId]);
        for (const x of a.released)
          mustChange(s.release.run([x.appOrder, r.sender, x.seq]), `inbox ${r.sender}:${x.seq}`);
        s.putCursor.run([r.sender, a.cursor]);
      }
    });
  }

  /** What the application sees: released messages, oldest first, after `afterOrder`. */
  async inbox(afterOrder: number, limit: number): Promise<InboxRow[]> {
    return (this.sql.inbox.all([afterOrder, limit]) as InboxSqlRow[]).map(inboxRow);
  }
}
