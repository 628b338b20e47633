/**
 * Messaging's rows in the node store (migration 0005_messaging): key records of other members,
 * the outbox, the inbox and per-sender cursors. Only the service writes them; every change an
 * arrival makes (its row, the rows it releases to the application, the cursor) commits in one
 * transaction before the receipt is signed, so a receipt always means "stored here".
 */
import type { Hex } from '../chain/bytes.ts';
import type { PrismaClient } from '../store/generated/client.ts';
import { GroupCommit } from '../store/group-commit.ts';

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

type Db = Pick<
  PrismaClient,
  'messageKey' | 'outboxMessage' | 'inboxMessage' | 'messageCursor' | '$transaction' | '$executeRaw'
>;

const outboxRow = (r: {
  recipient: string;
  seq: number;
  body: string;
  envelope: Uint8Array | null;
  contentId: Uint8Array | null;
  createdAt: bigint;
  attempts: number;
  nextAttemptAt: bigint;
  deliveredAt: bigint | null;
  lastError: string | null;
  deposited: number;
}): OutboxRow => ({
  ...r,
  envelope: r.envelope ? new Uint8Array(r.envelope) : null,
  contentId: r.contentId ? new Uint8Array(r.contentId) : null,
  createdAt: Number(r.createdAt),
  nextAttemptAt: Number(r.nextAttemptAt),
  deliveredAt: r.deliveredAt === null ? null : Number(r.deliveredAt),
});

const inboxRow = (r: {
  sender: string;
  seq: number;
  body: string;
  sentAt: bigint;
  receivedAt: bigint;
  contentId: Uint8Array;
  appOrder: number | null;
}): InboxRow => ({
  ...r,
  sentAt: Number(r.sentAt),
  receivedAt: Number(r.receivedAt),
  contentId: new Uint8Array(r.contentId),
});

/** One arrival's writes: its row (a copy already stored is left alone), what it released, the cursor. */
export interface ArrivalRecord {
  readonly row: Omit<InboxRow, 'appOrder'>;
  readonly released: readonly { seq: number; appOrder: number }[];
  readonly cursor: number;
}

/** Key records kept in memory at most (a roster of this many members is far beyond the seeds' 100). */
const KEY_CACHE_MAX = 4096;

export class MessageStore {
  private readonly db: Db;
  /** Outbox writes of concurrent sends and deliveries share transactions (one fsync each). */
  private readonly writes: GroupCommit;
  private readonly keys = new Map<Hex, Uint8Array>();
  constructor(db: Db) {
    this.db = db;
    this.writes = new GroupCommit(db);
  }

  /** Transactions the outbox's group commit has run (a burst of sends shares a few). */
  get outboxTransactions(): number {
    return this.writes.transactions;
  }

  async keyRecord(identity: Hex): Promise<Uint8Array | undefined> {
    const cached = this.keys.get(identity);
    if (cached) return cached;
    const r = await this.db.messageKey.findUnique({ where: { identity } });
    if (!r) return undefined;
    const record = new Uint8Array(r.record);
    this.remember(identity, record);
    return record;
  }

  async putKeyRecord(identity: Hex, record: Uint8Array, now: number): Promise<void> {
    const data = { record: Buffer.from(record), updatedAt: BigInt(now) };
    await this.db.messageKey.upsert({ where: { identity }, create: { identity, ...data }, update: data });
    this.remember(identity, record);
  }

  /** Key records are read on every send: kept in memory, a bounded number (members are few). */
  private remember(identity: Hex, record: Uint8Array): void {
    if (this.keys.size >= KEY_CACHE_MAX && !this.keys.has(identity)) this.keys.clear();
    this.keys.set(identity, record);
  }

  /** The highest sequence used towards each recipient (the next send takes one more). */
  async lastSequences(): Promise<Map<Hex, number>> {
    const rows = await this.db.outboxMessage.groupBy({ by: ['recipient'], _max: { seq: true } });
    return new Map(rows.map((r) => [r.recipient, r._max.seq ?? 0]));
  }

  async addOutbox(row: {
    recipient: Hex;
    seq: number;
    body: string;
    now: number;
    sealed?: { envelope: Uint8Array; contentId: Uint8Array };
  }): Promise<void> {
    await this.writes.commit(() => [
      this.db.outboxMessage.create({
        data: {
          recipient: row.recipient,
          seq: row.seq,
          body: row.body,
          ...(row.sealed
            ? { envelope: Buffer.from(row.sealed.envelope), contentId: Buffer.from(row.sealed.contentId) }
            : {}),
          createdAt: BigInt(row.now),
          nextAttemptAt: BigInt(row.now),
        },
      }),
    ]);
  }

