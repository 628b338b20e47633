import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '@libsql/client';
import type Database from 'libsql';

/**
 * Applies the Prisma migrations of a SQLite schema at open, the way `prisma migrate deploy`
 * does (same `_prisma_migrations` table and checksums), without spawning the Prisma CLI: a
 * node opens its store on every start and in every test, and the CLI costs about a second.
 */
const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    TEXT PRIMARY KEY NOT NULL,
    "checksum"              TEXT NOT NULL,
    "finished_at"           DATETIME,
    "migration_name"        TEXT NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        DATETIME,
    "started_at"            DATETIME NOT NULL DEFAULT current_timestamp,
    "applied_steps_count"   INTEGER UNSIGNED NOT NULL DEFAULT 0
)`;

export interface MigrationFile {
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export async function readMigrations(dir: string): Promise<MigrationFile[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    }),
  );
}

/**
 * The migrations not applied yet, in order, given the checksums of those applied (by name).
 * Lazy: an applied migration whose file was edited since throws when the walk reaches it.
 */
export function* pendingMigrations(
  applied: ReadonlyMap<string, string>,
  migrations: readonly MigrationFile[],
): Generator<MigrationFile> {
  for (const m of migrations) {
    const sum = applied.get(m.name);
    if (sum === undefined) yield m;
    else if (sum !== m.checksum) throw new Error(`migration ${m.name} was changed after it was applied`);
  }
}

const APPLIED_SQL = 'SELECT migration_name, checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL';
const IS_APPLIED_SQL =
  'SELECT 1 FROM _prisma_migrations WHERE migration_name = ? AND finished_at IS NOT NULL';
const RECORD_SQL = `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
              VALUES (?, ?, ?, ?, ?, 1)`;
const recordArgs = (m: MigrationFile) => {
  const now = new Date().toISOString();
  return [randomUUID(), m.checksum, now, m.name, now];
};

/**
 * applyMigrations on libsql's synchronous connection: what the node store opens with, so a node
 * never loads the async client (@libsql/client costs ~33 MB of RSS). Each migration runs in its
 * own BEGIN IMMEDIATE transaction, which waits out another process's lock (busy_timeout).
 */
export function applyMigrationsSync(
  db: Database.Database,
  migrations: readonly MigrationFile[],
  busyTimeoutMs = 10_000,
): string[] {
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  db.exec(MIGRATIONS_TABLE);
  const rows = db.prepare(APPLIED_SQL).all() as { migration_name: string; checksum: string }[];
  const applied = new Map(rows.map((r) => [String(r.migration_name), String(r.checksum)]));
  const done: string[] = [];
  for (const m of pendingMigrations(applied, migrations)) {
    db.exec('BEGIN IMMEDIATE');
    try {
      // Another process may have applied it between our read and this write lock.
      if (db.prepare(IS_APPLIED_SQL).get([m.name])) {
        db.exec('ROLLBACK');
        continue;
      }
      db.exec(m.sql);
      db.prepare(RECORD_SQL).run(recordArgs(m));
      db.exec('COMMIT');
    } catch (err) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
    }
    done.push(m.name);
  }
  return done;
}

/** Applies pending migrations in order; returns the names applied. Refuses edited migrations. */
export async function applyMigrations(
  db: Client,
  migrations: readonly MigrationFile[],
  busyTimeoutMs = 10_000,
): Promise<string[]> {
  await db.execute(MIGRATIONS_TABLE);
  const rows = await db.execute(APPLIED_SQL);
  const applied = new Map(rows.rows.map((r) => [String(r.migration_name), String(r.checksum)]));
  const done: string[] = [];
  for (const m of pendingMigrations(applied, migrations)) {
    // libsql's transaction() takes the client's connection and opens a fresh one for what follows,
    // so a busy timeout set by the caller covers only the first migration: the second one's
    // BEGIN IMMEDIATE failed at once with SQLITE_BUSY while another process (the collector and
    // the gateway open one index DB together) held the lock. Set it on every connection used.
    await db.execute(`PRAGMA busy_timeout=${busyTimeoutMs}`);
    const tx = await db.transaction('write');
    try {
      // Another process may have applied it between our read and this write lock.
      const again = await tx.execute({ sql: IS_APPLIED_SQL, args: [m.name] });
      if (again.rows.length > 0) {
        await tx.rollback();
        continue;
      }
      await tx.executeMultiple(m.sql);
      await tx.execute({ sql: RECORD_SQL, args: recordArgs(m) });
      await tx.commit();
    } catch (err) {
      await tx.rollback();
      throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
    }
    done.push(m.name);
  }
  return done;
}
