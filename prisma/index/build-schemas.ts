import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * One model file, two providers: Prisma fixes the provider per schema, and the index DB runs on
 * SQLite (embedded default) or PostgreSQL (DATABASE_URL=postgres…). This writes both schema files
 * from models.prisma; `--check` exits non-zero when a committed file is stale.
 */
export const PROVIDERS = ['sqlite', 'postgresql'] as const;
export type IndexProvider = (typeof PROVIDERS)[number];

const header = (
  provider: IndexProvider,
) => `// GENERATED from ../models.prisma by prisma/index/build-schemas.ts — do not edit.
generator client {
  provider     = "prisma-client"
  output       = "../../../jobs/index-db/generated/${provider}"
  engineType   = "client"
  moduleFormat = "esm"
}

datasource db {
  provider = "${provider}"
  url      = "${provider === 'sqlite' ? 'file:./dev.db' : 'postgresql://localhost/cairn'}"
}

`;

export const schemaPath = (provider: IndexProvider) =>
  path.join(import.meta.dirname, provider, 'schema.prisma');

export async function renderSchema(provider: IndexProvider): Promise<string> {
  const models = await readFile(path.join(import.meta.dirname, 'models.prisma'), 'utf8');
  return header(provider) + models;
}

if (import.meta.main) {
  const check = process.argv.includes('--check');
  let stale = false;
  for (const p of PROVIDERS) {
    const want = await renderSchema(p);
    const have = await readFile(schemaPath(p), 'utf8').catch(() => '');
    if (want === have) continue;
    if (check) {
      console.error(`${schemaPath(p)} is stale: run npm run db:index:schemas`);
      stale = true;
    } else await writeFile(schemaPath(p), want);
  }
  if (stale) process.exit(1);
}
