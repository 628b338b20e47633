import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import Database from 'libsql';
import { decodeBlock, decodeHeader } from '../chain/block-codec.ts';
import { bigIntToBytes, bytesToBigInt, fromHex, type Hex, toHex } from '../chain/bytes.ts';
import type { ChainUpdate, PersistedChainState } from '../chain/chain.ts';
import { formatCheckpoint, parseCheckpoint } from '../chain/checkpoint.ts';
import { decodeEntry } from '../chain/entry-codec.ts';
import type { EntryHolder, EntryIndex } from '../chain/entry-index.ts';
import { type HeaderStore, type StoredHeader, WORK_BYTES } from '../chain/header-store.ts';
import type { Orphan } from '../chain/orphan-pool.ts';
import { workForTarget } from '../chain/pow.ts';
import type { SealedBlock, SealedEntry } from '../chain/types.ts';
import type { MempoolOrigin } from '../mempool/mempool.ts';
import type { PrismaClient } from './generated/client.ts';
import { GroupCommit } from './group-commit.ts';
import { applyMigrationsSync, readMigrations } from './migrate.ts';

/** StoreMeta key of the highest admin checkpoint final on this node ("<height>:<hash>"). */
const FINALIZED_KEY = 'finalized';
const MIGRATIONS_DIR = path.join(import.meta.dirname, '../../prisma/node/migrations');
/**
 * StoreMeta key set once the ModelEntry table holds the model entries of every stored block: a
 * store written before that table existed is backfilled at its first open after the upgrade.
 */
const MODEL_ENTRIES_KEY = 'modelEntries';
/** StoreMeta key set once every stored block's chainWork is filled in (stores from before 0007). */
const CHAIN_WORK_KEY = 'chainWork';
/**
 * Page size of a new store file. A stored block is a few KB (its encoding, header and entry
 * ids), which 4 KB pages split over overflow pages; with 16 KB pages the commit of a sync batch
 * takes about half the CPU and a third of the system time. Existing files keep their size.
 */
const PAGE_SIZE = 16_384;

export interface NodeStoreOptions {
  /** Path of the SQLite file (its directory is created). */
  readonly file: string;
  /** The chain this store belongs to; opening a store of another chain fails. */
  readonly chainIdHex: Hex;
  readonly genesisHashHex: Hex;
  /**
   * The genesis block's target: what a store from before chainWork was kept (0007) needs to fill
   * it in at its first open. Without it such a store refuses to open.
   */
  readonly genesisTarget?: bigint;
  /**
   * Largest size the file may grow to (SQLite's max_page_count): a commit that would exceed it
   * fails as on a full disk. Default: no limit beyond the disk's.
   */
  readonly maxBytes?: number;
}

/** Ids per holders query: well under SQLite's bound on parameters. */
const HOLDERS_CHUNK = 500;
/** libsql hands blobs over as ArrayBuffers: viewed, not copied. */
const asBytes = (b: Uint8Array | ArrayBuffer): Uint8Array =>
  b instanceof Uint8Array ? b : new Uint8Array(b);

const encodeWork = (work: bigint): Uint8Array => bigIntToBytes(work, WORK_BYTES);

interface HeaderRow {
  hash: Uint8Array | ArrayBuffer;
  height: number;
  header: Uint8Array | ArrayBuffer;
  entryIds: Uint8Array | ArrayBuffer;
  chainWork: Uint8Array | ArrayBuffer | null;
  main: number;
}
/** The columns a HeaderRow reads (never "raw": a header read does not touch the block's bytes). */
const HEADER_COLUMNS = `"hash","height","header","entryIds","chainWork",("staleReason" IS NULL) AS "main"`;

function storedHeaderOf(r: HeaderRow): StoredHeader {
  const hash = asBytes(r.hash);
  if (r.chainWork === null) throw new Error(`block ${toHex(hash)} has no chainWork`);
  return {
    hash,
    hashHex: toHex(hash),
    header: decodeHeader(asBytes(r.header)),
    height: Number(r.height),
    chainWork: bytesToBigInt(asBytes(r.chainWork)),
    entryIds: splitIds(asBytes(r.entryIds)),
    onMain: Number(r.main) === 1,
  };
}

