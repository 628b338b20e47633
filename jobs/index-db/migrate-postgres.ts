import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { type MigrationFile, pendingMigrations } from '../../node/store/migrate.ts';

// The table `prisma migrate deploy` keeps on PostgreSQL, so the CLI and Cairn agree on history.
const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;
/** Any fixed number: serialises concurrent openers (collector and gateways start together). */
const LOCK_KEY = 72_707_271;

/** Applies pending migrations on PostgreSQL under an advisory lock; returns the names applied. */
export async function applyPostgresMigrations(
  connectionString: string,
  migrations: readonly MigrationFile[],
): Promise<string[]> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  const done: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [LOCK_KEY]);
    await client.query(MIGRATIONS_TABLE);
    const rows = await client.query<{ migration_name: string; checksum: string }>(
      'SELECT migration_name, checksum FROM _prisma_migrations WHERE finished_at IS NOT NULL',
    );
    const applied = new Map(rows.rows.map((r) => [r.migration_name, r.checksum]));
    for (const m of pendingMigrations(applied, migrations)) {
      try {
        await client.query('BEGIN');
        // Simple-query protocol: the whole multi-statement file in one round trip.
        await client.query(m.sql);
        await client.query(
          `INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, now(), 1)`,
          [randomUUID(), m.checksum, m.name],
        );
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.name} failed: ${(err as Error).message}`);
      }
      done.push(m.name);
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [LOCK_KEY]).catch(() => {});
    await client.end();
  }
  return done;
}
