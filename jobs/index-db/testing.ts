import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type IndexProvider, PROVIDERS } from '../../prisma/index/build-schemas.ts';
import { type IndexDb, type IndexDbLocation, openIndexDb } from './open.ts';

/** Server used to create throwaway PostgreSQL databases in tests. */
export const TEST_POSTGRES_URL =
  process.env.TEST_POSTGRES_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
/** The suite runs every index-DB test against both providers. */
export const TEST_PROVIDERS: readonly IndexProvider[] = PROVIDERS;

export interface TestIndexDb {
  readonly db: IndexDb;
  readonly location: IndexDbLocation;
  /** Disconnects and deletes the database. */
  readonly drop: () => Promise<void>;
}

/**
 * A fresh, migrated, empty index DB: a temp SQLite file, or a new PostgreSQL database on
 * `server` (a test with a server of its own passes it).
 */
export async function createTestLocation(
  provider: IndexProvider,
  server: string = TEST_POSTGRES_URL,
): Promise<{ location: IndexDbLocation; destroy: () => Promise<void> }> {
  if (provider === 'sqlite') {
    const dir = await mkdtemp(path.join(tmpdir(), 'cairn-index-'));
    return {
      location: { provider, url: `file:${path.join(dir, 'index.db')}` },
      destroy: () => rm(dir, { recursive: true, force: true }),
    };
  }
  const name = `cairn_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  return {
    location: { provider, url: url.toString() },
    destroy: async () => {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function createTestIndexDb(provider: IndexProvider): Promise<TestIndexDb> {
  const { location, destroy } = await createTestLocation(provider);
  const db = await openIndexDb(location);
  return {
    db,
    location,
    drop: async () => {
      await db.$disconnect();
      await destroy();
    },
  };
}