function joinIds(entries: readonly SealedEntry[]): Uint8Array {
  const out = new Uint8Array(entries.length * 32);
  for (let i = 0; i < entries.length; i++) out.set(entries[i]!.id, i * 32);
  return out;
}
function splitIds(b: Uint8Array): Hex[] {
  const out: Hex[] = [];
  for (let i = 0; i < b.length; i += 32) out.push(toHex(b.subarray(i, i + 32)));
  return out;
}

/**
 * The write statements of `apply`, prepared once per store. They are always run with one array
 * of positional values: libsql takes a lone object argument, a Uint8Array included, for named
 * parameters (and aborts the process on a blob given that way).
 */
function prepareWrites(db: Database.Database) {
  return {
    insertBlock: db.prepare(
      `INSERT OR IGNORE INTO "Block" ("hash","height","prevHash","header","entryIds","raw","staleReason","receivedAt","chainWork") VALUES (?,?,?,?,?,?,?,?,?)`,
    ),
    putBlockEntry: db.prepare(`INSERT OR IGNORE INTO "BlockEntry" ("entryId","blockHash") VALUES (?,?)`),
    markStale: db.prepare(`UPDATE "Block" SET "staleReason" = ? WHERE "hash" = ?`),
    setHead: db.prepare(
      `INSERT INTO "ChainHead" ("id","hash","height","updatedAt") VALUES (1,?,?,?)
       ON CONFLICT("id") DO UPDATE SET "hash" = excluded."hash", "height" = excluded."height", "updatedAt" = excluded."updatedAt"`,
    ),
    deleteOrphan: db.prepare(`DELETE FROM "Orphan" WHERE "hash" = ?`),
    putOrphan: db.prepare(
      `INSERT OR REPLACE INTO "Orphan" ("hash","parentHash","raw","receivedAt","fromPeer") VALUES (?,?,?,?,?)`,
    ),
    deleteMempoolEntry: db.prepare(`DELETE FROM "MempoolEntry" WHERE "id" = ?`),
    putMempoolEntry: db.prepare(
      `INSERT OR REPLACE INTO "MempoolEntry" ("id","raw","seq","origin") VALUES (?,?,?,?)`,
    ),
    putMeta: db.prepare(`INSERT OR REPLACE INTO "StoreMeta" ("key","value") VALUES (?,?)`),
    putConfigEntry: db.prepare(
      `INSERT OR IGNORE INTO "ConfigEntry" ("blockHash","position","raw") VALUES (?,?,?)`,
    ),
    putModelEntry: db.prepare(
      `INSERT OR IGNORE INTO "ModelEntry" ("blockHash","position","raw") VALUES (?,?,?)`,
    ),
  };
}

/**
 * The node's durable state in one SQLite file: blocks, head, orphans, mempool. The schema and
 * its migrations are Prisma's (prisma/node); the node reads and writes through libsql's
 * synchronous connection with prepared statements, so it never loads the Prisma client, its
 * query compiler or @libsql/client (~50 MB of RSS together, a third of a small device's
 * budget). `inspect()` opens a Prisma client on the same file for tests and tools.
 * `apply` commits a ChainUpdate in one transaction (WAL, synchronous=FULL), so a block and
 * everything it changes are either all on disk or not at all, and a kill -9 at any moment
 * leaves a consistent prefix.
 */
export class NodeStore implements EntryIndex, HeaderStore {
  private seq = 0n;
  /**
   * Transactions committed since open. Each is one fsync (synchronous=FULL): mempool admissions
   * come in batches (ChainService.submitEntries), one update and so one transaction per batch.
   */
  commits = 0;
  private readonly statements: ReturnType<typeof prepareWrites>;

  private inspector: Promise<PrismaClient> | undefined;
  /**
   * Group commit on the writer connection, for writes that come one by one from many callers
   * (messaging's outbox, inbox and mailbox): those of one event-loop turn share a transaction.
   */
  readonly writes: GroupCommit;
  private readonly writer: Database.Database;
  private readonly opts: NodeStoreOptions;
  private constructor(writer: Database.Database, opts: NodeStoreOptions) {
    this.writer = writer;
    this.opts = opts;
    this.statements = prepareWrites(writer);
    this.writes = new GroupCommit(writer);
  }

