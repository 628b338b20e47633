import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createClient } from '@libsql/client';
import { PrismaLibSQL } from '@prisma/adapter-libsql';
import { PrismaPg } from '@prisma/adapter-pg';
import { applyMigrations, readMigrations } from '../../node/store/migrate.ts';
import type { IndexProvider } from '../../prisma/index/build-schemas.ts';
import { PrismaClient as PostgresClient } from './generated/postgresql/client.ts';
import { PrismaClient as SqliteClient } from './generated/sqlite/client.ts';
import { applyPostgresMigrations } from './migrate-postgres.ts';
import { backfillSearchText } from './search-backfill.ts';

/**
 * The index DB client. Both providers are generated from the same models (prisma/index), so the
 * PostgreSQL client has the SQLite client's shape; code is written against this one type.
 */
export type IndexDb = SqliteClient;
export type { IndexProvider };

const MIGRATIONS = (p: IndexProvider) =>
  path.join(import.meta.dirname, '../../prisma/index', p, 'migrations');

export const DEFAULT_INDEX_DB_FILE = '.data/index.db';

export interface IndexDbLocation {
  readonly provider: IndexProvider;
  /** `file:<path>` for SQLite, the connection string for PostgreSQL. */
  readonly url: string;
}

/**
 * Where the index DB lives: PostgreSQL when `DATABASE_URL` is a postgres URL, otherwise the
 * embedded SQLite file (`DATABASE_URL=file:…` or the default under `.data/`).
 */
export function indexDbLocation(databaseUrl = process.env.DATABASE_URL): IndexDbLocation {
  if (databaseUrl && /^postgres(ql)?:\/\//.test(databaseUrl))
    return { provider: 'postgresql', url: databaseUrl };
  if (databaseUrl?.startsWith('file:')) return { provider: 'sqlite', url: databaseUrl };
  if (databaseUrl)
    throw new Error(`DATABASE_URL must start with file:, postgres:// or postgresql:// (got ${databaseUrl})`);
  return { provider: 'sqlite', url: `file:${path.resolve(DEFAULT_INDEX_DB_FILE)}` };
}

const PROVIDERS_OF = new WeakMap<object, IndexProvider>();

/** The provider a client opened by openIndexDb talks to (raw SQL differs between them). */
export function indexProvider(db: IndexDb): IndexProvider {
  const p = PROVIDERS_OF.get(db);
  if (!p) throw new Error('not an index DB opened by openIndexDb');
  return p;
}

/** Opens the index DB, applying pending migrations first (safe when several processes open it at once). */
export async function openIndexDb(location: IndexDbLocation = indexDbLocation()): Promise<IndexDb> {
  const migrations = await readMigrations(MIGRATIONS(location.provider));
  if (location.provider === 'postgresql') {
    await applyPostgresMigrations(location.url, migrations);
    const client = new PostgresClient({ adapter: new PrismaPg({ connectionString: location.url }) });
    PROVIDERS_OF.set(client, 'postgresql');
    await backfillSearchText(client as unknown as IndexDb);
    return client as unknown as IndexDb;
  }
  const file = location.url.slice('file:'.length);
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const writer = createClient({ url: location.url });
  try {
    // The busy timeout first, so that switching to WAL also waits for a process holding a lock.
    await writer.execute('PRAGMA busy_timeout=10000');
    // WAL: the gateway reads while the collector writes, from other processes.
    await writer.execute('PRAGMA journal_mode=WAL');
    await applyMigrations(writer, migrations);
  } finally {
    writer.close();
  }
  const client = new SqliteClient({ adapter: new PrismaLibSQL({ url: location.url }) });
  await client.$executeRawUnsafe('PRAGMA busy_timeout=10000');
  PROVIDERS_OF.set(client, 'sqlite');
  await backfillSearchText(client);
  return client;
}