  async pending(recipient?: Hex): Promise<OutboxRow[]> {
    const rows = await this.db.outboxMessage.findMany({
      where: { deliveredAt: null, ...(recipient ? { recipient } : {}) },
      orderBy: [{ recipient: 'asc' }, { seq: 'asc' }],
    });
    return rows.map(outboxRow);
  }

  async outboxRow(recipient: Hex, seq: number): Promise<OutboxRow | undefined> {
    const r = await this.db.outboxMessage.findUnique({ where: { recipient_seq: { recipient, seq } } });
    return r ? outboxRow(r) : undefined;
  }

  async outbox(limit: number): Promise<OutboxRow[]> {
    const rows = await this.db.outboxMessage.findMany({ orderBy: { createdAt: 'desc' }, take: limit });
    return rows.map(outboxRow);
  }

  async setEnvelope(recipient: Hex, seq: number, envelope: Uint8Array, contentId: Uint8Array): Promise<void> {
    await this.writes.commit(() => [
      this.db.outboxMessage.update({
        where: { recipient_seq: { recipient, seq } },
        data: { envelope: Buffer.from(envelope), contentId: Buffer.from(contentId) },
      }),
    ]);
  }

  async markFailed(recipient: Hex, seq: number, attempts: number, nextAttemptAt: number, error: string) {
    await this.writes.commit(() => [
      this.db.outboxMessage.update({
        where: { recipient_seq: { recipient, seq } },
        data: { attempts, nextAttemptAt: BigInt(nextAttemptAt), lastError: error.slice(0, 500) },
      }),
    ]);
  }

  async markDeposited(recipient: Hex, seq: number, mailboxes: number): Promise<void> {
    await this.writes.commit(() => [
      this.db.outboxMessage.update({
        where: { recipient_seq: { recipient, seq } },
        data: { deposited: mailboxes },
      }),
    ]);
  }

  async markDelivered(recipient: Hex, seq: number, receipt: Uint8Array, now: number): Promise<void> {
    await this.writes.commit(() => [
      this.db.outboxMessage.update({
        where: { recipient_seq: { recipient, seq } },
        data: { deliveredAt: BigInt(now), receipt: Buffer.from(receipt), lastError: null },
      }),
    ]);
  }

  /** Cursors and held (not yet released) messages, to restore the sequence tracker. */
  async receiveState(): Promise<{ cursors: Map<Hex, number>; held: InboxRow[]; lastOrder: number }> {
    const cursors = await this.db.messageCursor.findMany();
    const held = await this.db.inboxMessage.findMany({ where: { appOrder: null } });
    const last = await this.db.inboxMessage.aggregate({ _max: { appOrder: true } });
    return {
      cursors: new Map(cursors.map((c) => [c.sender, c.next])),
      held: held.map(inboxRow),
      lastOrder: last._max.appOrder ?? 0,
    };
  }

  /**
   * Arrivals in one transaction, in order: each one's row (a copy already stored is left alone),
   * the rows it released with their application order, and its sender's cursor. All or none.
   */
  async recordArrivals(arrivals: readonly ArrivalRecord[]): Promise<void> {
    await this.db.$transaction(
      arrivals.flatMap((a) => {
        const r = a.row;
        return [
          this.db
            .$executeRaw`INSERT OR IGNORE INTO "InboxMessage" ("sender","seq","body","sentAt","receivedAt","contentId","appOrder") VALUES (${r.sender}, ${r.seq}, ${r.body}, ${BigInt(r.sentAt)}, ${BigInt(r.receivedAt)}, ${Buffer.from(r.contentId)}, NULL)`,
          ...a.released.map((x) =>
            this.db.inboxMessage.update({
              where: { sender_seq: { sender: r.sender, seq: x.seq } },
              data: { appOrder: x.appOrder },
            }),
          ),
          this.db.messageCursor.upsert({
            where: { sender: r.sender },
            create: { sender: r.sender, next: a.cursor },
            update: { next: a.cursor },
          }),
        ];
      }),
    );
  }

  /** What the application sees: released messages, oldest first, after `afterOrder`. */
  async inbox(afterOrder: number, limit: number): Promise<InboxRow[]> {
    const rows = await this.db.inboxMessage.findMany({
      where: { appOrder: { gt: afterOrder } },
      orderBy: { appOrder: 'asc' },
      take: limit,
    });
    return rows.map(inboxRow);
  }
}