  static async open(opts: NodeStoreOptions): Promise<NodeStore> {
    // The writer opens the path itself and inspect()'s Prisma client a file: URL of it; these
    // characters would make the two open different files.
    if (/[#?%]/.test(opts.file))
      throw new Error(`store path ${opts.file}: '#', '?' and '%' are not supported`);
    await mkdir(path.dirname(opts.file), { recursive: true });
    const writer = new Database(opts.file);
    try {
      // Only takes effect on a new, empty file, so it must come before anything is written.
      writer.pragma(`page_size = ${PAGE_SIZE}`);
      // WAL lets readers (inspect(), a second process) run beside the writer; FULL makes every committed batch survive power loss.
      writer.pragma('journal_mode = WAL');
      writer.pragma('synchronous = FULL');
      writer.pragma('busy_timeout = 5000');
      if (opts.maxBytes !== undefined) {
        const pageSize = (writer.prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
        writer.pragma(`max_page_count = ${Math.max(1, Math.floor(opts.maxBytes / pageSize))}`);
      }
      // Another process opening the same store waits for its migrations instead of failing.
      applyMigrationsSync(writer, await readMigrations(MIGRATIONS_DIR));
      writer.pragma('busy_timeout = 5000');
      const store = new NodeStore(writer, opts);
      store.checkIdentity();
      if (store.meta(MODEL_ENTRIES_KEY) === undefined) store.backfillModelEntries();
      if (store.meta(CHAIN_WORK_KEY) === undefined) store.backfillChainWork(opts);
      store.storedBlocks = store.countBlocks();
      const last = writer
        .prepare(`SELECT max("seq") AS "seq" FROM "MempoolEntry"`)
        .safeIntegers(true)
        .get() as {
        seq: bigint | null;
      };
      store.seq = last.seq ?? 0n;
      return store;
    } catch (err) {
      // A refused open (another chain's store, an edited migration) leaves nothing open behind.
      writer.close();
      throw err;
    }
  }

  /**
   * A Prisma client on this store's file, for tests and tools that inspect its tables (opened on
   * first use, closed with the store). The node itself never calls it.
   */
  inspect(): Promise<PrismaClient> {
    this.inspector ??= (async () => {
      const [{ PrismaClient }, { PrismaLibSQL }] = await Promise.all([
        import('./generated/client.ts'),
        import('@prisma/adapter-libsql'),
      ]);
      const prisma = new PrismaClient({ adapter: new PrismaLibSQL({ url: `file:${this.opts.file}` }) });
      await prisma.$executeRawUnsafe('PRAGMA busy_timeout=5000');
      return prisma;
    })();
    return this.inspector;
  }

  /** A StoreMeta value, or undefined when the key is not set. */
  private meta(key: string): string | undefined {
    const row = this.writer.prepare(`SELECT "value" FROM "StoreMeta" WHERE "key" = ?`).get([key]) as
      | { value: string }
      | undefined;
    return row?.value;
  }

  private countBlocks(): number {
    return Number((this.writer.prepare(`SELECT count(*) AS "n" FROM "Block"`).get() as { n: number }).n);
  }

  private checkIdentity(): void {
    const chainId = this.meta('chainId');
    if (chainId === undefined) {
      this.statements.putMeta.run(['chainId', this.opts.chainIdHex]);
    } else if (chainId !== this.opts.chainIdHex) {
      throw new Error(
        `the store at ${this.opts.file} belongs to chain ${chainId}, not ${this.opts.chainIdHex}; use another data dir`,
      );
    }
  }

  /**
   * Everything Chain.restore needs. Headers and entry ids are stored apart, so no block is
   * decoded. With `window`, only the main chain's last `window` blocks below the head (and the
   * side blocks above the lowest of them) are read: start-up does not grow with the chain.
   */
  async load(opts: { readonly window?: number } = {}): Promise<PersistedChainState> {
    const head = this.writer.prepare(`SELECT "hash","height" FROM "ChainHead" WHERE "id" = 1`).get() as
      | { hash: Uint8Array | ArrayBuffer; height: number }
      | undefined;
    const rootHeight = opts.window === undefined || !head ? 0 : Math.max(0, head.height - opts.window);
    const root = rootHeight > 0 ? this.mainHeader(rootHeight) : undefined;
    if (rootHeight > 0 && !root)
      throw new Error(`no main-chain block at height ${rootHeight} below the head`);
    const rows = (
      this.writer
        .prepare(`SELECT ${HEADER_COLUMNS} FROM "Block" WHERE "height" > ? ORDER BY "height"`)
        .all([rootHeight]) as HeaderRow[]
    ).map(storedHeaderOf);
    const blocks = root ? [root, ...rows] : rows;
    const orphanRows = this.writer
      .prepare(`SELECT "raw","receivedAt","fromPeer" FROM "Orphan" ORDER BY "receivedAt"`)
      .all() as { raw: Uint8Array | ArrayBuffer; receivedAt: number; fromPeer: string | null }[];
    const orphans: Orphan[] = orphanRows.map((o) => ({
      block: decodeBlock(asBytes(o.raw)),
      receivedAt: Number(o.receivedAt),
      from: o.fromPeer ?? undefined,
    }));
    const mempoolRows = this.writer
      .prepare(`SELECT "raw","origin" FROM "MempoolEntry" ORDER BY "seq"`)
      .all() as { raw: Uint8Array | ArrayBuffer; origin: string }[];
    const mempool = mempoolRows.map((m) => decodeEntry(asBytes(m.raw)));
    const mempoolOrigins = new Map<Hex, MempoolOrigin>();
    mempoolRows.forEach((m, i) => {
      if (m.origin === 'local' || m.origin === 'returned') mempoolOrigins.set(mempool[i]!.idHex, m.origin);
    });
    const finalValue = this.meta(FINALIZED_KEY);
    const finalized = finalValue !== undefined ? parseCheckpoint(finalValue) : undefined;
    const configEntries = this.entriesByBlock('ConfigEntry');
    const modelEntries = this.entriesByBlock('ModelEntry');
    // The main chain's blocks at or below the root that carry config or model entries: what the
    // roster and the model head below the window are folded from.
    const below = root
      ? (
          this.writer
            .prepare(
              `SELECT "hash","height" FROM "Block" WHERE "height" <= ? AND "staleReason" IS NULL AND "hash" IN
               (SELECT "blockHash" FROM "ConfigEntry" UNION SELECT "blockHash" FROM "ModelEntry") ORDER BY "height"`,
            )
            .all([rootHeight]) as { hash: Uint8Array | ArrayBuffer; height: number }[]
        ).map((r) => ({ hashHex: toHex(asBytes(r.hash)), height: Number(r.height) }))
      : undefined;
    return {
      ...(root && below ? { window: { root, below } } : {}),
      ...(finalized ? { finalized } : {}),
      ...(configEntries.size ? { configEntries } : {}),
      ...(modelEntries.size ? { modelEntries } : {}),
      ...(mempoolOrigins.size ? { mempoolOrigins } : {}),
      blocks,
      headHashHex: head ? toHex(asBytes(head.hash)) : this.opts.genesisHashHex,
      orphans,
      mempool,
    };
  }

  /** The entries kept apart per block (config or model entries), in block and position order. */
  private entriesByBlock(table: 'ConfigEntry' | 'ModelEntry'): Map<Hex, SealedEntry[]> {
    const rows = this.writer
      .prepare(`SELECT "blockHash","raw" FROM "${table}" ORDER BY "blockHash","position"`)
      .all() as { blockHash: Uint8Array | ArrayBuffer; raw: Uint8Array | ArrayBuffer }[];
    const byBlock = new Map<Hex, SealedEntry[]>();
    for (const r of rows) {
      const key = toHex(asBytes(r.blockHash));
      const list = byBlock.get(key) ?? [];
      list.push(decodeEntry(asBytes(r.raw)));
      byBlock.set(key, list);
    }
    return byBlock;
  }

  /**
   * The model entries of every stored block, for a store written before they were kept apart
   * (without them a restart would judge the next version against no head at all, and split
   * from its peers). Decodes only blocks that have entries; the rows and the key that says they
   * are complete commit together, so a crash in between runs it again at the next open. A new
   * store has no blocks: it only sets the key.
   */
  private backfillModelEntries(): void {
    const rows = this.writer
      .prepare(`SELECT "hash","raw" FROM "Block" WHERE length("entryIds") > 0`)
      .all() as { hash: ArrayBuffer | Uint8Array; raw: ArrayBuffer | Uint8Array }[];
    const bytes = (b: ArrayBuffer | Uint8Array) => (b instanceof Uint8Array ? b : new Uint8Array(b));
    this.writer.exec('BEGIN IMMEDIATE');
    try {
      for (const r of rows) {
        const block = decodeBlock(bytes(r.raw));
        block.entries.forEach((e, i) => {
          if (e.payload.kind === 'model') this.statements.putModelEntry.run([bytes(r.hash), i, e.encoded]);
        });
      }
      this.statements.putMeta.run([MODEL_ENTRIES_KEY, 'complete']);
      this.writer.exec('COMMIT');
    } catch (err) {
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      throw err;
    }
  }

  /**
   * A stored block, read through the writer's prepared statement (readEncodedBlocks): 25 µs
   * where Prisma's findUnique took 1.4–2.3 ms. A reorg loads every block it disconnects before
   * it changes anything, so through Prisma a 4,608-block reorg stalled the node for 20 s (every
   * request to it timing out). The write path is synchronous (apply), so this read never sees
   * an open transaction.
   */
  async loadBlock(hashHex: Hex): Promise<SealedBlock | undefined> {
    const raw = this.readEncodedBlocks([hashHex]).get(hashHex);
    return raw ? decodeBlock(raw) : undefined;
  }

  /** Stored encodings of several blocks (for serving peers without decoding). */
  async loadEncodedBlocks(hashHexes: readonly Hex[]): Promise<Map<Hex, Uint8Array>> {
    return this.readEncodedBlocks(hashHexes);
  }

  /**
   * Stored encodings of several blocks, read through the writer's connection with one prepared
   * statement: what block serving reads a few at a time. Through Prisma, the first hundred
   * reads of 8 blocks of 90 KB each grew a process by ~130 MB (its result objects, copied
   * through the driver adapter); this way each block is one Buffer the row hands over.
   */
  readEncodedBlocks(hashHexes: readonly Hex[]): Map<Hex, Uint8Array> {
    this.readBlock ??= this.writer.prepare(`SELECT "raw" FROM "Block" WHERE "hash" = ?`);
    const out = new Map<Hex, Uint8Array>();
    for (const h of hashHexes) {
      const row = this.readBlock.get([fromHex(h)]) as { raw: Uint8Array | ArrayBuffer } | undefined;
      // libsql hands blobs over as ArrayBuffers: viewed, not copied.
      if (row) out.set(h, row.raw instanceof Uint8Array ? row.raw : new Uint8Array(row.raw));
    }
    return out;
  }
  private readBlock: Database.Statement | undefined;

  /**
   * EntryIndex: the stored blocks holding each of `ids`, in one indexed query through the
   * writer's connection (synchronous, like readEncodedBlocks; the write path never leaves a
   * transaction open across an await). Statements are prepared per id count, a few kept.
   */
  holders(ids: readonly Hex[]): Map<Hex, EntryHolder[]> {
    const out = new Map<Hex, EntryHolder[]>();
    for (let i = 0; i < ids.length; i += HOLDERS_CHUNK) {
      const chunk = ids.slice(i, i + HOLDERS_CHUNK);
      const rows = this.holdersStatement(chunk.length).all(chunk.map((id) => fromHex(id))) as {
        entryId: Uint8Array | ArrayBuffer;
        hash: Uint8Array | ArrayBuffer;
        height: number;
      }[];
      for (const r of rows) {
        const id = toHex(asBytes(r.entryId));
        const list = out.get(id) ?? [];
        list.push({ hashHex: toHex(asBytes(r.hash)), height: Number(r.height) });
        out.set(id, list);
      }
    }
    return out;
  }

  private holdersStatement(n: number): Database.Statement {
    let st = this.holderStatements.get(n);
    if (!st) {
      if (this.holderStatements.size >= 16)
        this.holderStatements.delete(this.holderStatements.keys().next().value!);
      st = this.writer.prepare(
        `SELECT e."entryId" AS "entryId", b."hash" AS "hash", b."height" AS "height" FROM "BlockEntry" e
         JOIN "Block" b ON b."hash" = e."blockHash" WHERE e."entryId" IN (${Array(n).fill('?').join(',')})`,
      );
    }
    // Most recently used last: the counts blocks carry repeat.
    this.holderStatements.delete(n);
    this.holderStatements.set(n, st);
    return st;
  }
  private readonly holderStatements = new Map<number, Database.Statement>();

  /** Blocks stored (genesis is not): kept by apply, so status reports need no count query. */
  storedBlocks = 0;

  private headerStatements:
    | { byHash: Database.Statement; mainAt: Database.Statement; mainRange: Database.Statement }
    | undefined;
  private get headerReads() {
    this.headerStatements ??= {
      byHash: this.writer.prepare(`SELECT ${HEADER_COLUMNS} FROM "Block" WHERE "hash" = ?`),
      mainAt: this.writer.prepare(
        `SELECT ${HEADER_COLUMNS} FROM "Block" WHERE "height" = ? AND "staleReason" IS NULL LIMIT 1`,
      ),
      mainRange: this.writer.prepare(
        `SELECT ${HEADER_COLUMNS} FROM "Block" WHERE "height" BETWEEN ? AND ? AND "staleReason" IS NULL ORDER BY "height"`,
      ),
    };
    return this.headerStatements;
  }

  /** HeaderStore: a stored block's header by hash (synchronous, through the writer's connection). */
  storedHeader(hashHex: Hex): StoredHeader | undefined {
    const row = this.headerReads.byHash.get([fromHex(hashHex)]) as HeaderRow | undefined;
    return row ? storedHeaderOf(row) : undefined;
  }

  /** HeaderStore: the committed main chain's header at a height, through the height index. */
  mainHeader(height: number): StoredHeader | undefined {
    const row = this.headerReads.mainAt.get([height]) as HeaderRow | undefined;
    return row ? storedHeaderOf(row) : undefined;
  }

  /** HeaderStore: the committed main chain's headers in a height range, lowest first. */
  mainHeaders(from: number, to: number): StoredHeader[] {
    if (to < from) return [];
    return (this.headerReads.mainRange.all([from, to]) as HeaderRow[]).map(storedHeaderOf);
  }

  /**
   * Fills in the cumulative work of every stored block, for a store written before it was kept
   * (0007): one pass over the headers in height order, once, at the first open after the
   * upgrade; the key that says it is done commits with the rows.
   */
  private backfillChainWork(opts: NodeStoreOptions): void {
    const rows = this.writer
      .prepare(`SELECT "hash","prevHash","header" FROM "Block" ORDER BY "height"`)
      .all() as {
      hash: Uint8Array | ArrayBuffer;
      prevHash: Uint8Array | ArrayBuffer;
      header: Uint8Array | ArrayBuffer;
    }[];
    const work = new Map<Hex, bigint>();
    const update = this.writer.prepare(`UPDATE "Block" SET "chainWork" = ? WHERE "hash" = ?`);
    this.writer.exec('BEGIN IMMEDIATE');
    try {
      for (const r of rows) {
        const header = decodeHeader(asBytes(r.header));
        const prev = toHex(asBytes(r.prevHash));
        // Height 1's parent is genesis, which is not stored: its work is its target's.
        let parentWork = work.get(prev);
        if (parentWork === undefined && prev === opts.genesisHashHex) {
          if (opts.genesisTarget === undefined)
            throw new Error(`the store at ${opts.file} needs the genesis target to fill in chainWork`);
          parentWork = workForTarget(opts.genesisTarget);
        }
        if (parentWork === undefined) continue; // unreachable from genesis: never loaded as a tree node
        const w = parentWork + workForTarget(header.target);
        work.set(toHex(asBytes(r.hash)), w);
        update.run([encodeWork(w), asBytes(r.hash)]);
      }
      this.statements.putMeta.run([CHAIN_WORK_KEY, 'complete']);
      this.writer.exec('COMMIT');
    } catch (err) {
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      throw err;
    }
  }

  async blockCount(): Promise<number> {
    return this.countBlocks();
  }

  /**
   * Commits one ChainUpdate atomically, as one SQLite transaction. This hot path writes through
   * libsql's synchronous driver with statements prepared once at open, on the Prisma schema:
   * with bench:chain's block shape a Prisma raw batch cost 72 µs per block, a libsql-client
   * batch (which prepares every statement it runs) 37–47 µs, and this path 24–28 µs, commit
   * included. Reads go through Prisma, except block bytes (readEncodedBlocks, loadBlock).
   */
  async apply(u: ChainUpdate): Promise<void> {
    // IMMEDIATE takes the write lock up front, so a commit never fails half-way for a lock.
    const seqBefore = this.seq;
    const storedBefore = this.storedBlocks;
    this.writer.exec('BEGIN IMMEDIATE');
    try {
      this.writeRows(u);
      this.writer.exec('COMMIT');
      this.commits++;
    } catch (err) {
      this.seq = seqBefore;
      this.storedBlocks = storedBefore;
      // SQLite may have rolled back already (disk full, I/O error): a second ROLLBACK would fail
      // and hide the error that matters.
      if (this.writer.inTransaction) this.writer.exec('ROLLBACK');
      throw err;
    }
  }

  /** The rows of one update, inside apply's transaction. */
  private writeRows(u: ChainUpdate): void {
    const w = this.statements;
    const newBlocks = new Set<Hex>();
    for (const { block, node, receivedAt } of u.blocks) {
      newBlocks.add(block.hashHex);
      const inserted = w.insertBlock.run([
        block.hash,
        block.header.height,
        block.header.prevHash,
        block.headerBytes,
        joinIds(block.entries),
        block.encoded,
        u.stale.get(block.hashHex) ?? null,
        receivedAt,
        encodeWork(node.chainWork),
      ]);
      this.storedBlocks += inserted.changes;
      for (const e of block.entries) w.putBlockEntry.run([e.id, block.hash]);
      // Config and model entries apart, so reopening rebuilds the roster and the model head at
      // every block without decoding blocks.
      block.entries.forEach((e, i) => {
        if (e.payload.kind === 'config') w.putConfigEntry.run([block.hash, i, e.encoded]);
        else if (e.payload.kind === 'model') w.putModelEntry.run([block.hash, i, e.encoded]);
      });
    }
    for (const [hash, reason] of u.stale) {
      if (!newBlocks.has(hash)) w.markStale.run([reason, fromHex(hash)]);
    }
    if (u.head) w.setHead.run([u.head.hash, u.head.height, Date.now()]);
    if (u.finalized) w.putMeta.run([FINALIZED_KEY, formatCheckpoint(u.finalized)]);
    for (const [hash, orphan] of u.orphans) {
      if (orphan === null) w.deleteOrphan.run([fromHex(hash)]);
    }
    for (const o of u.orphans.values()) {
      if (o === null) continue;
      w.putOrphan.run([o.block.hash, o.block.header.prevHash, o.block.encoded, o.receivedAt, o.from ?? null]);
    }
    for (const [id, entry] of u.mempool) {
      if (entry === null) w.deleteMempoolEntry.run([fromHex(id)]);
    }
    for (const e of u.mempool.values()) {
      if (e !== null)
        w.putMempoolEntry.run([e.id, e.encoded, ++this.seq, u.mempoolOrigins?.get(e.idHex) ?? 'peer']);
    }
  }

  async close(): Promise<void> {
    // Prepared statements keep libsql's connection open past close(); a checkpoint first leaves
    // everything in the .db file itself, so a closed store can be copied or moved as one file.
    if (this.writer.open) {
      try {
        this.writer.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // A full disk can refuse the checkpoint; the WAL still holds every committed page and
        // the next open replays it.
      }
      this.writer.close();
    }
    const inspector = this.inspector;
    this.inspector = undefined;
    if (inspector) await (await inspector).$disconnect();
  }
}
