import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { PROVIDERS, renderSchema, schemaPath } from '../../prisma/index/build-schemas.ts';
import { indexDbLocation, openIndexDb } from './open.ts';
import { createTestLocation, TEST_PROVIDERS } from './testing.ts';

test('the committed SQLite and PostgreSQL schemas are rendered from models.prisma', async () => {
  for (const p of PROVIDERS) {
    assert.equal(
      await readFile(schemaPath(p), 'utf8'),
      await renderSchema(p),
      `${p} schema is stale: npm run db:index:schemas`,
    );
  }
});

test('DATABASE_URL picks the provider; anything else is refused with a clear error', () => {
  assert.equal(indexDbLocation('postgresql://u@h/db').provider, 'postgresql');
  assert.equal(indexDbLocation('postgres://u@h/db').provider, 'postgresql');
  assert.deepEqual(indexDbLocation('file:/tmp/x.db'), { provider: 'sqlite', url: 'file:/tmp/x.db' });
  assert.equal(indexDbLocation(undefined).provider, 'sqlite');
  assert.throws(() => indexDbLocation('mysql://h/db'), /DATABASE_URL must start with/);
});

for (const provider of TEST_PROVIDERS) {
  test(`${provider}: concurrent opens migrate once, and the schema takes writes`, async () => {
    const { location, destroy } = await createTestLocation(provider);
    try {
      const dbs = await Promise.all([openIndexDb(location), openIndexDb(location), openIndexDb(location)]);
      const migrations = await dbs[0].$queryRawUnsafe<{ n: number | bigint }[]>(
        'SELECT COUNT(*) AS n FROM _prisma_migrations',
      );
      // One row per migration, however many opens raced to apply them.
      const files = readdirSync(
        path.join(import.meta.dirname, '../../prisma/index', provider, 'migrations'),
        {
          withFileTypes: true,
        },
      ).filter((d) => d.isDirectory());
      assert.equal(Number(migrations[0]?.n), files.length);
      const data = {
        hash: 'aa',
        reason: 'reorged-out',
        height: 3,
        prevHash: 'bb',
        miner: 'cc',
        reportedBy: 'n',
        at: new Date(),
      };
      await dbs[1].orphanedBlock.create({ data });
      await assert.rejects(dbs[2].orphanedBlock.create({ data }), 'one row per (hash, reason)');
      assert.equal(await dbs[0].orphanedBlock.count(), 1);
      await Promise.all(dbs.map((d) => d.$disconnect()));
    } finally {
      await destroy();
    }
  });
}
